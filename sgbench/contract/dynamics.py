"""Contract checks of a method's neuron dynamics: the engine's BPTT against an autograd unroll,
the exact forward, learnable parameters, extreme and half-precision input, the state round
trip, and a recurrent layer (stepped, and fused where the rule allows it)."""
from __future__ import annotations

from typing import Callable

import torch
from spikingjelly.activation_based import functional

from ..neuron.engine import Dynamics
from ..neuron.node import SpikingNeuron, neurons
from .model import DYNAMICS, GRID, T, Bound, small_model

Tensor = torch.Tensor


class _Spike(torch.autograd.Function):
    """Heaviside forward; backward g(x; p) through the shape (the reference's spike)."""

    @staticmethod
    def forward(ctx, x, shape, p):
        ctx.save_for_backward(x)
        ctx.shape, ctx.p = shape, p
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.shape.grad(x.clone(), *ctx.p), None, None


def autograd_reference(x: Tensor, v0: Tensor, k, rule_step: Callable, shape,
                       dyn: Dynamics, scaled: bool = False) -> tuple[Tensor, Tensor]:
    """The neuron's dynamics as a plain autograd loop: ``rule_step(t, h) -> (theta_t, p_t)``;
    the spike's derivative is the shape's g, and its derivative in p that of the primitive
    (straight-through on values). Returns the spikes [T, ...] (theta_t S_t where ``scaled``)
    and the last potential."""
    v, out = v0, []
    for t in range(x.shape[0]):
        h = k * v + dyn.c * x[t] + dyn.b
        theta, p = rule_step(t, h)
        u = h - theta
        prim = shape.primitive(u.detach(), *p.unbind(0))  # carries dS/dp := dF/dp only
        s = _Spike.apply(u, shape, tuple(q.detach() for q in p.unbind(0))) + prim - prim.detach()
        r = s.detach() if dyn.detach_reset else s
        v = h * (1 - r) + dyn.v_reset * r if dyn.hard_reset else h - theta * r
        out.append(theta * s if scaled else s)
    return torch.stack(out), v


def check_bptt(cls) -> str:
    """dL/dX and the gradient of every parameter of the layer (the rule's, the decay) from the
    engine and from the autograd unroll, in float64."""
    worst = 0.0
    for config in DYNAMICS:
        model = small_model(cls, {**config, "v_reset": 0.0})
        node = neurons(model)[0]
        torch.manual_seed(1)
        x = (torch.randn(T, 60, dtype=torch.float64) * 1.2 + 0.7).requires_grad_(True)
        upstream = torch.randn(T, 60, dtype=torch.float64)
        leaves = [x] + [p for p in node.parameters() if p.requires_grad]
        start = node.rule.initial_potential(node)  # the reference first: rule state as ours
        v0 = torch.zeros_like(x[0]) if start is None else start.detach().expand_as(x[0])
        spikes, _ = autograd_reference(x, v0, node.decay_factor(), live_rule(node, T),
                                       node.rule.shape, node.dynamics, node.rule.scaled_output)
        ref = torch.autograd.grad((spikes * upstream).sum(), leaves, allow_unused=True)
        ours = torch.autograd.grad((node(x) * upstream).sum(), leaves, allow_unused=True)
        functional.reset_net(node)
        names = ["dL/dX"] + [f"dL/d{n}" for n, p in node.named_parameters() if p.requires_grad]
        for name, a, b in zip(names, ours, ref):
            a = torch.zeros(()) if a is None else a
            b = torch.zeros(()) if b is None else b
            err = float((a - b).abs().max() / (b.abs().max() + 1e-12))
            worst = max(worst, err)
            assert err < 1e-6, f"{config}: {name} differs from autograd by {err:.2%} of its " \
                               f"largest value (T={T}, float64)"
    return f"largest relative error {worst:.1e}"


def live_rule(node: SpikingNeuron, steps: int) -> Callable:
    """The layer's theta[t] and p[t] with their graph (so learned parameters get gradients)."""
    if node.rule.mode == "sequence":
        theta, p = node.rule.thresholds(node, steps)
        return lambda t, h: (theta[t].double(), p[t].double())
    return lambda t, h: tuple(a.double() for a in node.rule.at_step(node, t, h))


def check_extremes(cls) -> str:
    """The first layer's neuron alone (batch norm would tame the input), on potentials of size up
    to 1e4 in float64 and on half-precision input."""
    spread = torch.cat([torch.linspace(-1e4, 1e4, 201, dtype=torch.float64), GRID[:64]])
    for dtype, x in ((torch.float64, spread.expand(T, -1)),
                     (torch.float16, torch.randn(T, 64) * 2 + 0.5),
                     (torch.bfloat16, torch.randn(T, 64) * 2 + 0.5)):
        node = neurons(small_model(cls, dtype=torch.float64 if dtype == torch.float64
                                   else torch.float32))[0]
        x = x.to(dtype).contiguous().requires_grad_(True)
        (grad,) = torch.autograd.grad(node(x).float().sum(), x)
        assert torch.isfinite(grad.float()).all(), f"non-finite input gradient for " \
            f"{'|x| up to 1e4' if dtype == torch.float64 else dtype} input"
    return "|x| up to 1e4 and fp16/bf16 input give finite gradients"


def check_forward(cls) -> str:
    """Spikes are exactly H >= theta: the first layer's potentials recomputed by hand."""
    model = small_model(cls)
    first = neurons(model)[0]
    first.observe = True
    x = torch.randn(T, 5, 1, 6, 6, dtype=torch.float64)
    model(x)
    current = model.body[1](model.body[0](x))
    v, k, dyn = torch.zeros_like(current[0]), first.decay_factor(), first.dynamics
    theta = first.stats["theta"].double()
    for t in range(T):
        h = k * v + dyn.c * current[t] + dyn.b
        s = (h >= theta[t]).double()
        assert abs(float(s.mean()) - float(first.stats["spike_rate"][t])) < 1e-6, \
            f"timestep {t}: the spike rate is not that of H >= theta"
        v = h * (1 - s) + dyn.v_reset * s if dyn.hard_reset else h - theta[t] * s
    return "spikes are H >= theta"


def check_learnable(cls) -> str:
    model = small_model(cls)
    x = torch.randn(T, 8, 1, 6, 6, dtype=torch.float64) * 2 + 1
    model(x).pow(2).sum().backward()
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without a gradient: {', '.join(dead)}"
    return f"{sum(1 for _ in model.parameters())} parameter tensors receive gradients"


def check_state(cls) -> str:
    trained, fresh = small_model(cls, seed=0), small_model(cls, seed=1)
    x = torch.randn(T, 4, 1, 6, 6, dtype=torch.float64)
    trained(x)  # let running state (thresholds, statistics) move away from its start
    functional.reset_net(trained)
    fresh.load_state_dict(trained.state_dict())
    trained.eval(), fresh.eval()
    assert torch.equal(trained(x), fresh(x)), "a model loading the state_dict computes otherwise"
    return "outputs equal after load_state_dict"


def check_recurrent(method: Bound) -> str:
    """A recurrent spiking layer (its spikes fed back), run one neuron step at a time: the
    neuron runs one step per timestep, any auxiliary loss is taken, and a finite gradient reaches
    every parameter, the feedback weights across time included. Run again as one fused sequence
    (where the rule allows it, ``neuron/recurrent.py``), it gives the same outputs and
    gradients; and the method's adapt runs on it."""
    out, grads, stats = recurrent_pass(method, backend="torch")  # the step loop
    assert stats is not None and stats["spike_rate"].shape == (RECURRENT_T,), \
        "the neuron did not run one step per timestep"
    dead = [name for name, g in grads.items()
            if g is None or not torch.isfinite(g).all() or not g.abs().sum() > 0]
    assert not dead, f"parameters without a finite gradient: {', '.join(dead)}"
    fused_out, fused_grads, _ = recurrent_pass(method, backend="auto")
    torch.testing.assert_close(fused_out, out, rtol=1e-9, atol=1e-12,
                               msg="the fused recurrent sequence gives other outputs")
    for name, g in grads.items():
        torch.testing.assert_close(fused_grads[name], g, rtol=1e-9, atol=1e-12,
                                   msg=f"the fused recurrent sequence: other dL/d{name}")
    recurrent_adapt(method)
    return (f"{RECURRENT_T} single steps, gradients through the feedback weights; fused the "
            "same; the method's adapt on it")


def recurrent_adapt(method: Bound) -> None:
    """The method's between-epoch hooks on the recurrent model (a search reruns the layer's
    BPTT through its feedback)."""
    from ..measure.probe import Probe
    from ..models.recurrent import rsnn

    torch.manual_seed(0)
    model = rsnn((6,), 3, lambda: SpikingNeuron(), hidden=[8], readout="membrane")
    rule = method()
    rule.attach(model, RECURRENT_T)
    x = torch.rand(RECURRENT_T, 8, 6) * 4
    probe = Probe(x, torch.randint(0, 3, (8,)), torch.nn.CrossEntropyLoss(), rule.aux_loss,
                  "check-method")
    for epoch in range(2):
        rule.on_epoch_start(model, epoch, 2)
        rule.adapt(model, epoch, probe)


def recurrent_pass(method: Bound, backend: str):
    """Output, parameter gradients and the recurrent neuron's statistics of one forward and
    backward (float64, the same weights and input every time)."""
    from ..models.recurrent import rsnn

    torch.manual_seed(0)
    model = rsnn((6,), 3, lambda: SpikingNeuron(), hidden=[8], readout="membrane")
    rule = method()
    rule.attach(model, RECURRENT_T)
    model.to(torch.float64)
    node = neurons(model)[0]
    node.observe, node.backend = True, backend
    x = torch.rand(RECURRENT_T, 4, 6, dtype=torch.float64) * 4
    out = model(x)
    aux = rule.aux_loss(model)
    (out.pow(2).sum() if aux is None else out.pow(2).sum() + aux).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    functional.reset_net(model)
    return out.detach(), grads, node.stats


RECURRENT_T = 6

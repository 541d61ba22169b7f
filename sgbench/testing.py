"""The method contract check, shipped: ``sgbench check-method NAME|PATH`` and ``check_method(cls)``.

Each check runs the method's own rules on a small spiking CNN and reports what it found:

- parameters: ``Params`` is a dataclass whose defaults pass their declared bounds and survive a
  ``--param`` and a JSON round trip;
- rules: every layer gets theta [T] and p [T, P], finite; spikes are exactly H >= theta;
- surrogate: g >= 0 and finite over |x| <= 1e4, zero outside the declared support and positive
  somewhere inside, its inputs untouched, and the derivative of the primitive (what learnable
  parameters are trained through);
- BPTT: the engine's hand-written backward over T steps against a plain autograd unroll of the
  same dynamics, in float64, for hard and soft, detached and attached resets (gradients of the
  input, and of thresholds and shape parameters where they are learned);
- learnable parameters: every parameter of the model receives a gradient;
- extremes: finite gradients for inputs of size 1e4 and for half-precision input;
- state: a fresh model loading the state_dict gives the same outputs;
- recurrent layer: a layer whose spikes are fed back, run one neuron step at a time: one step
  per timestep, the auxiliary loss, finite gradients through the feedback weights; and run as
  one fused sequence where the rule allows it, the same outputs and gradients;
- hooks: ``on_epoch_start``, ``adapt`` (with a probe batch), a training step with ``aux_loss``
  and ``param_groups``, ``on_train_batch_end`` and ``search_bounds``, then the rules and the
  surrogate again at the parameters the hooks left;
- bounds: the surrogate at every declared bound of every parameter.

Every check runs at the given parameters (``--param``, default: the method's defaults), and
each has a time limit: a callback that never returns fails its check instead of hanging.
"""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn

from .neuron.engine import Dynamics
from .neuron.node import SpikingNeuron, neurons
from .params import parse_params, problems

Tensor = torch.Tensor
T = 4
GRID = torch.cat([torch.linspace(-5, 5, 4001, dtype=torch.float64),
                  torch.tensor([-1e4, -1e2, -20.0, 20.0, 1e2, 1e4], dtype=torch.float64)])
DRAWS = 400  # samples of a random surrogate whose mean is compared with the primitive's derivative
DYNAMICS = [dict(charge="tau", reset="hard", detach_reset=False),
            dict(charge="mul", reset="hard", detach_reset=False, learnable_decay=True),
            dict(charge="if", reset="soft", detach_reset=False),
            dict(charge="tau", reset="soft", detach_reset=True)]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


TIME_LIMIT_S = 60.0  # per check: a callback that never returns fails instead of hanging


class CheckTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout in the block after ``seconds`` (main thread; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise CheckTimeout(f"did not return within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_method(cls, params=None, time_limit_s: float = TIME_LIMIT_S) -> list[Check]:
    """Every contract check on the method class ``cls`` at ``params`` (default: its defaults);
    a check that raises, or runs past ``time_limit_s``, fails with the error as its detail."""
    method = Bound(cls, params if params is not None else cls.Params())
    checks = []
    for name, fn in CHECKS:
        try:
            with time_limit(time_limit_s):
                detail = fn(method)
            checks.append(Check(name, True, detail or ""))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed check, one line
            checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
        except SystemExit as exc:  # sys.exit() in a hook is no success
            checks.append(Check(name, False, f"the method's code called sys.exit({exc.code!r})"))
    return checks


@dataclass
class Bound:
    """A method class with the parameters every check uses."""

    cls: type
    params: object

    def __call__(self):
        return self.cls(self.params)

    def __getattr__(self, name):
        return getattr(self.cls, name)


def small_model(cls, neuron: dict | None = None, seed: int = 0, dtype=torch.float64) -> nn.Module:
    """A two-layer spiking CNN on 1x6x6 input with the method attached (``cls`` a method class
    or a ``Bound`` one)."""
    model, _ = _model_and_method(cls, neuron, seed, dtype)
    return model


def _model_and_method(cls, neuron: dict | None = None, seed: int = 0, dtype=torch.float64):
    from .models import convnet

    torch.manual_seed(seed)
    model = convnet((1, 6, 6), 3, lambda: SpikingNeuron(**(neuron or {})), channels=[4, 4])
    method = cls()
    method.attach(model, T)
    return model.to(dtype), method


def _check_params(method: Bound) -> str:
    cls, chosen = method.cls, method.params
    found = problems(cls, cls.Params())
    assert not found, f"the defaults break their own declarations: {'; '.join(found)}"
    values = dataclasses.asdict(chosen)
    typed = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()]
    assert parse_params(cls, typed) == chosen, "--param key=value does not give the value"
    assert cls.Params(**json.loads(json.dumps(values))) == chosen, \
        "a JSON round trip changes them"
    return f"{len(values)} parameters"


def _rule_outputs(model: nn.Module, x: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
    """theta [T] and p [T, P] each layer used on one forward (stepwise rules included)."""
    for node in neurons(model):
        node.observe = True
    model(x if x is not None else torch.randn(T, 5, 1, 6, 6, dtype=torch.float64) + 0.5)
    out = [(node.stats["theta"], node.stats["p"]) for node in neurons(model)]
    for node in neurons(model):
        node.observe, node.stats = False, None
    functional.reset_net(model)
    return out


def _check_rules(cls) -> str:
    return _check_rules_of(small_model(cls))


def _check_rules_of(model: nn.Module) -> str:
    for index, (theta, p) in enumerate(_rule_outputs(model)):
        node = neurons(model)[index]
        P = len(node.rule.shape.params)
        assert theta.shape == (T,), f"layer {index}: theta has shape {tuple(theta.shape)}"
        assert p.shape == (T, P), f"layer {index}: p has shape {tuple(p.shape)}, expected {(T, P)}"
        assert torch.isfinite(theta).all() and torch.isfinite(p).all(), \
            f"layer {index}: non-finite theta or p"
    return f"{len(neurons(model))} layers"


def _each_surrogate(cls, model: nn.Module | None = None
                    ) -> list[tuple[object, tuple[Tensor, ...]]]:
    model = model if model is not None else small_model(cls)
    pairs = []
    for node, (_, p) in zip(neurons(model), _rule_outputs(model)):
        for row in p.double():
            pairs.append((node.rule.shape, tuple(row.unbind(0))))
    return pairs


def _check_surrogate(cls, model: nn.Module | None = None) -> str:
    for shape, p in _each_surrogate(cls, model):
        x, p_before = GRID.clone(), tuple(q.clone() for q in p)
        g = shape.grad(x, *p)
        assert torch.equal(x, GRID) and all(torch.equal(a, b) for a, b in zip(p, p_before)), \
            f"{shape.name}: grad modified its input in place"
        assert torch.isfinite(g).all(), f"{shape.name}: non-finite surrogate"
        assert (g >= 0).all(), f"{shape.name}: negative surrogate {float(g.min()):.3g} at " \
                               f"x = {float(GRID[g.argmin()]):.3g}"
        lo, hi = (float(b) for b in shape.support(*p))
        outside = (GRID < lo - 1e-9) | (GRID > hi + 1e-9)
        assert not (g[outside] > 0).any(), \
            f"{shape.name}: g > 0 outside its declared support [{lo:.3g}, {hi:.3g}], e.g. at " \
            f"x = {float(GRID[outside & (g > 0)][0]):.3g}"
        assert (g[~outside] > 0).any(), f"{shape.name}: g is 0 all over its support"
        _check_support_width(shape, p, lo, hi)
        _check_primitive(shape, p)
    return "g >= 0, finite, within its support (and filling it), inputs untouched, F' = g"


SUPPORT_FILL = 0.05  # g must be positive within 5 % of the support's width from each finite end


def _check_support_width(shape, p: tuple[Tensor, ...], lo: float, hi: float) -> None:
    """A support declared wider than where g is positive makes coverage figures wrong: g must
    be positive near each finite end of the declared support."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return
    x = torch.linspace(lo, hi, 4001, dtype=torch.float64)
    live = x[shape.grad(x.clone(), *p) > 0]
    margin = SUPPORT_FILL * (hi - lo)
    assert float(live.min()) <= lo + margin and float(live.max()) >= hi - margin, \
        f"{shape.name}: declared support [{lo:.3g}, {hi:.3g}] but g > 0 only on " \
        f"[{float(live.min()):.3g}, {float(live.max()):.3g}]"


def _check_primitive(shape, p: tuple[Tensor, ...]) -> None:
    """F' = g; for a random shape, F' = the mean of g over DRAWS seeds."""
    lo, hi = (float(b) for b in shape.support(*p))
    x = torch.linspace(max(lo, -6.0), min(hi, 6.0), 997, dtype=torch.float64)
    edges = torch.tensor([lo, 0.0, hi], dtype=torch.float64)
    smooth = (x[:, None] - edges[None]).abs().min(1).values > 1e-4  # away from kinks
    x = x[smooth].requires_grad_(True)
    (dF,) = torch.autograd.grad(shape.primitive(x, *p).sum(), x)
    x = x.detach()
    if shape.seed_param is None:
        g, tolerance = shape.grad(x.clone(), *p), 1e-8 + 1e-6 * dF.abs()
    else:  # the mean of the draws, within 5 of its largest standard error (and 1 % of F's
        # peak slope) at every x
        seed = shape.params.index(shape.seed_param)
        draws = torch.stack([shape.grad(x.clone(), *p[:seed], torch.tensor(float(i)),
                                        *p[seed + 1:]) for i in range(DRAWS)])
        g = draws.mean(0)
        # (one scale for all x: where hits are rare a column's own std underestimates it)
        tolerance = 1e-10 + 0.01 * dF.abs().max() + 5 * draws.std(0).max() / DRAWS ** 0.5
    assert ((dF - g).abs() <= tolerance).all(), \
        f"{shape.name}: the primitive's derivative differs from " \
        f"{'grad' if shape.seed_param is None else 'the mean of grad'} by up to " \
        f"{float((dF - g).abs().max()):.3g}"


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


def _check_bptt(cls) -> str:
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
        spikes, _ = autograd_reference(x, v0, node.decay_factor(), _live_rule(node, T),
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


def _live_rule(node: SpikingNeuron, steps: int) -> Callable:
    """The layer's theta[t] and p[t] with their graph (so learned parameters get gradients)."""
    if node.rule.mode == "sequence":
        theta, p = node.rule.thresholds(node, steps)
        return lambda t, h: (theta[t].double(), p[t].double())
    return lambda t, h: tuple(a.double() for a in node.rule.at_step(node, t, h))


def _check_extremes(cls) -> str:
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


def _check_forward(cls) -> str:
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


def _check_learnable(cls) -> str:
    model = small_model(cls)
    x = torch.randn(T, 8, 1, 6, 6, dtype=torch.float64) * 2 + 1
    model(x).pow(2).sum().backward()
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without a gradient: {', '.join(dead)}"
    return f"{sum(1 for _ in model.parameters())} parameter tensors receive gradients"


def _check_state(cls) -> str:
    trained, fresh = small_model(cls, seed=0), small_model(cls, seed=1)
    x = torch.randn(T, 4, 1, 6, 6, dtype=torch.float64)
    trained(x)  # let running state (thresholds, statistics) move away from its start
    functional.reset_net(trained)
    fresh.load_state_dict(trained.state_dict())
    trained.eval(), fresh.eval()
    assert torch.equal(trained(x), fresh(x)), "a model loading the state_dict computes otherwise"
    return "outputs equal after load_state_dict"


def _check_recurrent(method: Bound) -> str:
    """A recurrent spiking layer (its spikes fed back), run one neuron step at a time: the
    neuron runs one step per timestep, any auxiliary loss is taken, and a finite gradient reaches
    every parameter, the feedback weights across time included. Run again as one fused sequence
    (where the rule allows it, ``neuron/recurrent.py``), it gives the same outputs and
    gradients."""
    out, grads, stats = _recurrent_pass(method, observe=True)  # observing keeps the step loop
    assert stats is not None and stats["spike_rate"].shape == (RECURRENT_T,), \
        "the neuron did not run one step per timestep"
    dead = [name for name, g in grads.items()
            if g is None or not torch.isfinite(g).all() or not g.abs().sum() > 0]
    assert not dead, f"parameters without a finite gradient: {', '.join(dead)}"
    fused_out, fused_grads, _ = _recurrent_pass(method, observe=False)
    torch.testing.assert_close(fused_out, out, rtol=1e-9, atol=1e-12,
                               msg="the fused recurrent sequence gives other outputs")
    for name, g in grads.items():
        torch.testing.assert_close(fused_grads[name], g, rtol=1e-9, atol=1e-12,
                                   msg=f"the fused recurrent sequence: other dL/d{name}")
    return f"{RECURRENT_T} single steps, gradients through the feedback weights; fused the same"


def _recurrent_pass(method: Bound, observe: bool):
    """Output, parameter gradients and the recurrent neuron's statistics of one forward and
    backward (float64, the same weights and input every time)."""
    from .models.recurrent import rsnn

    torch.manual_seed(0)
    model = rsnn((6,), 3, lambda: SpikingNeuron(), hidden=[8], readout="membrane")
    rule = method()
    rule.attach(model, RECURRENT_T)
    model.to(torch.float64)
    node = neurons(model)[0]
    node.observe = observe
    x = torch.rand(RECURRENT_T, 4, 6, dtype=torch.float64) * 4
    out = model(x)
    aux = rule.aux_loss(model)
    (out.pow(2).sum() if aux is None else out.pow(2).sum() + aux).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    functional.reset_net(model)
    return out.detach(), grads, node.stats


RECURRENT_T = 6


def _check_hooks(method: Bound) -> str:
    """Every hook as a training run calls it, on a small model and a probe batch: schedules,
    the search, a training step (with the auxiliary loss and the method's parameter groups),
    the after-step hook, the search bounds; then the rules and the surrogate at the
    parameters the hooks produced."""
    from .measure.probe import Probe
    from .train.recipe import make_optimizer

    model, rules = _model_and_method(method, dtype=torch.float32)
    torch.manual_seed(2)
    x = torch.rand(T, 8, 1, 6, 6) * 2
    y = torch.randint(0, 3, (8,))
    loss_fn = nn.CrossEntropyLoss()
    probe = Probe(x, y, loss_fn, rules.aux_loss, "check-method")
    optimizer = make_optimizer(model, {"lr": 1e-3, "weight_decay": 0.0, "optimizer": "adam",
                                       "momentum": 0.9}, rules)
    for epoch in range(2):
        rules.on_epoch_start(model, epoch, 2)
        rules.adapt(model, epoch, probe)
        model.train()
        loss = loss_fn(model(x), y)
        aux = rules.aux_loss(model)
        if aux is not None:
            assert torch.is_tensor(aux) and aux.dim() == 0 and torch.isfinite(aux), \
                f"aux_loss gave {aux!r}, not a finite scalar tensor"
            loss = loss + aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rules.on_train_batch_end(model, epoch)
        functional.reset_net(model)
    bounds = rules.search_bounds()
    assert isinstance(bounds, dict) and all(
        isinstance(b, tuple) and len(b) == 2 for b in bounds.values()), \
        f"search_bounds gave {bounds!r}, not {{name: (low, high)}}"
    model.double()
    _check_rules_of(model)
    _check_surrogate(method, model)
    return "on_epoch_start, adapt, aux_loss, param_groups, on_train_batch_end, search_bounds; " \
           "rules and surrogate at the adapted parameters"


def _check_bounds(method: Bound) -> str:
    """The surrogate at each declared bound of every parameter (one parameter at a time)."""
    from .params import declared_bounds

    tried = 0
    for name, value in declared_bounds(method.cls):
        params = dataclasses.replace(method.params, **{name: value})
        if problems(method.cls, params):
            continue  # not allowed with the other parameters (param_problems)
        try:
            _check_surrogate(Bound(method.cls, params))
        except Exception as exc:
            raise type(exc)(f"at {name}={value}: {exc}") from None
        tried += 1
    return f"{tried} bound value(s)" if tried else "no declared bounds"


CHECKS: list[tuple[str, Callable]] = [
    ("parameters", _check_params), ("rules", _check_rules), ("exact forward", _check_forward),
    ("surrogate", _check_surrogate), ("BPTT vs autograd", _check_bptt),
    ("learnable parameters", _check_learnable),
    ("extreme and half-precision input", _check_extremes), ("state round trip", _check_state),
    ("recurrent layer", _check_recurrent), ("hooks", _check_hooks),
    ("parameter bounds", _check_bounds)]


def passed(checks: list[Check]) -> bool:
    return all(c.ok for c in checks)

"""The numba CPU backend against the torch reference: spikes, H, final V and every gradient, for
each built-in shape with kernel code, both resets, detached resets, constant, decay-input and
learnable decay, a tensor or a number as initial potential, learnable thresholds and shape
parameters; and the cases in which a neuron must run the torch reference instead."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from sgbench.neuron.engine import Dynamics, SequenceFn
from sgbench.neuron.node import SpikingNeuron
from sgbench.neuron.numba_backend import NumbaSequenceFn, numba_available
from sgbench.neuron.rules import FixedRule
from sgbench.neuron.shapes import get_shape

pytestmark = pytest.mark.skipif(not numba_available(), reason="needs numba")

PARAMS = {"rect": [0.4, 0.7, 0.3, 0.7], "triangle": [0.6, 0.9, 1.2], "ramp": [0.6, 0.8, 0.8, 0.5],
          "sigmoid": [4.0], "atan": [2.0], "superspike": [3.0], "dspike": [3.0, 1.2],
          "exponential": [1.5, 2.0]}
PLUGIN = dataclasses.replace(get_shape("sigmoid"), name="sigmoid")  # a plugin's own, same name
T, SIZE = 4, (3, 5, 7)


def _both(shape, p_row, dyn, k, v0, learn_theta=True, learn_p=True, grads=("s", "v", "h"),
          fns=(SequenceFn, NumbaSequenceFn)):
    """Outputs and gradients of the torch and the numba sequence functions (``fns``) on the same
    input."""
    torch.manual_seed(1)
    x = (torch.randn(T, *SIZE) * 1.5).requires_grad_()
    theta = torch.tensor([1.0, 0.9, 1.1, 1.0], requires_grad=learn_theta)
    p = torch.tensor([p_row] * T, requires_grad=learn_p)
    upstream = {"s": torch.randn(T, *SIZE), "v": torch.randn(SIZE), "h": torch.randn(T, *SIZE)}
    runs = []
    for fn in fns:
        start = v0 if torch.is_tensor(v0) or fn is NumbaSequenceFn else torch.full(SIZE, v0)
        outs = dict(zip("svh", fn.apply(x, start, k, theta, p, shape, dyn)))
        leaves = [a for a in (x, k, theta, p, v0) if torch.is_tensor(a) and a.requires_grad]
        found = torch.autograd.grad([outs[g] for g in grads], leaves,
                                    [upstream[g] for g in grads])
        runs.append([*outs.values(), *found])
    return runs


def _assert_equal_up_to_rounding(runs):
    for ours, reference in zip(runs[1], runs[0]):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("hard", [True, False])
def test_every_built_in_shape_matches_the_torch_reference(name, hard):
    dyn = Dynamics(c=0.5, b=0.1 if hard else 0.0, hard_reset=hard, v_reset=0.2 if hard else 0.0)
    _assert_equal_up_to_rounding(_both(get_shape(name), PARAMS[name], dyn, 0.5, 0.2))


@pytest.mark.parametrize("case", ["detached", "constant k", "learnable k", "tensor v0",
                                  "fixed theta and p", "spikes only"])
def test_each_variant_matches_the_torch_reference(case):
    dyn = Dynamics(c=0.5, b=0.0, hard_reset=True, v_reset=0.0, detach_reset=case == "detached")
    k = {"constant k": 0.7, "learnable k": torch.tensor(0.6, requires_grad=True)}.get(case, 0.5)
    if case in ("constant k", "learnable k"):
        dyn = dataclasses.replace(dyn, c=1.0)
    v0 = torch.randn(SIZE).requires_grad_() if case == "tensor v0" else 0.0
    shape = get_shape("sigmoid")
    fixed = case == "fixed theta and p"
    grads = ("s",) if case == "spikes only" else ("s", "v", "h")
    _assert_equal_up_to_rounding(_both(shape, [4.0], dyn, k, v0, learn_theta=not fixed,
                                       learn_p=not fixed, grads=grads))


@pytest.mark.parametrize("shape, params", [("atan", [2.0]), ("localzo", [0.5, 5.0, 3.0])])
def test_a_layer_split_over_threads_gives_what_one_thread_gives(shape, params):
    """40,002 neurons: the second thread's range starts at an odd neuron (LocalZO with an odd m
    shares a pair between neurons 2P and 2P + 1)."""
    x = torch.randn(T, 40_002) * 1.5
    theta, p, dyn = torch.ones(T), torch.tensor([params] * T), Dynamics(c=0.5)
    shape = get_shape(shape)
    results = []
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            xs = x.clone().requires_grad_()
            s, v, h = NumbaSequenceFn.apply(xs, 0.0, 0.5, theta, p, shape, dyn)
            (s * torch.linspace(-1, 1, 40_002)).sum().backward()
        finally:
            torch.set_num_threads(before)
        results.append((s, v, h, xs.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def _neuron(**kw):
    return SpikingNeuron(tau=2.0, rule=FixedRule(kw.pop("shape", "atan"), [2.0]), **kw)


def test_a_cpu_neuron_runs_the_numba_kernels_unless_told_or_needed_otherwise():
    x = torch.randn(T, 2, 8)
    random_shape = _neuron()
    random_shape.rule = FixedRule("localzo", [0.5, 2.0, 3.0])
    plugin = _neuron()
    plugin.rule = FixedRule(PLUGIN, [4.0])
    cases = [("numba", _neuron()), ("torch", _neuron(backend="torch")), ("numba", random_shape),
             ("torch", plugin)]
    for expected, node in cases:
        node(x)
        assert node.used_backend == expected
    double = _neuron()
    double(x.double())  # float64 input: the reference
    assert double.used_backend == "torch"


def test_a_neuron_gives_the_same_training_signal_on_both_backends():
    torch.manual_seed(0)
    x = torch.randn(T, 4, 16) * 2
    grads = []
    for backend in ("auto", "torch"):
        node = _neuron(backend=backend)
        xs = x.clone().requires_grad_()
        out = node(xs)
        (out * torch.arange(16.0)).sum().backward()
        grads.append((out, node.v, xs.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_one_frame_given_at_every_step_is_read_once_and_gets_its_summed_gradient():
    """The first layer of a direct-input network gets one frame for all T (models/static.py)."""
    frame = torch.randn(*SIZE) * 1.5
    upstream = torch.randn(T, *SIZE, generator=torch.Generator().manual_seed(3))
    results = []
    for fn in (SequenceFn, NumbaSequenceFn):
        leaf = frame.clone().requires_grad_()
        args = (torch.zeros(SIZE), 0.5, torch.ones(T), torch.full((T, 1), 2.0),
                get_shape("atan"), Dynamics(c=0.5))
        s, v, h = fn.apply(leaf.expand(T, *SIZE), *args) if fn is SequenceFn else \
            fn.apply(leaf, *args, True)
        (s * upstream).sum().backward()
        results.append((s, v, h, leaf.grad))
    _assert_equal_up_to_rounding(results)


def test_a_static_first_layer_feeds_the_neuron_its_frame():
    from sgbench.models.static import Conv2d

    torch.manual_seed(0)
    conv = Conv2d(1, 4, 3, padding=1, step_mode="m")
    image = torch.randn(2, 1, 6, 6).unsqueeze(0).expand(T, 2, 1, 6, 6)
    grads = []
    for backend in ("auto", "torch"):
        conv.zero_grad()
        node = _neuron(backend=backend)
        out = node(conv(image) * 1.0 if backend == "torch" else conv(image))
        (out * torch.arange(6.0)).sum().backward()
        grads.append((out, conv.weight.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_channels_last_input_is_read_in_place_and_its_outputs_keep_the_layout():
    base = torch.randn(T * 2, 3, 4, 5) * 1.5
    x_cl = base.contiguous(memory_format=torch.channels_last).unflatten(0, (T, 2))
    results = []
    for fn, x in ((SequenceFn, base.unflatten(0, (T, 2))), (NumbaSequenceFn, x_cl)):
        leaf = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        s, v, h = fn.apply(leaf, torch.zeros(2, 3, 4, 5), 0.5, torch.ones(T),
                           torch.full((T, 1), 2.0), get_shape("atan"), Dynamics(c=0.5))
        (s * torch.arange(5.0)).sum().backward()
        results.append((s, v, h, leaf.grad))
    _assert_equal_up_to_rounding(results)
    s, _, h, grad = results[1]
    assert s.stride() == h.stride() == grad.stride() == x_cl.stride()


def test_the_kernels_exp_and_tanh_are_within_float_rounding():
    import numpy as np
    from numba import njit

    from sgbench.neuron.cpu_kernels import fast_exp, fast_tanh

    @njit
    def apply(xs, tanh):
        out = np.empty_like(xs)
        for i in range(xs.size):
            out[i] = fast_tanh(xs[i]) if tanh else fast_exp(xs[i])
        return out

    xs = np.linspace(-87, 88, 400_001).astype(np.float32)
    exact = np.exp(xs.astype(np.float64))
    assert np.max(np.abs(apply(xs, False) - exact) / exact) < 1e-7  # within 2 ulp
    ys = np.linspace(-20, 20, 400_001).astype(np.float32)
    assert np.max(np.abs(apply(ys, True) - np.tanh(ys.astype(np.float64)))) < 3e-7


def test_interleaved_loops_take_four_vectors_at_a_time_and_leave_llvm_as_it_was():
    """The pipeline of the kernels built on exp (cpu_math.InterleavedLoops) makes a loop that
    LLVM would run one vector at a time take four, with the same results; the LLVM option it
    sets holds for its own compilation only."""
    import re

    import numpy as np
    from numba import njit

    from sgbench.neuron.cpu_kernels import sigmoid
    from sgbench.neuron.cpu_math import InterleavedLoops

    def surrogate(a, out):
        for j in range(len(a)):
            out[j] = sigmoid(a[j], np.float32(4.0), np.float32(0), np.float32(0), np.float32(0))

    a = np.linspace(-3, 3, 1001, dtype=np.float32)

    def run(**options):
        kernel = njit(error_model="numpy", **options)(surrogate)
        out = np.empty_like(a)
        kernel(a, out)
        ir = kernel.inspect_llvm(kernel.signatures[0])
        return out, len(re.findall(r"fdiv[^\n]*<\d+ x float>", ir))  # vector divisions

    plain, plain_divisions = run()
    interleaved, interleaved_divisions = run(pipeline_class=InterleavedLoops)
    after, after_divisions = run()
    assert plain_divisions >= 1  # vectorised at all
    assert interleaved_divisions >= plain_divisions + 3
    assert after_divisions == plain_divisions  # compiled after it: as before
    np.testing.assert_array_equal(interleaved, plain)
    np.testing.assert_array_equal(after, plain)


@pytest.mark.parametrize("case", ["pooled only", "spikes used too", "odd size", "two threads",
                                  "one frame", "scaled output", "channels last",
                                  "channels last, one frame"])
def test_a_neuron_followed_by_a_2x2_max_pool_pools_in_its_own_pass_exactly(case):
    """models/pool.py's fusion: the same pooled spikes and the same gradients as the neuron and
    the pool run one after the other; the neuron's own output stays all its spikes. A scaled
    output (TrSG's theta S, theta learned) pools as theta times the pooled spikes. Channels-last
    storage (a conv with channels-last weights) is pooled in place, its output channels-last."""
    from torch import nn

    from sgbench.models.pool import MaxPool2d, pool_in_neurons
    from sgbench.models.static import Conv2d
    from sgbench.registry import load_method

    side = {"odd size": 7, "two threads": 128}.get(case, 8)  # 128: enough neurons to split
    channels_last, one_frame = case.startswith("channels last"), case.endswith("one frame")
    channels = 3 if channels_last else 2
    torch.manual_seed(0)
    # one frame: the same input at every step (stride 0), which the static conv hands on as such
    x = torch.randn(3, channels, side, side) * 1.5 if one_frame else \
        torch.randn(T, 3, channels, side, side) * 1.5
    upstream = torch.randn(T, 3, channels, side // 2, side // 2)
    runs = []
    for fused in (False, True):
        conv = Conv2d(channels, channels, 1, step_mode="m")
        nn.init.eye_(conv.weight.view(channels, channels)), nn.init.zeros_(conv.bias)
        if channels_last:
            conv.to(memory_format=torch.channels_last)
        net = nn.Sequential(conv, _neuron(), MaxPool2d(2, 2, step_mode="m"))
        if case == "scaled output":
            trsg = load_method("trsg")
            trsg(trsg.Params(theta0=0.7)).attach(net, T)
        if fused:
            pool_in_neurons(net)
        seen = []
        net[1].register_forward_hook(lambda m, i, out: seen.append(out))
        leaf = x.clone().requires_grad_()
        before = torch.get_num_threads()
        torch.set_num_threads(2 if case == "two threads" else 1)
        try:
            out = net(leaf.expand(T, *x.shape) if one_frame else leaf)
            loss = (out * upstream).sum()
            if case == "spikes used too":
                loss = loss + (seen[0] * torch.arange(side, dtype=torch.float32)).sum()
            loss.backward()
        finally:
            torch.set_num_threads(before)
        made_by_neuron = getattr(seen[0], "max_pool_2x2", None) is not None
        assert made_by_neuron == (fused and case != "odd size")
        assert seen[0].shape == (T, 3, channels, side, side)  # the neuron's output: all spikes
        assert out[0].is_contiguous(memory_format=torch.channels_last) == channels_last
        runs.append((out, leaf.grad, *(q.grad for q in net[1].rule.parameters())))
    for ours, reference in zip(runs[1][:2], runs[0][:2]):
        assert torch.equal(ours, reference)
    for ours, reference in zip(runs[1][2:], runs[0][2:]):  # dL/dtheta: sums in another order
        torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


@torch.no_grad()
def test_spikes_changed_in_place_after_the_neuron_are_pooled_again():
    from torch import nn

    from sgbench.models.pool import MaxPool2d, pool_in_neurons

    net = nn.Sequential(_neuron(), MaxPool2d(2, 2, step_mode="m"))
    pool_in_neurons(net)

    def halve(module, args, spikes):
        spikes.mul_(0.5)

    net[0].register_forward_hook(halve)
    out = net(torch.full((T, 1, 2, 4, 4), 3.0))
    assert torch.all(out[0] == 0.5)  # spikes at the first step, halved after the neuron


@pytest.mark.parametrize("name,variant", [("sigmoid", "hard, decay input"),
                                          ("dspike", "soft, learnable k"), ("atan", "one frame"),
                                          ("rect", "learnable parameters")])
def test_h_recomputed_in_backward_gives_the_gradients_of_h_kept_bit_for_bit(name, variant):
    """Without keep_h the forward writes no H and backward remakes it from the input: the same
    arithmetic, so the same H, spikes and input gradient, exactly (the dL/dtheta, dL/dk and, for
    the rectangle, dL/dp sums are another compiled variant's, equal up to rounding)."""
    hard = variant != "soft, learnable k"
    dyn = Dynamics(c=0.5 if hard else 1.0, b=0.1 if hard else 0.0, hard_reset=hard,
                   v_reset=0.2 if hard else 0.0)
    torch.manual_seed(2)
    one = variant == "one frame"
    x = torch.randn(*SIZE) * 1.5 if one else torch.randn(T, *SIZE) * 1.5
    upstream = torch.randn(T, *SIZE)
    runs = []
    for keep_h in (True, False):
        leaf = x.clone().requires_grad_()
        k = torch.tensor(0.6, requires_grad=True) if not hard else 0.5
        theta = torch.tensor([1.0, 0.9, 1.1, 1.0], requires_grad=True)
        # learnable parameters of a shape outside the kernels' PARAM_KINDS would keep H
        p = torch.tensor([PARAMS[name]] * T, requires_grad=name == "rect")
        s, v, h = NumbaSequenceFn.apply(leaf, 0.0, k, theta, p, get_shape(name), dyn, one,
                                        False, keep_h)
        assert (h is None) == (not keep_h)
        (s * upstream).sum().backward()
        runs.append([s, v, leaf.grad, theta.grad] + ([k.grad] if not hard else [])
                    + ([p.grad] if p.requires_grad else []))
    for kept, remade in zip(runs[0][:3], runs[1][:3]):  # spikes, V, dL/dX: the same H
        assert torch.equal(kept, remade)
    for kept, remade in zip(runs[0][3:], runs[1][3:]):  # sums: another variant's rounding
        torch.testing.assert_close(kept, remade, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("learnable_decay", [False, True])
def test_a_stepwise_rule_without_gradients_runs_the_kernels_and_trains_as_on_torch(
        learnable_decay):
    """DS-ATGO's thresholds are statistics of each H[t]: a pass without a graph finds them, the
    kernels run the sequence at them. The same spikes, potentials, gradients (decay included)
    and running thresholds as the torch backend, and the rule steps once per forward."""
    from sgbench.registry import load_method

    torch.manual_seed(0)
    x = torch.randn(T, 6, 2, 4, 4) * 1.5 + 0.5
    runs = []
    for backend in ("auto", "torch"):
        node = SpikingNeuron(charge="mul", decay=0.2, learnable_decay=learnable_decay,
                             backend=backend)
        model = torch.nn.Sequential(node)
        load_method("ds_atgo")().attach(model, T)
        model.train()
        xs = x.clone().requires_grad_()
        out = model(xs)
        (out * torch.linspace(-1, 1, out[0].numel()).reshape(out[0].shape)).sum().backward()
        runs.append((node.used_backend, out, node.v, xs.grad, node.rule.running_theta.clone(),
                     *(p.grad for p in node.parameters())))
    fused, reference = runs
    assert (fused[0], reference[0]) == ("numba", "torch")
    for a, b in zip(fused[1:], reference[1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(fused[4], torch.ones(T))  # the running thresholds moved, once


def _kernel_draws(x, delta, samples, seed, start=0):
    """LocalZO's surrogate as the kernels draw it for the neurons of x, in order (the first
    being neuron ``start``)."""
    from sgbench.neuron.cpu_kernels import localzo_sample

    g = np.empty(x.numel(), np.float32)
    localzo_sample(x.detach().reshape(-1).numpy(), *(np.float32(q) for q in (delta, samples, seed)),
                   start, g)
    return torch.from_numpy(g).view(x.shape)


@pytest.mark.parametrize("samples", [1, 4, 5])
def test_the_kernels_localzo_draws_of_a_neuron_do_not_depend_on_where_its_block_starts(samples):
    """A neuron's draws depend on its index only: drawn for a range starting at any neuron (odd
    ones too: with an odd m, neurons 2P and 2P + 1 share pair P's two draws), they are the
    ones drawn for the whole layer."""
    x = torch.linspace(-1.5, 1.5, 301)
    whole = _kernel_draws(x, 0.5, samples, 9)
    assert whole.count_nonzero() > 50
    for cut in (1, 2, 7, 150):
        parts = torch.cat([_kernel_draws(x[:cut], 0.5, samples, 9),
                           _kernel_draws(x[cut:], 0.5, samples, 9, start=cut)])
        assert torch.equal(parts, whole)


def test_the_kernels_logarithm_is_within_three_ulp():
    """``fast_log`` (2 atanh, cpu_math.py) on the uniforms LocalZO's radii take and beyond."""
    from numba import njit

    from sgbench.neuron.cpu_math import fast_log

    logs = njit(lambda x: [fast_log(v) for v in x])
    x = np.concatenate([(np.arange(0, 1 << 24, 997, dtype=np.float32) + 0.5) / (1 << 24),
                        np.geomspace(1e-30, 1e30, 10_001).astype(np.float32)])
    exact = np.log(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(np.array(logs(x), np.float64) - exact) / ulp) <= 3


def test_localzo_on_the_kernels_is_the_torch_arithmetic_with_the_kernels_draws():
    """The kernels draw LocalZO's z from their own counter-based generator (not torch's): with
    those draws put into the torch backend, every output and gradient is the same."""
    shape = get_shape("localzo")
    runs = _both(shape, [0.5, 5.0, 41.0], Dynamics(c=0.5), 0.5, 0.2, learn_theta=True,
                 learn_p=False)
    kernel_stream = dataclasses.replace(shape, grad=_kernel_draws)
    reference = _both(kernel_stream, [0.5, 5.0, 41.0], Dynamics(c=0.5), 0.5, 0.2,
                      learn_theta=True, learn_p=False, fns=(SequenceFn,))[0]
    _assert_equal_up_to_rounding([reference, runs[1]])
    assert not torch.allclose(runs[0][3], runs[1][3])  # torch's own stream: other draws


@pytest.mark.parametrize("samples", [4, 5])
def test_localzo_draws_only_where_a_gradient_reaches_and_loses_nothing(samples):
    """The kernels skip LocalZO's draws where dL/dS is 0 (after a 2x2 max-pool, 3 in 4 neurons
    at the last step; a hard reset carries the gradient on to earlier steps): the gradients are
    those of the torch arithmetic with every one of the kernels' draws."""
    from torch import nn

    from sgbench.models.pool import MaxPool2d, pool_in_neurons

    torch.manual_seed(0)
    x = torch.randn(T, 3, 2, 8, 8) * 1.5
    upstream = torch.randn(T, 3, 2, 4, 4) * (torch.rand(T, 3, 2, 4, 4) < 0.7)  # zeros too
    kernel_stream = dataclasses.replace(get_shape("localzo"), grad=_kernel_draws)
    grads = []
    for backend in ("auto", "torch"):
        node = _neuron(backend=backend)
        node.rule = FixedRule("localzo" if backend == "auto" else kernel_stream,
                              [0.5, float(samples), 41.0])
        net = nn.Sequential(node, MaxPool2d(2, 2, step_mode="m"))
        pool_in_neurons(net)
        leaf = x.clone().requires_grad_()
        (net(leaf) * upstream).sum().backward()
        assert node.used_backend == ("numba" if backend == "auto" else "torch")
        grads.append(leaf.grad)
    assert grads[0].count_nonzero() > grads[0].numel() // 8
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("samples", [1, 2, 5])
def test_the_kernels_localzo_draws_are_seeded_and_average_to_a_gaussian(samples):
    """Paper Sec. 4: E[g(x)] = N(x; 0, delta^2), whatever the number m of samples (here over
    neurons; each neuron and seed draws anew); the same seed, the same draws."""
    x = torch.linspace(-1.5, 1.5, 7).repeat_interleave(100_000)
    draws = _kernel_draws(x, 0.5, samples, 7)
    assert torch.equal(draws, _kernel_draws(x, 0.5, samples, 7))
    assert not torch.equal(draws, _kernel_draws(x, 0.5, samples, 8))
    mean = draws.view(7, -1).double().mean(1)
    centres = torch.linspace(-1.5, 1.5, 7, dtype=torch.float64)
    gauss = torch.exp(-centres**2 / (2 * 0.25)) / (0.5 * math.sqrt(2 * math.pi))
    assert torch.allclose(mean, gauss, rtol=0.03, atol=2e-3)


BACKWARD_KERNEL_RUN = """
import numpy as np
from sgbench.neuron import cpu_kernels
kernel = cpu_kernels.backward_kernel(4, True, False, False, False, False, True, False)
f32, rows = np.float32, np.ones((2, 64), np.float32)
kernel(0, 64, None, rows, None, f32(0), np.ones(2, f32), np.full((2, 1), 4, f32), rows, None,
       None, f32(.5), f32(.5), f32(0), f32(0), np.empty_like(rows), None, None, np.zeros((3, 2)),
       None, None, 0, 0)
print(sum(kernel.stats.cache_hits.values()))
"""


def test_a_backward_kernel_is_loaded_from_the_cache_in_the_next_process(tmp_path):
    """A backward kernel closes over its surrogate (a jitted function, which pickles differently
    in every process): its cache entry must still be found by the next process."""
    import os
    import subprocess
    import sys

    def cache_hits():
        done = subprocess.run([sys.executable, "-c", BACKWARD_KERNEL_RUN], capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    assert cache_hits() == 0  # compiled, and written to the cache
    assert cache_hits() == 1


def test_a_kernels_cache_entry_is_keyed_on_every_kernel_module(tmp_path, monkeypatch):
    """Kernels inline helpers from the other cpu_*.py modules: editing a helper's file must
    change every kernel's cache key (numba alone keys on the kernel's own file)."""
    from numba.core import caching

    from sgbench.neuron import kernel_cache

    kernel_cache.harden()

    class Locator(caching._SourceFileBackedLocatorMixin):
        def __init__(self, path):
            self._py_file = str(path)

    kernels, helper, other = (tmp_path / n for n in ("cpu_k.py", "cpu_h.py", "mine.py"))
    for path in (kernels, helper, other):
        path.write_text("x = 1\n")
    monkeypatch.setattr(kernel_cache, "KERNEL_FILES", (str(helper), str(kernels)))
    before, unrelated = Locator(kernels).get_source_stamp(), Locator(other).get_source_stamp()
    helper.write_text("x = 2  # edited\n")
    assert Locator(kernels).get_source_stamp() != before
    assert Locator(other).get_source_stamp() == unrelated

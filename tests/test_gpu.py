"""The engine and the methods on CUDA, and the cupy backend against the torch backend there
(skipped without a GPU, or without CuPy for the cupy tests)."""
import itertools

import pytest
import torch

from sgbench.neuron.capture import GradCapture
from sgbench.neuron.node import SpikingNeuron
from sgbench.neuron.rules import FixedRule, LayerRule
from sgbench.train import RunRequest, run

from fixtures import GAUSS

pytestmark = pytest.mark.gpu
PARAMS = {"rect": [0.4, 0.7, 0.3, 0.7], "triangle": [0.6, 0.9, 1.2], "ramp": [0.6, 0.8, 0.8, 0.5],
          "sigmoid": [4.0], "atan": [2.0], "superspike": [3.0], "dspike": [3.0, 1.2],
          "exponential": [1.5, 2.0], "gauss": [0.6]}
CHARGES = {"tau": dict(charge="tau", tau=1.7), "mul": dict(charge="mul", decay=0.3,
                                                           learnable_decay=True),
           "if": dict(charge="if")}
LITERATURE = ["mpd_agl", "ds_atgo", "adali", "a2sg", "st_asg", "psg_pda", "dspike", "localzo",
              "trsg", "slayer"]


def _cupy():
    return pytest.importorskip("cupy")


class _Learnable(LayerRule):
    """Learnable thresholds per timestep and shape parameters; stepwise variant uses H's mean."""

    def __init__(self, shape, p, T, mode):
        super().__init__(GAUSS if shape == "gauss" else shape)
        self.mode = mode
        self.theta = torch.nn.Parameter(torch.linspace(0.8, 1.2, T))
        self.p = torch.nn.Parameter(torch.tensor(p).repeat(T, 1))

    def sequence(self, neuron, T):
        return self.theta[:T], self.p[:T]

    def step(self, neuron, t, h):
        return h.detach().mean() + 0.1 * t, self.p[t]


def _pair(shape, charge, reset, detach, mode, T):
    nodes = []
    for backend in ("torch", "cupy"):
        torch.manual_seed(0)
        nodes.append(SpikingNeuron(reset=reset, detach_reset=detach, v_reset=0.1,
                                   backend=backend, rule=_Learnable(shape, PARAMS[shape], T, mode),
                                   **CHARGES[charge]).cuda())
    return nodes


@pytest.mark.parametrize("shape,charge,reset,detach,mode,dtype", list(itertools.product(
    PARAMS, CHARGES, ["hard", "soft"], [False, True], ["sequence", "stepwise"],
    [torch.float32, torch.float16, torch.bfloat16])))
def test_cupy_matches_torch(shape, charge, reset, detach, mode, dtype):
    _cupy()
    T = 4
    x = (torch.randn(T, 8, 16, 6, 6, device="cuda") * 0.9 + 0.6).to(dtype)
    upstream = torch.randn(T, 8, 16, 6, 6, device="cuda").to(dtype)
    results = []
    for node in _pair(shape, charge, reset, detach, mode, T):
        xs = x.clone().requires_grad_(True)
        s = node(xs)
        leaves = [xs] + [p for p in node.parameters()]
        # allow_unused: the stepwise rule computes theta from H, so self.theta is not used
        results.append((s, torch.autograd.grad((s * upstream).float().sum(), leaves,
                                               allow_unused=True)))
        fused = "cupy-precomputed" if shape == "gauss" else "cupy"
        assert node.used_backend == (fused if node.backend == "cupy" else "torch")
    (s_ref, g_ref), (s_cu, g_cu) = results
    assert torch.equal(s_ref, s_cu)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for ref, got in zip(g_ref, g_cu):
        assert (ref is None) == (got is None)
        if ref is None:
            continue
        assert torch.allclose(ref.float(), got.float(), atol=tol, rtol=tol)


def test_cupy_takes_channels_last_input():
    _cupy()
    conv = torch.nn.Conv2d(3, 16, 3, padding=1).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4 * 8, 3, 12, 12, device="cuda").to(memory_format=torch.channels_last)
    y = conv(x).view(4, 8, 16, 12, 12)
    outs = []
    for backend in ("torch", "cupy"):
        node = SpikingNeuron(backend=backend, rule=FixedRule("rect", [0.5, 0.5, 0.5, 0.5])).cuda()
        yy = y.detach().requires_grad_(True)
        s = node(yy)
        outs.append((s, torch.autograd.grad(s.sum(), yy)[0]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-6)


@pytest.mark.parametrize("shape,p", [("rect", [0.5, 0.5, 0.5, 0.5]), ("ramp", [0.5, 0.5, 1, 1]),
                                     ("triangle", [1.0, 1.0, 1.0]), ("sigmoid", [4.0])])
@pytest.mark.parametrize("charge", ["tau", "mul", "if"])
def test_torch_backend_on_cuda_matches_cpu(shape, p, charge):
    x = torch.randn(4, 3000, dtype=torch.float64) + 0.8
    grads, captures = [], []
    for device in ("cpu", "cuda"):
        node = SpikingNeuron(charge=charge, decay=0.3, learnable_decay=charge == "mul",
                             backend="torch", rule=FixedRule(shape, p)).double().to(device)
        node.capture = GradCapture()
        xs = x.to(device).detach().requires_grad_(True)
        spikes = node(xs)
        (spikes * torch.linspace(-1, 1, 3000, dtype=torch.float64, device=device)).sum().backward()
        grads.append((spikes.cpu(), xs.grad.cpu()))
        captures.append((node.capture.sgv(), node.capture.tgc()))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-12)
    assert captures[0] == pytest.approx(captures[1], rel=1e-9)


@pytest.mark.parametrize("backend", ["torch", "cupy"])
@pytest.mark.parametrize("method", LITERATURE)
def test_literature_methods_train_on_cuda(tmp_path, method, backend):
    if backend == "cupy":
        _cupy()
    record, _ = run(RunRequest(method=method, task="synthetic", device="cuda", out_dir=tmp_path,
                               neuron_backend=backend, require_fused=backend == "cupy"))
    assert record["status"] == "ok" and record["env"]["device"].startswith("cuda")
    assert record["env"]["neuron_backend"] == backend
    assert record["diagnostics"]["snapshots"][-1]["summary"]["coverage"] is not None


def test_localzo_draws_on_cuda_what_the_cpu_kernels_draw():
    """One counter-based generator in the numba and the CUDA kernels: the same gradients."""
    _cupy()
    torch.manual_seed(0)
    x, upstream = torch.randn(4, 8, 16, 6, 6) * 0.9 + 0.6, torch.randn(4, 8, 16, 6, 6)
    grads = []
    for device, backend in (("cpu", "auto"), ("cuda", "cupy")):
        node = SpikingNeuron(charge="mul", decay=0.5, backend=backend,
                             rule=FixedRule("localzo", [0.5, 5.0, 11.0])).to(device)
        xs = x.to(device).requires_grad_(True)
        (node(xs) * upstream.to(device)).sum().backward()
        assert node.used_backend == ("numba" if device == "cpu" else "cupy")
        grads.append(xs.grad.cpu())
    assert torch.allclose(*grads, atol=1e-5, rtol=1e-5)

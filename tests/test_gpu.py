"""The engine and the methods on CUDA (skipped without a GPU)."""
import pytest
import torch

from sgbench.neuron.capture import GradCapture
from sgbench.neuron.node import SpikingNeuron
from sgbench.neuron.rules import FixedRule
from sgbench.train import RunRequest, run

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("shape,p", [("rect", [0.5, 0.5, 0.5, 0.5]), ("ramp", [0.5, 0.5, 1, 1]),
                                     ("triangle", [1.0, 1.0, 1.0]), ("sigmoid", [4.0])])
@pytest.mark.parametrize("charge", ["tau", "mul", "if"])
def test_cuda_matches_cpu(shape, p, charge):
    x = torch.randn(4, 3000, dtype=torch.float64) + 0.8
    grads, captures = [], []
    for device in ("cpu", "cuda"):
        node = SpikingNeuron(charge=charge, decay=0.3, learnable_decay=charge == "mul",
                             rule=FixedRule(shape, p)).double().to(device)
        node.capture = GradCapture()
        xs = x.to(device).requires_grad_(True)
        spikes = node(xs)
        (spikes * torch.linspace(-1, 1, 3000, dtype=torch.float64, device=device)).sum().backward()
        grads.append((spikes.cpu(), xs.grad.cpu()))
        captures.append((node.capture.sgv(), node.capture.tgc()))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-12)
    assert captures[0] == pytest.approx(captures[1], rel=1e-9)


@pytest.mark.parametrize("method", ["mpd_agl", "ds_atgo", "adali", "a2sg", "st_asg", "psg_pda"])
def test_literature_methods_train_on_cuda(tmp_path, method):
    record, _ = run(RunRequest(method=method, task="synthetic", device="cuda", out_dir=tmp_path))
    assert record["status"] == "ok" and record["env"]["device"].startswith("cuda")
    assert record["diagnostics"]["snapshots"][-1]["summary"]["coverage"] is not None

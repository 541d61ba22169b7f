"""Finite differences by recomputing only what a first-layer weight reaches (measure/fd_local.py):
the same central differences as full forwards, the model left as it was, and the full forwards
wherever the shortcut does not hold."""
import pytest
import torch
from spikingjelly.activation_based import layer as sj
from torch import nn

from sgbench.measure.fd_local import LocalSegment
from sgbench.measure.fdg import cosine, finite_difference, first_weight_layer
from sgbench.measure.probe import Probe
from sgbench.models import SpikingClassifier, convnet
from sgbench.models.norm import Norm
from sgbench.models.pool import pool_in_neurons
from sgbench.neuron.node import SpikingNeuron
from sgbench.registry import builtin_names, load_method


def _neuron():
    return SpikingNeuron(charge="mul", decay=0.5, learnable_decay=True, v_threshold=0.5)


def _conv_model():
    """conv - BN - neuron - 2x2 max-pool, then conv - BN - neuron and the head."""
    model = convnet((2, 8, 8), 3, _neuron, channels=[4, 5], pools=[2, 1], pool=1)
    pool_in_neurons(model)
    return model


def _channels_last_model():
    """The same, its feature maps stored [T, B, H, W, C] (as the substrate tasks train)."""
    return _conv_model().to(memory_format=torch.channels_last)


def _linear_model():
    """linear - BN - neuron - linear - neuron - linear on flattened input."""
    return SpikingClassifier(nn.Sequential(
        sj.Flatten(), sj.Linear(128, 6), Norm().d1(6), _neuron(), sj.Linear(6, 5), _neuron(),
        sj.Linear(5, 3)))


def _setup(build, method="dspike", dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = build()
    load_method(method)().attach(model, 3)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(1, 24, 2, 8, 8, generator=g) * 2).expand(3, -1, -1, -1, -1)  # direct input
    y = torch.randint(0, 3, (24,), generator=g)
    probe = Probe(x.to(dtype), y, nn.CrossEntropyLoss(), lambda m: None, "test")
    return model.to(dtype), probe, first_weight_layer(model)


def _both(model, probe, layer, eps=0.2):
    coords = torch.arange(layer.weight.numel())
    return (finite_difference(model, probe, layer, eps, coords, local=True),
            finite_difference(model, probe, layer, eps, coords, local=False))


@pytest.mark.parametrize("build", [_conv_model, _channels_last_model, _linear_model],
                         ids=["conv", "conv channels-last", "linear"])
def test_local_differences_are_the_full_forwards_differences_in_float64(build):
    model, probe, layer = _setup(build, dtype=torch.float64)
    assert LocalSegment.find(model, layer) is not None
    local, full = _both(model, probe, layer)
    assert (full != 0).float().mean() > 0.5  # the perturbations move spikes
    torch.testing.assert_close(local, full, rtol=1e-9, atol=1e-12)


def test_local_differences_agree_with_the_full_forwards_on_the_numba_kernels():
    """float32: both round differently, so spikes at the threshold may differ."""
    model, probe, layer = _setup(_conv_model)
    local, full = _both(model, probe, layer)
    assert (full != 0).float().mean() > 0.5
    assert cosine(local, full) > 0.99


def test_the_model_is_left_as_it_was():
    model, probe, layer = _setup(_conv_model, dtype=torch.float64)
    model.eval()  # its forwards below then change nothing themselves
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(probe.x).detach()
    finite_difference(model, probe, layer, 0.05, torch.arange(12))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any("forward" in vars(m) for m in model.modules())
    assert torch.equal(model(probe.x).detach(), out)


def test_full_forwards_where_a_neuron_reads_the_whole_layer():
    """DS-ATGO's thresholds come from statistics of H over all channels: no shortcut."""
    model, probe, layer = _setup(_conv_model, method="ds_atgo", dtype=torch.float64)
    assert LocalSegment.find(model, layer) is None
    local, full = _both(model, probe, layer)
    assert torch.equal(local, full)


def test_full_forwards_where_an_auxiliary_loss_reads_the_layers(monkeypatch):
    """PSG+PDA's loss on H, for one, reads every layer's potentials."""
    from sgbench.measure import fd_local

    model, probe, layer = _setup(_conv_model, dtype=torch.float64)
    probe.aux_loss = lambda m: sum(p.sum() for p in m.parameters()) * 0
    monkeypatch.setattr(fd_local, "ChannelPart", None)  # the shortcut would fail on it
    local, full = _both(model, probe, layer)
    assert torch.equal(local, full)


@pytest.mark.parametrize("name", builtin_names())
def test_every_method_gets_the_full_forwards_differences(name):
    """The shortcut where a method's neurons allow it, the full forwards elsewhere: the same
    differences either way (float64), and no method's rule breaks the copies it needs."""
    model, probe, layer = _setup(_conv_model, method=name, dtype=torch.float64)
    coords = torch.arange(0, layer.weight.numel(), 7)
    local = finite_difference(model, probe, layer, 0.2, coords, local=True)
    full = finite_difference(model, probe, layer, 0.2, coords, local=False)
    torch.testing.assert_close(local, full, rtol=1e-9, atol=1e-12)

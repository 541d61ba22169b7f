"""SpikingJelly's model zoo with the engine's neuron: equal to the zoo's own model (its LIFNode at
every position) in logits and parameter gradients, the zoo's per-position constants kept, and a
model with a neuron that is not the engine's refused."""
import functools

import pytest
import torch
from spikingjelly.activation_based import functional, neuron, surrogate
from spikingjelly.activation_based.model import (ms_resnet, qkformer, sew_resnet, spikformer,
                                                 spike_driven_transformer)

from sgbench.errors import UserError
from sgbench.models import build_model, zoo, zoo_archs
from sgbench.neuron.node import SpikingNeuron, neurons
from sgbench.registry import load_method

T = 2
# The task's neuron section: SpikingJelly's LIFNode defaults (the zoo's positions override them).
SECTION = dict(charge="tau", tau=2.0, decay_input=True, v_threshold=1.0, reset="hard",
               v_reset=0.0, detach_reset=False)

# arch, sgbench options, input shape, the zoo's own model (default neurons) with the same sizes
CASES = {
    "spikformer": (dict(embed_dims=16, num_heads=2, depths=1, mlp_ratio=2.0), (1, 16, 16),
                   lambda: spikformer.Spikformer(T=T, in_channels=1, img_size_h=16,
                                                 img_size_w=16, patch_size=4, num_classes=5,
                                                 embed_dims=16, num_heads=2, mlp_ratio=2.0,
                                                 depths=1)),
    "spike_driven_transformer": (
        dict(embed_dims=16, num_heads=2, depths=1, mlp_ratio=2.0, pooling_stat="0011"),
        (3, 16, 16),
        lambda: spike_driven_transformer.SpikeDrivenTransformer(
            T=T, in_channels=3, num_classes=5, embed_dims=16, num_heads=2, depths=1,
            mlp_ratio=2.0, pooling_stat="0011")),
    "qkformer": (dict(embed_dims=32, num_heads=[1, 2, 2], depths=[1, 1, 1], mlp_ratio=2.0),
                 (3, 32, 32),
                 lambda: qkformer.QKFormer(T=T, in_channels=3, num_classes=5, embed_dims=32,
                                           num_heads=(1, 2, 2), depths=(1, 1, 1),
                                           mlp_ratio=2.0)),
    "ms_resnet": (dict(layers=[1, 1, 1], base_channels=8, stem_kernel_size=3, stem_stride=1),
                  (3, 16, 16),
                  lambda: ms_resnet.MSResNet(T=T, in_channels=3, num_classes=5, layers=(1, 1, 1),
                                             base_channels=8, stem_kernel_size=3,
                                             stem_stride=1)),
    "sew_resnet": (dict(depth=18), (3, 32, 32),
                   lambda: sew_resnet.sew_resnet18(
                       num_classes=5, cnf="ADD", spiking_neuron=neuron.LIFNode, tau=2.0,
                       detach_reset=True)),
}


def _zoo_reference(arch: str) -> torch.nn.Module:
    """The zoo's model on its own LIFNode, every surrogate SpikingJelly's Sigmoid(alpha=4)
    (MS-ResNet's default is a rectangle: the `sigmoid` method is compared here)."""
    model = CASES[arch][2]()
    for m in model.modules():
        if isinstance(m, neuron.BaseNode):
            m.surrogate_function = surrogate.Sigmoid(alpha=4.0)
    functional.set_step_mode(model, "m")
    return model.double().train()


def _sgbench(arch: str) -> torch.nn.Module:
    options, shape, _ = CASES[arch]
    model = build_model({"arch": arch, **options}, SECTION, shape, 5)
    load_method("sigmoid")().attach(model, T)
    return model.double().train()


def _grads(model) -> dict[str, torch.Tensor]:
    return {name.removeprefix("body.net."): p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("arch", list(CASES))
def test_equal_to_the_zoo_model_on_its_own_neurons(arch):
    ours, ref = _sgbench(arch), _zoo_reference(arch)
    state = {k.removeprefix("body.net."): v for k, v in ours.state_dict().items()
             if ".rule." not in k}  # the method's own buffers live in the engine's neurons
    ref.load_state_dict(state, strict=True)  # the same modules, parameters and buffers
    x = torch.rand(3, *CASES[arch][1], dtype=torch.float64) * 3
    weights = torch.randn(3, 5, dtype=torch.float64)
    x_seq = x.unsqueeze(0).repeat(T, 1, 1, 1, 1)  # the zoo model: T copies
    out, expected = ours(x.unsqueeze(0).expand(T, *x.shape)), ref(x_seq)  # direct encoding
    # Spikformer and SEW-ResNet give [T, N, K], the others the mean over T
    expected = expected.mean(0) if expected.dim() == 3 else expected
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.abs().sum() > 0
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    for name, buffer in ref.state_dict().items():  # running statistics as for T copies
        torch.testing.assert_close(ours.state_dict()["body.net." + name], buffer, msg=name)
    ours_g, ref_g = _grads(ours), dict(ref.named_parameters())
    assert ours_g.keys() == ref_g.keys()
    nonzero = 0
    for name, g in ours_g.items():
        torch.testing.assert_close(g, ref_g[name].grad, rtol=1e-10, atol=1e-12, msg=name)
        nonzero += bool(g.abs().sum() > 0)
    assert nonzero > len(ours_g) // 2  # gradients reach most of the network
    functional.reset_net(ours), functional.reset_net(ref)


def test_every_position_is_the_engines_with_the_zoos_constants():
    model = _sgbench("spikformer")
    ref = CASES["spikformer"][2]()
    ref_nodes = [m for m in ref.modules() if isinstance(m, neuron.BaseNode)]
    ours = neurons(model)
    assert len(ours) == len(ref_nodes) == 10 and not zoo.foreign_neurons(model)
    thresholds = {name.rsplit(".", 1)[-1]: n.v_threshold for name, n in model.named_modules()
                  if isinstance(n, SpikingNeuron)}
    assert thresholds["attn_lif"] == 0.5 and thresholds["qkv_lif"] == 1.0
    assert all(n.detach_reset for n in ours)  # the zoo's Spikformer detaches every reset
    ms = neurons(_sgbench("ms_resnet"))
    assert {(n.tau, n.v_threshold, n.decay_input, n.detach_reset) for n in ms} == {
        (4.0 / 3.0, 0.5, False, True)}


def test_zoo_neurons_false_gives_every_position_the_tasks_section():
    options, shape, _ = CASES["ms_resnet"]
    model = build_model({"arch": "ms_resnet", **options, "zoo_neurons": False}, SECTION, shape, 5)
    assert {(n.tau, n.v_threshold, n.decay_input, n.detach_reset) for n in neurons(model)} == {
        (2.0, 1.0, True, False)}


def test_a_model_with_a_neuron_that_is_not_the_engines_is_refused(monkeypatch):
    real = zoo_archs.ARCHS["spikformer"]

    @functools.wraps(real)  # the same options
    def half_converted(*args, **kwargs):
        model = real(*args, **kwargs)
        model.body.net.blocks[0].mlp.neuron2 = neuron.LIFNode(step_mode="m")
        return model

    monkeypatch.setitem(zoo_archs.ARCHS, "spikformer", half_converted)
    options, shape, _ = CASES["spikformer"]
    with pytest.raises(UserError, match=r"1 spiking neuron\(s\) are not the engine's.*"
                                        r"blocks\.0\.mlp\.neuron2, LIFNode"):
        build_model({"arch": "spikformer", **options}, SECTION, shape, 5)


@pytest.mark.parametrize("options, message", [
    (dict(embed_dims=30, num_heads=4), "multiple of num_heads"),
    (dict(patch_size=8), "patch_size must be 4 or 16"),
    (dict(stem_pools="1110"), "stem_pools must be four 0/1 characters"),
    (dict(depths=0), "depths must be an integer"),
])
def test_spikformer_sizes_are_checked(options, message):
    with pytest.raises(Exception, match=message):
        build_model({"arch": "spikformer", **options}, SECTION, (1, 28, 28), 10)


def test_an_image_the_patches_do_not_divide_is_refused():
    with pytest.raises(Exception, match="multiples of 16"):
        build_model({"arch": "qkformer"}, SECTION, (3, 28, 28), 10)


def test_the_transformers_token_projections_are_counted():
    from sgbench.measure.ops import count_ops

    model = _sgbench("spikformer").float()
    x = torch.rand(2, *CASES["spikformer"][1]) * 3
    rows = {r["layer"]: r for r in count_ops(model, x.unsqueeze(0).repeat(T, 1, 1, 1, 1))["layers"]}
    fc1 = rows["body.net.blocks.0.mlp.fc1.0"]  # Conv1d(16 -> 32, k=1) over 16 tokens
    assert fc1["paper_sops"] == pytest.approx(fc1["input_rate"] * T * 16 * 32 * 16)
    assert {"body.net.blocks.0.attn.qkv_conv_bn.0", "body.net.blocks.0.attn.proj_conv_bn.0",
            "body.net.blocks.0.mlp.fc2.0"} <= rows.keys()


@pytest.mark.parametrize("arch", ["spikformer", "spike_driven_transformer", "qkformer"])
def test_the_transformers_neurons_run_the_numba_kernels_on_cpu(arch):
    pytest.importorskip("numba")
    options, shape, _ = CASES[arch]
    model = build_model({"arch": arch, **options}, SECTION, shape, 5)
    load_method("atan")().attach(model, T)
    x = torch.rand(T, 2, *shape) * 3
    out = model(x)
    out.sum().backward()
    assert {n.used_backend for n in neurons(model)} == {"numba"}  # attention LIF included
    reference = build_model({"arch": arch, **options}, {**SECTION, "backend": "torch"}, shape, 5)
    reference.load_state_dict(model.state_dict())
    load_method("atan")().attach(reference, T)
    functional.reset_net(model)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


def test_methods_see_the_norm_that_really_feeds_each_neuron():
    """Registration order would hand the attention LIF the QKV norm (MPD-AGL reads its gamma)."""
    from torch import nn

    from sgbench.neuron.node import preceding

    model = _sgbench("spikformer")
    names = {m: n.removeprefix("body.net.") for n, m in model.named_modules()}
    norms = {names[k]: v and v[0].removeprefix("body.net.")
             for k, v in preceding(model, (nn.modules.batchnorm._NormBase,)).items()}
    weights = {names[k]: v and v[0].removeprefix("body.net.")
               for k, v in preceding(model, (nn.Conv1d, nn.Conv2d)).items()}
    assert norms["blocks.0.attn.attn_lif"] is None and weights["blocks.0.attn.attn_lif"] is None
    assert norms["blocks.0.attn.qkv_lif"] == "blocks.0.attn.qkv_conv_bn.1"
    assert weights["blocks.0.mlp.neuron1"] == "blocks.0.mlp.fc1.0"
    # a norm, then the stem's max-pool, then the neuron: the norm still feeds it
    assert norms["patch_embed.stages.2.neuron"] == "patch_embed.stages.2.conv_bn.block.1"
    ms = _sgbench("ms_resnet")
    ms_names = {m: n.removeprefix("body.net.") for n, m in ms.named_modules()}
    ms_norms = {ms_names[k]: v for k, v in preceding(ms, (nn.modules.batchnorm._NormBase,)).items()}
    assert ms_norms["layer2.0.spike1"] is None  # the block's input: a membrane-shortcut sum
    assert ms_norms["layer2.0.spike2"][0].endswith("layer2.0.bn1")


def test_the_stem_in_front_of_the_first_neuron_runs_once_on_a_static_image():
    from sgbench.models import static

    options, shape, _ = CASES["spikformer"]
    model = build_model({"arch": "spikformer", **options, "stem_pools": "1100"}, SECTION, shape, 5)
    stem = model.body.net.patch_embed.stages[0].conv_bn.block
    assert [type(m) for m in stem] == [static.Conv2d, static.BatchNorm2d, static.MaxPool2d]
    second = model.body.net.patch_embed.stages[1].conv_bn.block  # after the first neuron
    assert type(second[0]) is torch.nn.Conv2d
    sdt = _sgbench("spike_driven_transformer").body.net.patch_embed.stages[0]
    assert [type(m) for m in sdt][:2] == [static.Conv2d, static.BatchNorm2d]

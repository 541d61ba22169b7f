"""The model zoo's architectures (SpikingJelly 2.0.0) as sgbench builds them: each builder makes
the zoo's own class through ``zoo.with_engine_neurons`` (the engine's neuron in every position,
the zoo's per-position constants kept) and restates the model's forward with per-timestep
logits (``*_steps``), checked against the zoo's own forward in tests/test_zoo.py."""
from __future__ import annotations

from typing import Any

from spikingjelly.activation_based import functional, neuron as sj_neuron
from spikingjelly.activation_based.model import (ms_resnet as sj_ms, qkformer as sj_qk,
                                                 sew_resnet as sj_sew, spikformer as sj_spf,
                                                 spike_driven_transformer as sj_sdt)
from torch import nn

from ..errors import UsageError
from .zoo import PositionFactory, Tensor, zoo_model


def _spikformer_steps(net: nn.Module, x: Tensor) -> Tensor:
    return net.head(net.forward_features(x))  # the zoo's forward already keeps T


def _sdt_steps(net: nn.Module, x: Tensor) -> Tensor:
    x = net.patch_embed(x)
    for block in net.blocks:
        x = block(x)
    return net.head(net.head_lif(x.flatten(3).mean(-1)))  # zoo: head(... .mean(0))


def _qkformer_steps(net: nn.Module, x: Tensor) -> Tensor:
    for embed, stage in ((net.patch_embed1, net.stage1), (net.patch_embed2, net.stage2),
                         (net.patch_embed3, net.stage3)):
        x = embed(x)
        for block in stage:
            x = block(x)
    return net.head(x.flatten(3).mean(dim=-1))  # zoo: head(... .mean(0))


def _ms_resnet_steps(net: nn.Module, x: Tensor) -> Tensor:
    x = net.layer3(net.layer2(net.layer1(net.stem(x))))
    if net.layer4 is not None:
        x = net.layer4(x)
    return net.head(net.avgpool(net.head_lif(x)).flatten(2))  # zoo: ... .mean(0)


def _sew_resnet_steps(net: nn.Module, x: Tensor) -> Tensor:
    return net(x)  # multi-step: [T, N, K]


def _check_image(in_shape: tuple[int, ...], arch: str, multiple: int) -> None:
    if len(in_shape) != 3 or in_shape[1] % multiple or in_shape[2] % multiple:
        raise UsageError(f"model.arch {arch} needs image input whose height and width are "
                         f"multiples of {multiple}; the data gives {tuple(in_shape)}")


def _check_heads(dims: int, heads: int, what: str) -> None:
    if not 1 <= heads <= dims or dims % heads:
        raise UsageError(f"{what}: embed_dims ({dims}) must be a multiple of num_heads ({heads})")


def _bounded(what: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{what} must be an integer in [{low}, {high}], got {value!r}")


def spikformer(in_shape, num_classes, neuron: PositionFactory, embed_dims: int = 384,
               num_heads: int = 12, depths: int = 4, mlp_ratio: float = 4.0,
               patch_size: int = 4, stem_pools: str = "", zoo_neurons: bool = True
               ) -> nn.Module:
    """Spikformer (Zhou et al., ICLR 2023), SpikingJelly's ``Spikformer``: a 4-stage conv stem
    (embed/8 .. embed channels; ``patch_size`` 4 pools in the last two stages, 16 in all four),
    ``depths`` blocks of spiking self-attention and MLP, a linear head. ``stem_pools`` (four 0/1
    characters, e.g. "1100") moves the stem's pools, here to the first stages so the stem's
    full-resolution convolutions run on a smaller grid; empty: the zoo's placement."""
    c, h, w = in_shape
    _bounded("model.embed_dims", embed_dims, 8, 4096)
    _bounded("model.depths", depths, 1, 64)
    _check_heads(embed_dims, num_heads, "model (spikformer)")
    if embed_dims % 8:
        raise UsageError(f"model.embed_dims must be a multiple of 8 (the stem's first stage "
                         f"has embed/8 channels), got {embed_dims}")
    if patch_size not in (4, 16):
        raise UsageError(f"model.patch_size must be 4 or 16 (SpikingJelly's Spikformer), "
                         f"got {patch_size}")
    pools = stem_pools or ("0011" if patch_size == 4 else "1111")
    if len(pools) != 4 or set(pools) - {"0", "1"} or pools.count("1") != (2 if patch_size == 4
                                                                          else 4):
        raise UsageError(f"model.stem_pools must be four 0/1 characters with as many 1s as "
                         f"patch_size {patch_size} needs ({2 if patch_size == 4 else 4}), "
                         f"got '{stem_pools}'")
    if not 0 < mlp_ratio <= 16:
        raise UsageError(f"model.mlp_ratio must lie in (0, 16], got {mlp_ratio}")
    _check_image(in_shape, "spikformer", patch_size)

    def build(spiking_neuron):
        net = sj_spf.Spikformer(T=1, in_channels=c, img_size_h=h, img_size_w=w,
                                patch_size=patch_size, num_classes=num_classes,
                                embed_dims=embed_dims, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                depths=depths, spiking_neuron=spiking_neuron)
        if stem_pools:
            _move_stem_pools(net, pools)
        return net

    return zoo_model(build, neuron, zoo_neurons, _spikformer_steps, in_shape)


def _move_stem_pools(net: nn.Module, pools: str) -> None:
    """Rebuild the stem's conv-BN blocks with the pools at ``pools`` (the zoo's class, the zoo's
    weight initialisation)."""
    for stage, flag in zip(net.patch_embed.stages, pools):
        conv = stage.conv_bn.block[0]
        stage.conv_bn = sj_spf.SpikformerConv2dBN(conv.in_channels, conv.out_channels, 3, 1, 1,
                                                  pool=flag == "1")
    net._init_weights()


def spike_driven_transformer(in_shape, num_classes, neuron: PositionFactory,
                             embed_dims: int = 384, num_heads: int = 8, depths: int = 8,
                             mlp_ratio: float = 4.0, pooling_stat: str = "1111",
                             zoo_neurons: bool = True) -> nn.Module:
    """Spike-driven Transformer v1 (Yao et al., NeurIPS 2023), SpikingJelly's
    ``SpikeDrivenTransformer``: a 4-stage spiking patch embedding (``pooling_stat``: which
    stages pool, "1111" for ImageNet, "0011" for CIFAR in the official code), ``depths`` blocks
    of spike-driven self-attention and MLP, a head LIF and a linear head."""
    c = in_shape[0]
    _bounded("model.embed_dims", embed_dims, 8, 4096)
    _bounded("model.depths", depths, 1, 64)
    _check_heads(embed_dims, num_heads, "model (spike_driven_transformer)")
    if len(pooling_stat) != 4 or set(pooling_stat) - {"0", "1"}:
        raise UsageError(f"model.pooling_stat must be four 0/1 characters, got '{pooling_stat}'")
    if embed_dims % 8:
        raise UsageError(f"model.embed_dims must be a multiple of 8, got {embed_dims}")
    _check_image(in_shape, "spike_driven_transformer", 2 ** pooling_stat.count("1"))

    def build(spiking_neuron):
        return sj_sdt.SpikeDrivenTransformer(
            T=1, in_channels=c, num_classes=num_classes, embed_dims=embed_dims,
            num_heads=num_heads, depths=depths, mlp_ratio=mlp_ratio, pooling_stat=pooling_stat,
            spiking_neuron=spiking_neuron)

    return zoo_model(build, neuron, zoo_neurons, _sdt_steps, in_shape)


def qkformer(in_shape, num_classes, neuron: PositionFactory, embed_dims: int = 384,
             num_heads: list[int] = (3, 6, 6), depths: list[int] = (1, 2, 7),
             mlp_ratio: float = 4.0, qka_type: str = "token", zoo_neurons: bool = True
             ) -> nn.Module:
    """QKFormer (Zhou et al., NeurIPS 2024), SpikingJelly's ``QKFormer``: three stages (Q-K
    attention, Q-K attention, spiking self-attention) of ``depths`` blocks at embed/4, embed/2,
    embed channels. This is the zoo's ImageNet layout: its stem pools 4x and each later stage
    2x, so a 32x32 image ends as a 2x2 token grid. It is not the official CIFAR model (HST-4-384,
    two stages on an 8x8 grid), whose published numbers therefore do not carry over to it."""
    c = in_shape[0]
    _bounded("model.embed_dims", embed_dims, 16, 4096)
    if embed_dims % 8:
        raise UsageError(f"model.embed_dims must be a multiple of 8, got {embed_dims}")
    for what, values in (("model.num_heads", num_heads), ("model.depths", depths)):
        if not isinstance(values, (list, tuple)) or len(values) != 3:
            raise UsageError(f"{what} must list 3 integers (one per stage), got {values!r}")
        for v in values:
            _bounded(what, v, 1, 64)
    for dims, heads in zip((embed_dims // 4, embed_dims // 2, embed_dims), num_heads):
        _check_heads(dims, heads, "model (qkformer)")
    if qka_type not in ("token", "channel"):
        raise UsageError(f"model.qka_type must be token or channel, got '{qka_type}'")
    _check_image(in_shape, "qkformer", 16)

    def build(spiking_neuron):
        return sj_qk.QKFormer(T=1, in_channels=c, num_classes=num_classes,
                              embed_dims=embed_dims, num_heads=tuple(num_heads),
                              depths=tuple(depths), mlp_ratio=mlp_ratio, qka_type=qka_type,
                              spiking_neuron=spiking_neuron)

    return zoo_model(build, neuron, zoo_neurons, _qkformer_steps, in_shape)


def ms_resnet(in_shape, num_classes, neuron: PositionFactory, layers: list[int] = (2, 2, 2, 2),
              base_channels: int = 64, stem_kernel_size: int = 7, stem_stride: int = 2,
              stem_pool: bool = False, zoo_neurons: bool = True) -> nn.Module:
    """MS-ResNet (Hu et al., IEEE TNNLS 2024, arXiv:2112.08954), SpikingJelly's ``MSResNet``:
    membrane shortcuts, spikes before each convolution. ``layers`` [2, 2, 2, 2] is MS-ResNet-18,
    [3, 4, 6, 3] MS-ResNet-34; a CIFAR stem is ``stem_kernel_size: 3, stem_stride: 1``."""
    if not isinstance(layers, (list, tuple)) or len(layers) not in (3, 4):
        raise UsageError(f"model.layers must list 3 or 4 stage depths, got {layers!r}")
    for v in layers:
        _bounded("model.layers", v, 1, 64)
    _bounded("model.base_channels", base_channels, 1, 2048)
    _bounded("model.stem_kernel_size", stem_kernel_size, 1, 11)
    _bounded("model.stem_stride", stem_stride, 1, 4)

    def build(spiking_neuron):
        return sj_ms.MSResNet(T=1, in_channels=in_shape[0], num_classes=num_classes,
                              layers=tuple(layers), base_channels=base_channels,
                              stem_kernel_size=stem_kernel_size, stem_stride=stem_stride,
                              stem_pool=stem_pool, spiking_neuron=spiking_neuron)

    return zoo_model(build, neuron, zoo_neurons, _ms_resnet_steps, in_shape)


SEW_DEPTHS = {18: ("BasicBlock", (2, 2, 2, 2)), 34: ("BasicBlock", (3, 4, 6, 3)),
              50: ("Bottleneck", (3, 4, 6, 3)), 101: ("Bottleneck", (3, 4, 23, 3))}


def sew_resnet(in_shape, num_classes, neuron: PositionFactory, depth: int = 18,
               cnf: str = "ADD", zoo_neurons: bool = True) -> nn.Module:
    """SEW-ResNet (Fang et al., NeurIPS 2021), SpikingJelly's ``SEWResNet`` (ImageNet stem:
    7x7 stride-2 conv and a max-pool), spike-element-wise shortcuts (``cnf`` ADD, AND or IAND).
    The zoo gives it no neuron of its own: its positions take SEW-ResNet's LIF (tau 2, detached
    reset, as the zoo's SEW-ResNet-34 configuration)."""
    if depth not in SEW_DEPTHS:
        raise UsageError(f"model.depth must be one of {', '.join(map(str, SEW_DEPTHS))} for "
                         f"sew_resnet, got {depth}")
    if cnf not in ("ADD", "AND", "IAND"):
        raise UsageError(f"model.cnf must be ADD, AND or IAND, got '{cnf}'")
    block, layers = SEW_DEPTHS[depth]

    def build(spiking_neuron):
        if spiking_neuron is None:  # the zoo's own SEW neuron (SEWResNet34Config's defaults)
            spiking_neuron = _sew_lif
        net = sj_sew.SEWResNet(getattr(sj_sew, block), list(layers), num_classes=num_classes,
                               cnf=cnf, spiking_neuron=spiking_neuron)
        if in_shape[0] != 3:
            conv = net.conv1
            net.conv1 = type(conv)(in_shape[0], conv.out_channels, conv.kernel_size,
                                   conv.stride, conv.padding, bias=False)
        functional.set_step_mode(net, "m")
        return net

    return zoo_model(build, neuron, zoo_neurons, _sew_resnet_steps, in_shape)


def _sew_lif(**kwargs: Any) -> sj_neuron.LIFNode:
    return sj_neuron.LIFNode(**{"tau": 2.0, "detach_reset": True, **kwargs})


ARCHS = {"spikformer": spikformer, "spike_driven_transformer": spike_driven_transformer,
         "qkformer": qkformer, "ms_resnet": ms_resnet, "sew_resnet": sew_resnet}



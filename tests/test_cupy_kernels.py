"""The cupy backend's CUDA source, checked without a GPU.

Every variant (shape or precomputed surrogate x dtype x reset x detach) is compiled by nvcc, device
and host code together. The kernels' per-neuron arithmetic is also compiled for the host and
driven by host loops, so it runs here against the torch backend: spikes, H and every gradient,
with a tensor or a scalar initial potential and with the gradients nobody needs left unwritten.
What this cannot check is the launch itself (grid, warp sums, atomics, streams): the `gpu` tests
do that on CUDA.
"""
import ctypes
import dataclasses
import itertools
import shutil
import subprocess

import numpy as np
import pytest
import torch

from sgbench.neuron.cupy_backend import precomputed_surrogate
from sgbench.neuron.cupy_source import (DTYPES, HEADER, PARAM_SOURCE, PRECOMPUTED, SHAPE_SOURCE,
                                        kernel_source, variant_tag)
from sgbench.neuron.engine import SequenceFn
from sgbench.neuron.node import SpikingNeuron
from sgbench.neuron.shapes import get_shape

from fixtures import GAUSS

PARAMS = {"rect": [0.4, 0.7, 0.3, 0.7], "triangle": [0.6, 0.9, 1.2], "ramp": [0.6, 0.8, 0.8, 0.5],
          "sigmoid": [4.0], "atan": [2.0], "superspike": [3.0],
          "dspike": [3.0, 1.2], "exponential": [1.5, 2.0], "localzo": [0.5, 5.0, 77.0],
          PRECOMPUTED: [0.6]}
VARIANTS = list(itertools.product([*SHAPE_SOURCE, PRECOMPUTED], DTYPES, [True, False],
                                  [True, False]))
CHARGES = {"tau": dict(charge="tau", tau=1.7), "mul": dict(charge="mul", decay=0.3),
           "if": dict(charge="if")}


def _numba_draws(x, delta, samples, seed):
    """LocalZO's surrogate as the numba kernels draw it for the neurons of x in order: the CUDA
    kernels use the same counter-based generator, so this is their reference (the torch
    backend's draws come from another stream)."""
    from sgbench.neuron.cpu_kernels import localzo_sample

    g = np.empty(x.numel(), np.float32)
    localzo_sample(x.detach().float().reshape(-1).numpy(), np.float32(delta),
                   np.float32(samples), np.float32(seed), 0, g)
    return torch.from_numpy(g).view(x.shape).to(x.dtype)


def _reference(shape):
    if shape == PRECOMPUTED:
        return GAUSS
    if shape == "localzo":
        return dataclasses.replace(get_shape(shape), grad=_numba_draws)
    return get_shape(shape)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    if shutil.which("nvcc") is None:
        pytest.skip("needs nvcc (the CUDA toolkit) to compile the kernels")
    folder = tmp_path_factory.mktemp("cuda")
    source = HEADER + "".join(kernel_source(*v, header=False, host_driver=True)
                              for v in VARIANTS)
    (folder / "variants.cu").write_text(source)
    result = subprocess.run(["nvcc", "-std=c++14", "-shared", "-Xcompiler", "-fPIC", "-o",
                             str(folder / "variants.so"), str(folder / "variants.cu")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return ctypes.CDLL(str(folder / "variants.so"))


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr())


def _host_run(lib, tag, x, v0, theta, p, k, dyn, grad_s, grad_v, grad_h, shape=None,
              want=True):
    """Forward and backward through the host-compiled kernels; ``v0`` a tensor or a number
    (the null-pointer path); ``shape`` the plugin shape of a precomputed variant; ``want=False``
    passes null for dL/dX and dL/dV0 (nobody needs them)."""
    T, N = x.shape[0], x[0].numel()
    scalar = not torch.is_tensor(v0)
    v0_ptr, v0_value = (None, float(v0)) if scalar else (_ptr(v0), 0.0)
    s, h, v = torch.empty_like(x), torch.empty_like(x, dtype=torch.float32), torch.empty(N)
    getattr(lib, f"host_forward_{tag}")(
        _ptr(x), v0_ptr, ctypes.c_float(v0_value), _ptr(theta), ctypes.c_float(k),
        ctypes.c_float(dyn.c), ctypes.c_float(dyn.b), ctypes.c_float(dyn.v_reset), _ptr(s),
        _ptr(h), _ptr(v), ctypes.c_int(T), ctypes.c_longlong(N))
    g_pre = precomputed_surrogate(shape, h, theta, p) if shape is not None else None
    grad_x, grad_v0, gs = torch.full_like(x, 7.0), torch.full((N,), 7.0), torch.empty_like(h)
    acc_theta, acc_k, acc_p = torch.zeros(T), torch.zeros(1), torch.zeros(T, p.shape[1])
    getattr(lib, f"host_backward_{tag}")(
        _ptr(h), v0_ptr, ctypes.c_float(v0_value), _ptr(theta), _ptr(p),
        ctypes.c_int(p.shape[1]), None if g_pre is None else _ptr(g_pre), _ptr(grad_s),
        _ptr(grad_v), _ptr(grad_h), ctypes.c_float(k), ctypes.c_float(dyn.c),
        ctypes.c_float(dyn.v_reset), _ptr(grad_x) if want else None,
        _ptr(grad_v0) if want else None, _ptr(gs), _ptr(acc_theta), _ptr(acc_k), _ptr(acc_p),
        ctypes.c_int(T), ctypes.c_longlong(N))
    return s, h, v, grad_x, grad_v0, acc_theta, acc_k, gs, acc_p


def test_every_variant_compiles(library):
    for variant in VARIANTS:
        tag = variant_tag(*variant)
        assert hasattr(library, f"host_forward_{tag}") and hasattr(library, f"host_backward_{tag}")


@pytest.mark.parametrize("charge", sorted(CHARGES))
@pytest.mark.parametrize("shape,dtype,hard,detach", VARIANTS)
def test_kernel_arithmetic_matches_the_torch_backend(library, shape, dtype, hard, detach, charge):
    torch.manual_seed(0)
    node = SpikingNeuron(reset="hard" if hard else "soft", detach_reset=detach, v_reset=0.2,
                         **CHARGES[charge])
    dyn, k = node.dynamics, float(node.decay_factor())
    T, N = 3, 500
    x = (torch.randn(T, N) * 0.9 + 0.6).to(dtype)
    v0 = torch.randn(N) * 0.3
    theta = torch.tensor([0.9, 1.0, 1.1])
    p = torch.tensor(PARAMS[shape]).repeat(T, 1)
    grad_s = torch.randn(T, N).to(dtype)
    grad_v, grad_h = torch.randn(N), torch.randn(T, N)
    surrogate = _reference(shape)
    s, h, v, grad_x, grad_v0, g_theta, g_k, gs, acc_p = _host_run(
        library, variant_tag(shape, dtype, hard, detach), x, v0, theta, p, k, dyn, grad_s,
        grad_v, grad_h, shape=surrogate if shape == PRECOMPUTED else None)

    leaves = [x.float().requires_grad_(True), v0.clone().requires_grad_(True),
              torch.tensor(k).requires_grad_(True), theta.clone().requires_grad_(True),
              p.clone().requires_grad_(True)]
    s_ref, v_ref, h_ref = SequenceFn.apply(*leaves, surrogate, dyn)
    loss = (s_ref * grad_s.float()).sum() + (v_ref * grad_v).sum() + (h_ref * grad_h).sum()
    ref = torch.autograd.grad(loss, leaves)
    assert torch.equal(s.float(), s_ref) and torch.allclose(h, h_ref, atol=1e-5)
    assert torch.allclose(v, v_ref, atol=1e-5)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    assert torch.allclose(grad_x.float(), ref[0], atol=tol, rtol=tol)
    assert torch.allclose(grad_v0, ref[1], atol=1e-4)
    assert float(g_k) == pytest.approx(float(ref[2]), rel=1e-3, abs=1e-3)
    assert torch.allclose(g_theta, ref[3], rtol=1e-3, atol=1e-3)
    # shape-parameter gradients: from the kernel's total dL/dS, reduced as the backend does
    g_p = torch.stack([torch.stack(surrogate.param_grads(h[t] - theta[t], tuple(p[t]), gs[t]))
                       for t in range(T)])
    assert torch.allclose(g_p, ref[4], rtol=1e-3, atol=1e-3)
    if shape in PARAM_SOURCE:  # summed by the kernel itself
        assert torch.allclose(acc_p, ref[4], rtol=1e-3, atol=1e-3) and acc_p.abs().sum() > 0
    assert s_ref.sum() > 0 and ref[0].abs().sum() > 0


@pytest.mark.parametrize("shape", ["atan", PRECOMPUTED])
def test_a_scalar_initial_potential_and_unwanted_gradients_skip_their_tensors(library, shape):
    """A fresh sequence passes V[0] as a number (no tensor, no dL/dV0); dL/dX and dL/dV0 are
    left unwritten when nobody needs them, and nothing else changes."""
    torch.manual_seed(1)
    node = SpikingNeuron(charge="mul", decay=0.4)
    dyn, k, T, N = node.dynamics, 0.4, 3, 300
    x, theta = torch.randn(T, N) + 0.6, torch.tensor([0.9, 1.0, 1.1])
    p = torch.tensor(PARAMS[shape]).repeat(T, 1)
    grad_s, grad_v, grad_h = torch.randn(T, N), torch.randn(N), torch.randn(T, N)
    tag, plugin = variant_tag(shape, torch.float32, True, False), GAUSS if shape == PRECOMPUTED \
        else None
    tensor_v0 = _host_run(library, tag, x, torch.full((N,), 0.25), theta, p, k, dyn, grad_s,
                          grad_v, grad_h, plugin)
    scalar_v0 = _host_run(library, tag, x, 0.25, theta, p, k, dyn, grad_s, grad_v, grad_h, plugin)
    unwanted = _host_run(library, tag, x, 0.25, theta, p, k, dyn, grad_s, grad_v, grad_h, plugin,
                         want=False)
    for a, b in zip(tensor_v0[:4] + tensor_v0[5:], scalar_v0[:4] + scalar_v0[5:]):
        assert torch.equal(a, b)
    assert (unwanted[3] == 7.0).all() and (unwanted[4] == 7.0).all()  # never written
    assert torch.equal(unwanted[5], scalar_v0[5]) and torch.equal(unwanted[6], scalar_v0[6])


def test_dense_layout_keeps_contiguous_and_channels_last_and_copies_the_rest():
    from sgbench.neuron.cupy_backend import dense_layout

    x = torch.randn(4, 2, 3, 5, 5)
    assert dense_layout(x) is x
    cl = torch.randn(8, 3, 5, 5).to(memory_format=torch.channels_last).view(4, 2, 3, 5, 5)
    assert dense_layout(cl) is cl  # each timestep is one dense block of B*C*H*W elements
    strided = torch.randn(4, 2, 3, 5, 10)[..., ::2]
    out = dense_layout(strided)
    assert out.is_contiguous() and torch.equal(out, strided)

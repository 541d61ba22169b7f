"""Arithmetic the CPU kernels share, compiled by Numba: the JIT settings (the disk cache made
safe by kernel_cache.py, and a pipeline that interleaves four vectors in each loop), float32 bit
casts, and exp, tanh and log for float32 as polynomials, so the loops that call them stay
vectorised (a call to libm would not be).

The kernel modules (cpu_*.py) inline these functions; kernel_cache.py keys every kernel's cache
entry on all of their files, so an edit here recompiles the kernels that inline it.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.core.compiler import Compiler, DefaultPassBuilder
from numba.core.compiler_machinery import register_pass
from numba.core.typed_passes import NativeLowering
from numba.extending import intrinsic

from . import kernel_cache

F32 = np.float32
# Neurons a kernel loop takes at a time, t being the outer loop. Short rows let the hardware
# prefetchers stream every row of a block at once (on an AMD EPYC, a backward pass over 2M
# neurons: 12.4 -> 9.8 ms at 128 against 2,048, the forward 3.0 -> 2.4 ms); LocalZO's draws,
# bound by arithmetic, pay for each block's setup and keep long ones.
BLOCK = 128
DRAWS_BLOCK = 2048
ZERO, ONE, TWO = F32(0.0), F32(1.0), F32(2.0)
HALF, HALF_PI = F32(0.5), F32(math.pi / 2)

kernel_cache.harden()  # a damaged cache entry is compiled again, never an error
JIT = dict(nogil=True, cache=kernel_cache.usable(__file__), error_model="numpy",
           fastmath={"contract"})


@register_pass(mutates_CFG=True, analysis_only=False)
class _InterleavedLowering(NativeLowering):
    """Numba's lowering pass (which also runs LLVM's optimisations on the function), with LLVM's
    loop vectorizer told to interleave four vectors in each loop. The option is global to the
    process: it is set for this pass only (numba compiles one function at a time, under its
    compiler lock) and its default, 0 (the vectorizer's own choice), restored after. The
    functions this one calls were compiled before, during typing, with their own settings."""
    _name = "interleaved_lowering"

    def run_pass(self, state):
        binding.set_option("", "-force-vector-interleave=4")
        try:
            return super().run_pass(state)
        finally:
            binding.set_option("", "-force-vector-interleave=0")


class InterleavedLoops(Compiler):
    """Numba's pipeline, with four vectors interleaved in each vectorised loop of the function.

    A surrogate built on exp is a chain of ~70 cycles of dependent arithmetic per vector; the
    out-of-order core holds only a few such iterations at a time, so with one vector an
    iteration its arithmetic units wait on latency most of the time. Four independent vectors an
    iteration keep them busy: sigmoid's backward kernel over bench neuron's layer 14.0 -> 10.7 ms
    on an AMD EPYC (docs/benchmarks.md, issue 32). Cheap loops gain nothing or lose."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(_InterleavedLowering if cls is NativeLowering else cls, text)
                     for cls, text in pm.passes]
        pm.finalize()
        return [pm]


JIT_INTERLEAVED = dict(JIT, pipeline_class=InterleavedLoops)


@intrinsic
def _bits_from_float(typingctx, value):
    """The int32 whose bits are the IEEE-754 float32 ``value``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


# exp(x) for float32 after Cephes' expf (S. L. Moshier, Methods and Programs for Mathematical
# Functions, 1989): x = n ln2 + r, |r| <= ln2 / 2 (ln 2 in two parts, Cody and Waite), exp(r) =
# 1 + r + r^2 P(r), times 2^n made from its bits. P has degree 4 where Cephes' has 5: its
# coefficients are fitted to exp's relative error on |r| <= ln2 / 2 (weighted least squares
# iterated toward minimax, 4e-9 before rounding), so the result is within 2 ulp of exp with one
# multiply-add less in the chain. The loops that call it stay vectorised (a call to libm's expf
# would not be). Arguments are clamped to [-87, 88], where 2^n stays a normal float.
LOG2E, LN2_HI, LN2_LO = F32(1.44269504088896341), F32(0.693359375), F32(-2.12194440e-4)
EXP_POLY = tuple(F32(c) for c in (1.3754428e-3, 8.3689094e-3, 4.1669477e-2, 1.6666518e-1,
                                  4.9999988e-1))


@njit(inline="always", **JIT)
def fast_exp(x):
    x = min(max(x, F32(-87.0)), F32(88.0))
    n = np.floor(x * LOG2E + HALF)
    r = x - n * LN2_HI - n * LN2_LO
    poly = EXP_POLY[0]
    for c in EXP_POLY[1:]:
        poly = poly * r + c
    return (poly * r * r + r + ONE) * _float_from_bits((np.int32(n) + np.int32(127)) << 23)


@njit(inline="always", **JIT)
def fast_tanh(y):
    """tanh(y) = 1 - 2 / (exp(2y) + 1), through ``fast_exp`` (absolute error ~1e-7)."""
    return ONE - TWO / (fast_exp(TWO * y) + ONE)


# log(x) = e ln 2 + 2 atanh(s), s = (m - 1) / (m + 1), x = m 2^e with m in [sqrt(1/2), sqrt 2)
# (Abramowitz & Stegun 4.1.27): 2 atanh(s) = s (2 + w P(w)), w = s^2, |s| <= 0.1716, with P's
# three coefficients fitted by least squares to the series' tail (near 2/3, 2/5, 2/7). Within
# 3 ulp of log; a division and three multiply-adds where Cephes' logf has nine multiply-adds in a
# chain (0.80 -> 0.55 ns a logarithm in a vectorised loop on an AMD EPYC).
LOG_TAIL = (F32(0.66666794), F32(0.3997653), F32(0.29884964))
SQRT_HALF = F32(0.707106781186547524)


@njit(inline="always", **JIT)
def fast_log(x):
    """log(x) for a normal float32 x > 0 (branch-free)."""
    bits = _bits_from_float(x)
    e = F32(np.int32(np.int32(bits >> np.int32(23)) - np.int32(126)))
    m = _float_from_bits(np.int32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000)))
    small = m < SQRT_HALF  # m in [0.5, 1): into [sqrt(1/2), sqrt 2)
    e = e - ONE if small else e
    m = m + m if small else m
    s = (m - ONE) / (m + ONE)
    w = s * s
    tail = LOG_TAIL[0] + w * (LOG_TAIL[1] + w * LOG_TAIL[2])
    return s * (TWO + w * tail) + LN2_LO * e + LN2_HI * e

"""Arithmetic the CPU kernels share, compiled by Numba: the JIT settings (the disk cache made
safe by kernel_cache.py), float32 bit casts, and exp, tanh and log for float32 as polynomials,
so the loops that call them stay vectorised (a call to libm would not be).

The kernel modules (cpu_*.py) inline these functions; kernel_cache.py keys every kernel's cache
entry on all of their files, so an edit here recompiles the kernels that inline it.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
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


# exp(x) for float32 as in Cephes' expf (S. L. Moshier, Methods and Programs for Mathematical
# Functions, 1989): x = n ln2 + r, |r| <= ln2 / 2, exp(r) by a degree-7 polynomial, times 2^n
# made from its bits. Within 2 ulp of exp, and the loops that call it stay vectorised (a call to
# libm's expf would not be). Arguments are clamped to [-87, 88], where 2^n stays a normal float.
LOG2E, LN2_HI, LN2_LO = F32(1.44269504088896341), F32(0.693359375), F32(-2.12194440e-4)
EXP_POLY = tuple(F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                  4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


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

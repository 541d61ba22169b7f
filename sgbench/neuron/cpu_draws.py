"""LocalZO's random surrogate drawn inside the numba kernels (Mukhoty et al., NeurIPS 2023,
Sec. 4): a counter-based generator, the same as the CUDA kernels' (cupy_source.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .cpu_math import BLOCK, F32, HALF, JIT, ONE, SQRT_HALF, TWO, ZERO, fast_log


# g(x) = (1 / m) sum_i |z_i| [|x| < delta |z_i|] / (2 delta), z_i ~ N(0, 1) drawn per neuron,
# step and sample from a counter-based generator, so any neuron's draws are known without a
# stream, on CPU as in the CUDA kernels (cupy_source.py). Draws come in Box-Muller pairs (z_2q,
# z_2q+1) = sqrt(-2 log u) (cos phi, sin phi), phi uniform on [0, pi/2) (so both are |z|): u from
# the 32-bit word a = mix(key ^ (neuron ceil(m / 2) + q)), phi from b = mix(a ^ GOLDEN), key =
# mix(seed), mix being C. Wellons' "lowbias32" integer hash. All in 32-bit lanes (Numba widens
# integer arithmetic to 64 bits unless told), so the loop vectorises. The torch backend draws
# from torch's generator instead: the same distribution, another stream.
U32 = np.uint32
MIX1, MIX2, GOLDEN = U32(0x7FEB352D), U32(0x846CA68B), U32(0x9E3779B9)
U24 = F32(1.0 / (1 << 24))
# sinf / cosf on [-pi/4, pi/4] as in Cephes (Moshier 1989): within a few ulp
SIN_POLY = (F32(-1.9515295891e-4), F32(8.3321608736e-3), F32(-1.6666654611e-1))
COS_POLY = (F32(2.443315711809948e-5), F32(-1.388731625493765e-3), F32(4.166664568298827e-2))
QUARTER_PI = F32(math.pi / 4)


@njit(**JIT)
def mix32(x):
    """lowbias32 (C. Wellons, "Hash function prospector", 2018) of a uint32, in uint32."""
    x = U32(x ^ (x >> U32(16)))
    x = U32(x * MIX1)
    x = U32(x ^ (x >> U32(15)))
    x = U32(x * MIX2)
    return U32(x ^ (x >> U32(16)))


@njit(**JIT)
def half_normal_pair(a, b):
    """Two independent |z|, z ~ N(0, 1), from two random words: sqrt(-2 log u) (cos phi,
    sin phi) with u = (a's top 24 bits + 1/2) / 2^24 and phi = pi/2 (b's top 24 bits) / 2^24;
    cos phi = (cos f - sin f) / sqrt 2 and sin phi = (cos f + sin f) / sqrt 2, f = phi - pi/4."""
    u = (F32(np.int32(a >> U32(8))) + HALF) * U24
    f = (F32(np.int32(b >> U32(8))) * U24 - HALF) * TWO * QUARTER_PI
    f2 = f * f
    sin_f = f + f * f2 * ((SIN_POLY[0] * f2 + SIN_POLY[1]) * f2 + SIN_POLY[2])
    cos_f = ONE - HALF * f2 + f2 * f2 * ((COS_POLY[0] * f2 + COS_POLY[1]) * f2 + COS_POLY[2])
    r = math.sqrt(-TWO * fast_log(u)) * SQRT_HALF
    return r * (cos_f - sin_f), r * (cos_f + sin_f)


@njit(**JIT)
def localzo_surrogate(h, th, delta, samples, seed, start, g):
    """g[:] = LocalZO's sample at x = h - th of the neurons from ``start`` on (the shape's
    parameters delta, samples m and the step's seed)."""
    m = np.int32(samples)
    pairs, key = U32((m + 1) // 2), mix32(U32(np.int32(seed)))
    scale = ONE / (F32(samples) * TWO * delta)
    g[:] = ZERO
    for q in range(m // 2):
        _add_pair(h, th, delta, key, U32(U32(start) * pairs + U32(q)), pairs, scale, scale, g)
    if m % 2:  # an odd m leaves the last pair's second draw out
        _add_pair(h, th, delta, key, U32(U32(start) * pairs + U32(m // 2)), pairs, scale, ZERO,
                  g)


@njit(**JIT)
def _add_pair(h, th, delta, key, first, pairs, scale, second, g):
    """g[j] += scale z1 [|x_j| < delta z1] + second z2 [|x_j| < delta z2], (z1, z2) the pair of
    counter ``first + j pairs`` (in 32 bits, so the loop vectorises)."""
    for j in range(np.int32(len(g))):
        a = mix32(U32(key ^ U32(first + U32(j) * pairs)))
        z1, z2 = half_normal_pair(a, mix32(U32(a ^ GOLDEN)))
        x = abs(h[j] - th)
        g[j] += (z1 * scale if x < delta * z1 else ZERO) + (
            z2 * second if x < delta * z2 else ZERO)


@njit(**JIT)
def localzo_sample(x, delta, samples, seed, start, g):
    """``localzo_surrogate`` at x (theta 0): the kernels' draws, for tests and benchmarks."""
    for lo in range(0, len(x), BLOCK):
        hi = min(lo + BLOCK, len(x))
        localzo_surrogate(x[lo:hi], ZERO, delta, samples, seed, start + lo, g[lo:hi])

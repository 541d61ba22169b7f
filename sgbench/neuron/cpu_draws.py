"""LocalZO's random surrogate drawn inside the numba kernels (Mukhoty et al., NeurIPS 2023,
Sec. 4): a counter-based generator, the same as the CUDA kernels' (cupy_source.py)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .cpu_math import (DRAWS_BLOCK, F32, HALF, JIT, JIT_INTERLEAVED, ONE, SQRT_HALF, TWO, ZERO,
                       fast_log)


# g(x) = (1 / m) sum_i |z_i| [|x| < delta |z_i|] / (2 delta), z_i ~ N(0, 1) drawn per neuron,
# step and sample from a counter-based generator, so any neuron's draws are known without a
# stream, on CPU as in the CUDA kernels (cupy_source.py). Draws come in Box-Muller pairs (z1, z2)
# = sqrt(-2 log u) (cos phi, sin phi), phi uniform on [0, pi/2) (so both are |z|): u from the
# 32-bit word a = mix(key ^ counter), phi from b = mix(a ^ GOLDEN), mix being C. Wellons'
# "lowbias32" integer hash. Neuron n's m // 2 pairs have the counters n (m // 2) + q under key =
# mix(seed); an odd m's last draw comes from a pair that neurons 2P and 2P + 1 share (z1 and z2
# of counter P under mix(key ^ SHARED)), so no draw is made and thrown away. All in 32-bit lanes
# (Numba widens integer arithmetic to 64 bits unless told), so the loops vectorise. The torch
# backend draws from torch's generator instead: the same distribution, another stream.
U32 = np.uint32
MIX1, MIX2, GOLDEN = U32(0x7FEB352D), U32(0x846CA68B), U32(0x9E3779B9)
SHARED = U32(0x85EBCA6B)  # the shared pairs' key: mix(key ^ SHARED)
U24 = F32(1.0 / (1 << 24))
# sinf / cosf on [-pi/4, pi/4] as in Cephes (Moshier 1989): within a few ulp
SIN_POLY = (F32(-1.9515295891e-4), F32(8.3321608736e-3), F32(-1.6666654611e-1))
COS_POLY = (F32(2.443315711809948e-5), F32(-1.388731625493765e-3), F32(4.166664568298827e-2))
QUARTER_PI = F32(math.pi / 4)
WORK_ROWS = 4  # float rows of the scratch ``localzo_surrogate`` takes


@njit(**JIT)
def mix32(x):
    """lowbias32 (C. Wellons, "Hash function prospector", 2018) of a uint32, in uint32."""
    x = U32(x ^ (x >> U32(16)))
    x = U32(x * MIX1)
    x = U32(x ^ (x >> U32(15)))
    x = U32(x * MIX2)
    return U32(x ^ (x >> U32(16)))


@njit(**JIT_INTERLEAVED)
def draw_pairs(key, counters, radius, angle):
    """The pairs of ``counters`` (32 bits): radius[i] = sqrt(-2 log u) / sqrt 2 with u = (a's
    top 24 bits + 1/2) / 2^24, angle[i] = phi - pi/4 with phi = pi/2 (b's top 24 bits) / 2^24.
    The logarithm has a loop of its own: each loop's dependency chain is shorter, and on a CPU
    whose out-of-order window the long chain filled, that is faster (1.53 -> 1.26 ns a draw at
    m = 5 on an AMD EPYC, the same numbers)."""
    for i in range(np.int32(len(radius))):
        a = mix32(U32(key ^ counters[i]))
        b = mix32(U32(a ^ GOLDEN))
        radius[i] = (F32(np.int32(a >> U32(8))) + HALF) * U24  # u, for now
        angle[i] = (F32(np.int32(b >> U32(8))) * U24 - HALF) * TWO * QUARTER_PI
    for i in range(np.int32(len(radius))):
        radius[i] = math.sqrt(-TWO * fast_log(radius[i])) * SQRT_HALF


@njit(inline="always", **JIT)
def half_normal_pair(radius, f):
    """(z1, z2) = r (cos phi, sin phi) from ``draw_pairs``' radius r / sqrt 2 and angle f = phi -
    pi/4: cos phi = (cos f - sin f) / sqrt 2, sin phi = (cos f + sin f) / sqrt 2."""
    f2 = f * f
    sin_f = f + f * f2 * ((SIN_POLY[0] * f2 + SIN_POLY[1]) * f2 + SIN_POLY[2])
    cos_f = ONE - HALF * f2 + f2 * f2 * ((COS_POLY[0] * f2 + COS_POLY[1]) * f2 + COS_POLY[2])
    return radius * (cos_f - sin_f), radius * (cos_f + sin_f)


@njit(**JIT_INTERLEAVED)
def localzo_surrogate(h, th, delta, samples, seed, start, need, g, work, index, counters):
    """g[:] = LocalZO's sample at x = h - th of the neurons from ``start`` on (the shape's
    parameters delta, samples m and the step's seed) where need[j] != 0, and 0 where need[j] is
    0: the backward kernel passes dL/dS there, which multiplies g, so the draws it would throw
    away are not made (after a 2x2 max-pool, 3 in 4 neurons get no dL/dS at the last step). A
    neuron's draws are its own (its counters), so the ones made are those a full pass makes.
    Scratch: ``work`` [WORK_ROWS, len(g)] floats, ``index`` and ``counters`` [len(g)]."""
    n, m = np.int32(len(g)), np.int32(samples)
    count = np.int32(0)
    for j in range(n):  # the neurons to draw for, in order
        g[j] = ZERO
        index[count] = j
        count += np.int32(1) if need[j] != ZERO else np.int32(0)
    full, key = U32(m // 2), mix32(U32(np.int32(seed)))
    distance, total, radius, angle = work[0, :count], work[1, :count], work[2, :count], \
        work[3, :count]
    chosen, counter = index[:count], counters[:count]
    for k in range(count):
        distance[k] = abs(h[chosen[k]] - th)
        total[k] = ZERO
    for q in range(m // 2):  # neuron j's pair q: counter (start + j) (m // 2) + q
        for k in range(count):
            counter[k] = U32(U32(U32(start) + U32(chosen[k])) * full + U32(q))
        draw_pairs(key, counter, radius, angle)
        for k in range(count):
            z1, z2 = half_normal_pair(radius[k], angle[k])
            total[k] += ((z1 if distance[k] < delta * z1 else ZERO)
                         + (z2 if distance[k] < delta * z2 else ZERO))
    if m % 2:
        _add_shared_draws(key, start, delta, chosen, distance, radius, angle, counter, total)
    scale = ONE / (F32(samples) * TWO * delta)
    for k in range(count):
        g[chosen[k]] = total[k] * scale


@njit(**JIT_INTERLEAVED)
def _add_shared_draws(key, start, delta, chosen, distance, radius, angle, counter, total):
    """An odd m's last draw: neuron n takes z1 (n even) or z2 (n odd) of shared pair n // 2."""
    for k in range(len(chosen)):
        counter[k] = U32(U32(U32(start) + U32(chosen[k])) >> U32(1))
    draw_pairs(mix32(U32(key ^ SHARED)), counter, radius, angle)
    for k in range(len(chosen)):
        z1, z2 = half_normal_pair(radius[k], angle[k])
        z = z2 if (start + chosen[k]) & 1 else z1
        total[k] += z if distance[k] < delta * z else ZERO


@njit(**JIT)
def localzo_sample(x, delta, samples, seed, start, g):
    """``localzo_surrogate`` at x (theta 0): the kernels' draws, for tests and benchmarks."""
    work = np.empty((WORK_ROWS, DRAWS_BLOCK), np.float32)
    index, counters = np.empty(DRAWS_BLOCK, np.int32), np.empty(DRAWS_BLOCK, np.uint32)
    need = np.ones(DRAWS_BLOCK, np.float32)
    for lo in range(0, len(x), DRAWS_BLOCK):
        hi = min(lo + DRAWS_BLOCK, len(x))
        localzo_surrogate(x[lo:hi], ZERO, delta, samples, seed, start + lo, need[:hi - lo],
                          g[lo:hi], work, index, counters)

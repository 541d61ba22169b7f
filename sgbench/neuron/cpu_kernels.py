"""Numba kernels of the ``numba`` CPU backend: charge, fire and reset over all T in one pass, and
their BPTT in one pass back; and the 2x2 max-pool of models/pool.py, alone or inside those
passes (the spikes pooled while in cache, the pooled gradient spread back the same way). Imported
only when they first run (importing numba takes time).

The arithmetic is the torch backend's (engine.py) and the CUDA kernels' (cupy_source.py), per
neuron: H[t] = k V[t-1] + c X[t] + b; S[t] = H[t] >= theta[t]; hard reset V = S ? v_reset : H, soft
V = H - theta S. Backward, with x = H - theta[t] and g the surrogate:

    dL/dS  = grad_s + dL/dV[t] (v_reset - H)   (hard; soft: - dL/dV[t] theta; none if detached)
    dL/dH  = dL/dV[t] [x < 0] + dL/dS g         (hard; soft: dL/dV[t] + dL/dS g) + grad_h
    dL/dV[t-1] = k dL/dH

Each call handles the neurons [lo, hi): the caller splits a layer over threads (the kernels release
the GIL). Within a range, neurons go in blocks of BLOCK (whole pairs of rows when pooling) with t
as the outer loop, so the inner loop runs over consecutive neurons (vectorisable) while V and
dL/dV stay in cache. Floats are kept in float32 as in the torch backend.

One file on purpose (a little over the house's 400 lines): Numba's disk cache (``cache=True``)
keys a compiled kernel on its own file only, so a kernel that inlines a function from another
module would keep running its old compiled copy after that module changed. The pooling helpers
are inlined into the neuron kernels, so they stay beside them.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import kernel_cache

BLOCK = 2048
F32 = np.float32
ZERO, ONE, TWO = F32(0.0), F32(1.0), F32(2.0)
HALF, HALF_PI = F32(0.5), F32(math.pi / 2)
LOW_WORD = np.uint64(0xFFFFFFFF)

# the built-in shapes with a kernel here (shapes.py gives the same formulas in torch)
KINDS = {"rect": 0, "triangle": 1, "ramp": 2, "sigmoid": 3, "atan": 4, "superspike": 5,
         "dspike": 6, "exponential": 7, "localzo": 8}
LOCALZO = 8  # a random surrogate: drawn per neuron, step and sample (random_draws.py)
# the kinds whose parameter gradients sum(dL/dS dF/dp) the backward kernel makes itself (the
# learnable widths and thresholds of PSG+PDA and TrSG); others leave them to Shape.param_grads
PARAM_KINDS = (0,)

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


@njit(inline="always", **JIT)
def surrogate(kind, x, p0, p1, p2, p3):
    """g(x; p) of built-in shape ``kind`` with the step's parameters p0..p3 (as many as it has)."""
    if kind == 0:  # rect: area_left/left on [-left, 0), area_right/right on [0, right]
        if x >= -p0 and x < ZERO:
            return p2 / p0
        if x >= ZERO and x <= p1:
            return p3 / p1
        return ZERO
    if kind == 1:  # triangle: height * max(0, 1 - |x| / width), width by side
        w = p0 if x < ZERO else p1
        return p2 * max(ZERO, ONE - abs(x) / w)
    if kind == 2:  # ramp: max(0, slope x + bias) on [-left, right]
        if x < -p0 or x > p1:
            return ZERO
        return max(ZERO, p2 * x + p3)
    if kind == 3:  # sigmoid: alpha s (1 - s), s = sigmoid(alpha x)
        s = ONE / (ONE + fast_exp(-p0 * x))
        return p0 * s * (ONE - s)
    if kind == 4:  # atan: alpha / (2 (1 + (pi/2 alpha x)^2))
        u = HALF_PI * p0 * x
        return p0 / (TWO * (ONE + u * u))
    if kind == 5:  # superspike: 1 / (1 + beta |x|)^2
        d = ONE + p0 * abs(x)
        return ONE / (d * d)
    if kind == 6:  # dspike: b (1 - tanh^2(b x / w)) / (2 w tanh(b / 2)) on |x| <= w / 2
        if abs(x) > HALF * p1:
            return ZERO
        t = fast_tanh(p0 * x / p1)
        return p0 * (ONE - t * t) / (TWO * p1 * fast_tanh(HALF * p0))
    return p0 * fast_exp(-p1 * abs(x))  # exponential: alpha exp(-beta |x|)


# -- LocalZO's random surrogate (Mukhoty et al., NeurIPS 2023, Sec. 4) -------------------------
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
# logf, and sinf / cosf on [-pi/4, pi/4], as in Cephes (Moshier 1989): within a few ulp
LOG_POLY = tuple(F32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                  -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
SIN_POLY = (F32(-1.9515295891e-4), F32(8.3321608736e-3), F32(-1.6666654611e-1))
COS_POLY = (F32(2.443315711809948e-5), F32(-1.388731625493765e-3), F32(4.166664568298827e-2))
SQRT_HALF, QUARTER_PI = F32(0.707106781186547524), F32(math.pi / 4)


@njit(inline="always", **JIT)
def mix32(x):
    """lowbias32 (C. Wellons, "Hash function prospector", 2018) of a uint32, in uint32."""
    x = U32(x ^ (x >> U32(16)))
    x = U32(x * MIX1)
    x = U32(x ^ (x >> U32(15)))
    x = U32(x * MIX2)
    return U32(x ^ (x >> U32(16)))


@njit(inline="always", **JIT)
def fast_log(x):
    """log(x) for a normal float32 0 < x < 2 (Cephes' logf, branch-free)."""
    bits = _bits_from_float(x)
    e = F32(np.int32(np.int32(bits >> np.int32(23)) - np.int32(126)))
    m = _float_from_bits(np.int32((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000)))
    small = m < SQRT_HALF  # m in [0.5, 1): shift to [sqrt(1/2), sqrt 2) - 1
    e = e - ONE if small else e
    m = m + m - ONE if small else m - ONE
    z = m * m
    poly = LOG_POLY[0]
    for c in LOG_POLY[1:]:
        poly = poly * m + c
    return m + (poly * m * z - HALF * z + LN2_LO * e) + LN2_HI * e


@njit(inline="always", **JIT)
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


@njit(inline="always", **JIT)
def localzo_surrogate(h, th, delta, samples, seed, start, g):
    """g[:] = LocalZO's sample at x = h - th of the neurons from ``start`` on (the shape's
    parameters delta, samples m and the step's seed)."""
    m = np.int32(samples)
    pairs, key = U32((m + 1) // 2), mix32(U32(np.int32(seed)))
    scale = ONE / (F32(samples) * TWO * delta)
    g[:] = ZERO
    for q in range(np.int32(pairs)):
        second = scale if 2 * q + 1 < m else ZERO  # an odd m leaves the last pair's second out
        for j in range(len(g)):
            a = mix32(U32(key ^ U32(U32(U32(start + j) * pairs) + U32(q))))
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


@functools.lru_cache(maxsize=None)
def forward_kernel(lerp: bool, hard: bool):
    """The forward kernel of one variant (its flags are compile-time constants, so no branch on
    them is left in the loop). ``lerp``: charge as torch.lerp(V, X, c) (decay-input LIF,
    k = 1 - c), as the torch backend does; ``hard``: hard reset."""
    @njit(**JIT)
    def forward(lo, hi, x, v0, v0_scalar, theta, k, c, b, v_reset, s, h, v_out, pooled, where,
                width):
        """s, h: [T, N]; x: [T, N], or [1, N] for an input that is the same at every step; v0: [N]
        or None (every neuron starts at v0_scalar); v_out: [N]. ``pooled``, ``where`` [T, N / 4]:
        None, or the spikes' 2x2 max-pool as ``max_pool_2x2`` makes it, of planes of rows
        ``width`` long (lo and hi are then whole pairs of rows)."""
        _forward(lo, hi, x, v0, v0_scalar, theta, k, c, b, v_reset, s, h, v_out, pooled, where,
                 width, lerp, hard)
    return forward


@njit(inline="always", **JIT)
def block_length(width, pooling):
    """Neurons per block: BLOCK, or when pooling whole pairs of rows (at least one)."""
    if not pooling:
        return BLOCK
    pair = 2 * width
    return max(pair, BLOCK // pair * pair)


@njit(inline="always", **JIT)
def _forward(lo, hi, x, v0, v0_scalar, theta, k, c, b, v_reset, s, h, v_out, pooled, where,
             width, lerp, hard):
    step = block_length(width, pooled is not None)
    unkept = np.empty(step, np.float32)  # H, where the caller does not keep it
    for start in range(lo, hi, step):
        end = min(start + step, hi)
        v = v_out[start:end]
        initial_potentials(v, v0, v0_scalar, start)
        for t in range(len(theta)):
            charge_fire_reset(_step_row(x, t, start, end), v, _row(h, t, start, end, unkept),
                              s[t, start:end], theta[t], k, c, b, v_reset, lerp, hard)
            if pooled is not None:  # the block's spikes are still in cache
                _pool_rows(s.view(np.uint64)[t, start // 2:end // 2], pooled[t], where[t], start,
                           width)


@njit(inline="always", **JIT)
def initial_potentials(v, v0, v0_scalar, start):
    """v = V0 of the neurons from ``start`` on: v0's, or v0_scalar for all (v0 None)."""
    for j in range(len(v)):
        v[j] = v0_scalar if v0 is None else v0[start + j]


@njit(inline="always", **JIT)
def _step_row(x, t, start, end):
    """The input of step t of the neurons [start, end): x [T, N], or [1, N] (the same at every
    step)."""
    return x[min(t, x.shape[0] - 1), start:end]


@njit(inline="always", **JIT)
def charge_fire_reset(xt, v, ht, st, th, k, c, b, v_reset, lerp, hard):
    """One step of a block: H = k V + c X + b into ``ht``, the spikes into ``st``, V reset in
    place."""
    small = c < HALF  # torch.lerp's two formulas, chosen by the size of the weight
    for j in range(len(v)):
        if not lerp:
            hv = c * xt[j] + k * v[j]
        elif small:
            hv = v[j] + c * (xt[j] - v[j])
        else:
            hv = xt[j] - (xt[j] - v[j]) * (ONE - c)
        hv += b
        fired = hv >= th
        ht[j] = hv
        st[j] = ONE if fired else ZERO
        if hard:
            v[j] = v_reset if fired else hv
        else:
            v[j] = hv - th if fired else hv


@njit(inline="always", **JIT)
def rect_param_terms(x, left, right, area_left, area_right, gs, out, j):
    """out[:, j] = gs dF/dp of the rectangle's primitive (shapes.py, ``_rect_primitive``) with
    respect to left, right, area_left and area_right at x = H - theta."""
    on_left, on_right = x >= -left and x < ZERO, x >= ZERO and x <= right
    out[0, j] = -gs * area_left * x / (left * left) if on_left else ZERO
    out[1, j] = -gs * area_right * x / (right * right) if on_right else ZERO
    out[2, j] = gs * ((x + left) / left) if on_left else (gs if x >= ZERO else ZERO)
    out[3, j] = gs * (x / right) if on_right else (gs if x > right else ZERO)


@functools.lru_cache(maxsize=None)
def backward_kernel(kind: int, hard: bool, detach: bool, need_theta: bool, need_k: bool,
                    one_frame: bool, lerp: bool, need_p: bool = False):
    """The backward kernel of one variant: surrogate ``kind`` (KINDS), hard reset, detached
    reset, dL/dtheta and dL/dk wanted, an input that was one frame for every step (then grad_x
    [1, N] receives the sum over the steps), the forward's charge (``lerp``, for H
    recomputed), and the shape parameters' gradients wanted (kinds in PARAM_KINDS)."""
    @njit(**JIT)
    def backward(lo, hi, h, x_in, v0, v0_scalar, theta, p, grad_s, grad_v, grad_h, k, c, b,
                 v_reset, grad_x, grad_v0, gs_out, sums, grad_pooled, where, width):
        """BPTT of the neurons [lo, hi). ``h`` [T, N]: the forward's H, or None: then H is
        recomputed, a block at a time, from the input ``x_in`` (the forward's arithmetic, so the
        same numbers). None stands for "not given" (grad_s, grad_v, grad_h, grad_pooled) and
        "not needed" (grad_x, grad_v0, gs_out). ``sums`` [T + 1, 1 + P] receives this range's
        dL/dtheta[t] (column 0) and, in row T, its dL/dk = sum_t <dL/dH[t], V[t-1]>; with
        ``need_p``, columns 1.. receive sum(dL/dS dF/dp) of each step and parameter. ``grad_pooled``
        [T, N / 4]: the gradient of the forward's pooled spikes, added to dL/dS at each
        window's maximum (``where``)."""
        _backward(lo, hi, h, x_in, v0, v0_scalar, theta, p, grad_s, grad_v, grad_h, k, c, b,
                  v_reset, grad_x, grad_v0, gs_out, sums, grad_pooled, where, width, kind,
                  hard, detach, need_theta, need_k, one_frame, lerp, need_p)
    return backward


@njit(inline="always", **JIT)
def _backward(lo, hi, h, x_in, v0, v0_scalar, theta, p, grad_s, grad_v, grad_h, k, c, b, v_reset,
              grad_x, grad_v0, gs_out, sums, grad_pooled, where, width, kind, hard,
              detach, need_theta, need_k, one_frame, lerp, need_p):
    T = len(theta)
    step = block_length(width, grad_pooled is not None)
    gv, g = np.empty(step, dtype=np.float32), np.empty(step, dtype=np.float32)
    unpooled = np.empty(step, dtype=np.float32)  # dL/dS from grad_pooled
    # per-neuron terms of the dL/dtheta[t] and dL/dk sums, summed after each loop (a float sum
    # inside it would keep the loop from being vectorised); V[t-1] for dL/dk
    theta_terms, k_terms = np.empty(step, np.float32), np.empty(step, np.float32)
    p_terms = np.empty((4 if need_p else 0, step), np.float32)
    v_prev = np.empty(step, np.float32)
    # H recomputed (when not given), with the potential and spikes it needs on the way
    h_block = np.empty((T if h is None else 1) * step, np.float32)  # rows of ``step``
    v_block, s_block = np.empty(step, np.float32), np.empty(step, np.float32)
    for start in range(lo, hi, step):
        end = min(start + step, hi)
        n = end - start
        _recompute_h(x_in, start, end, v0, v0_scalar, theta, k, c, b, v_reset, lerp, hard,
                     h_block, v_block, s_block)
        for j in range(n):
            gv[j] = ZERO if grad_v is None else grad_v[start + j]
        k_terms[:n] = ZERO
        if one_frame and grad_x is not None:
            grad_x[0, start:end] = ZERO
        for t in range(T - 1, -1, -1):
            th = theta[t]
            ht = _row(h, t, start, end, h_block[t * step:t * step + n])  # forward's or remade
            gst, ght = _row(grad_s, t, start, end, ht), _row(grad_h, t, start, end, ht)
            gso = _row(gs_out, t, start, end, ht)
            if grad_pooled is not None:
                _unpool_rows(grad_pooled[t], where[t], unpooled, start, end, width)
            gxt = _row(grad_x, 0 if one_frame else t, start, end, ht)
            last = p.shape[1] - 1  # a shape with fewer parameters ignores the rest
            p0, p1, p2, p3 = p[t, 0], p[t, min(1, last)], p[t, min(2, last)], p[t, min(3, last)]
            if kind == LOCALZO:
                localzo_surrogate(ht, th, p0, p1, p2, start, g[:n])
            else:
                for j in range(n):  # the surrogate in a loop of its own: it vectorises there
                    g[j] = surrogate(kind, ht[j] - th, p0, p1, p2, p3)
            if need_k:
                before = max(t - 1, 0)
                previous_potentials(_row(h, before, start, end,
                                         h_block[before * step:before * step + n]), t == 0,
                                    v0, v0_scalar, start, theta[before], v_reset, hard,
                                    v_prev[:n])
            for j in range(n):
                g_in = gv[j]
                hv = ht[j]
                x = hv - th
                gs = ZERO if grad_s is None else gst[j]
                if grad_pooled is not None:
                    gs += unpooled[j]
                if not detach:
                    gs += g_in * (v_reset - hv) if hard else -g_in * th
                d = (g_in if x < ZERO else ZERO) if hard else g_in
                d += gs * g[j]
                if grad_h is not None:
                    d += ght[j]
                if grad_x is not None:
                    if one_frame:
                        gxt[j] += c * d
                    else:
                        gxt[j] = c * d
                if gs_out is not None:
                    gso[j] = gs
                if need_theta:
                    theta_terms[j] = -gs * g[j] - (g_in if (not hard and x >= ZERO) else ZERO)
                if need_k:
                    k_terms[j] += d * v_prev[j]
                if need_p:
                    rect_param_terms(x, p0, p1, p2, p3, gs, p_terms, j)
                gv[j] = d * k
            if need_theta:
                sums[t, 0] += lane_sum(theta_terms, n)
            for i in range(len(p_terms)):
                sums[t, 1 + i] += lane_sum(p_terms[i], n)
        if need_k:
            sums[T, 0] += lane_sum(k_terms, n)
        if grad_v0 is not None:
            grad_v0[start:end] = gv[:n]


@njit(**{**JIT, "fastmath": {"contract", "reassoc"}})
def lane_sum(a, n):
    """sum(a[:n]) in float64, in any order (so it vectorises)."""
    total = 0.0
    for j in range(n):
        total += a[j]
    return total


@njit(inline="always", **JIT)
def _row(a, t, start, end, stand_in):
    """a[t, start:end], or ``stand_in`` where ``a`` is None."""
    if a is None:
        return stand_in
    return a[t, start:end]


@njit(inline="always", **JIT)
def _recompute_h(x_in, start, end, v0, v0_scalar, theta, k, c, b, v_reset, lerp, hard,
                 h_block, v_block, s_block):
    """Where the forward did not keep H (then its input ``x_in`` is given, else None): H of the
    neurons [start, end) into h_block, made from the input as the forward made it."""
    if x_in is None:  # (Numba drops the rest for a None argument, not for an array's test)
        return
    n = end - start
    initial_potentials(v_block[:n], v0, v0_scalar, start)
    step = len(v_block)
    for t in range(len(theta)):
        charge_fire_reset(_step_row(x_in, t, start, end), v_block[:n],
                          h_block[t * step:t * step + n], s_block[:n], theta[t], k, c, b,
                          v_reset, lerp, hard)


@njit(inline="always", **JIT)
def previous_potentials(h_before, first, v0, v0_scalar, start, th_before, v_reset, hard, out):
    """out = V[t-1] of the neurons from ``start`` on, made from H[t-1] (``h_before``) or, at the
    ``first`` step, V0; in a loop over one row (it vectorises)."""
    if first:
        initial_potentials(out, v0, v0_scalar, start)
        return
    for j in range(len(out)):
        fired = h_before[j] >= th_before
        if hard:
            out[j] = v_reset if fired else h_before[j]
        else:
            out[j] = h_before[j] - th_before if fired else h_before[j]


@njit(**JIT)
def max_pool_2x2(lo, hi, pairs, out, where):
    """2x2, stride-2 max-pooling of planes [lo, hi) of x [P, H, W] (H and W even), given as
    ``pairs`` [P, H, W / 2] (uint64: two neighbouring floats of a row in one word, so the loop
    reads consecutive words and vectorises), into out [P, H/2, W/2]; ``where`` (uint8) keeps the
    window offset of the maximum: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. As
    PyTorch's kernel: the first maximum in row-major order wins, and a NaN wins over any number
    (the last NaN, over another)."""
    for q in range(lo, hi):
        for r in range(out.shape[1]):
            _pool_pair(pairs[q, 2 * r], pairs[q, 2 * r + 1], out[q, r], where[q, r])


@njit(inline="always", **JIT)
def _pool_pair(top, bottom, out, where):
    """One output row of ``max_pool_2x2`` from its two input rows (as pairs). The window's
    first maximum in row-major order, found as the later of each row's pair wins only if
    greater (or NaN), then the lower row's only if greater (or NaN): the same as scanning."""
    for col in range(out.shape[0]):
        a, b = _halves(top[col])
        c, d = _halves(bottom[col])
        right, lower = b > a or np.isnan(b), d > c or np.isnan(d)
        upper_max, lower_max = b if right else a, d if lower else c
        down = lower_max > upper_max or np.isnan(lower_max)
        out[col] = lower_max if down else upper_max
        where[col] = (2 + lower) if down else right


@njit(inline="always", **JIT)
def _halves(word):
    """The two float32 of a uint64 word, first the one stored first (little-endian)."""
    return (_float_from_bits(np.int32(np.uint32(word & LOW_WORD))),
            _float_from_bits(np.int32(np.uint32(word >> np.uint64(32)))))


@njit(inline="always", **JIT)
def _pool_rows(pairs, out, where, start, width):
    """``max_pool_2x2`` of the rows ``width`` long in ``pairs`` (as pairs), the neurons from
    ``start`` (a multiple of 2 width) of planes of an even height; out and where: all pooled
    rows, in which these begin at start / 4."""
    half = width // 2
    for r in range(len(pairs) // width):
        at = start // 4 + r * half
        _pool_pair(pairs[2 * r * half:(2 * r + 1) * half],
                   pairs[(2 * r + 1) * half:(2 * r + 2) * half], out[at:at + half],
                   where[at:at + half])


@njit(**JIT)
def max_pool_2x2_backward(lo, hi, grad_out, where, grad_in):
    """The gradient of ``max_pool_2x2``: grad_in [P, H, W] (every element written) receives each
    output's gradient at its maximum's place, zero elsewhere."""
    for q in range(lo, hi):
        for r in range(grad_out.shape[1]):
            _unpool_pair(grad_out[q, r], where[q, r], grad_in[q, 2 * r], grad_in[q, 2 * r + 1])


@njit(inline="always", **JIT)
def _unpool_pair(grad, where, top, bottom):
    """Two rows of ``max_pool_2x2_backward`` (every element written) from one output row, in a
    loop over the input columns (consecutive stores vectorise)."""
    for j in range(top.shape[0]):
        value, off = grad[j >> 1], where[j >> 1]
        top[j] = value if off == (j & 1) else ZERO
        bottom[j] = value if off == 2 + (j & 1) else ZERO


@njit(inline="always", **JIT)
def _unpool_rows(grad, where, rows, start, end, width):
    """``_pool_rows`` backward: rows[:end - start] (every element written) receive the gradient
    of the pooled rows of the neurons [start, end)."""
    half = width // 2
    for r in range((end - start) // (2 * width)):
        at = start // 4 + r * half
        _unpool_pair(grad[at:at + half], where[at:at + half],
                     rows[2 * r * width:(2 * r + 1) * width],
                     rows[(2 * r + 1) * width:(2 * r + 2) * width])

"""Numba kernels of the ``numba`` CPU backend: charge, fire and reset over all T in one pass, and
their BPTT in one pass back, with the 2x2 max-pool (cpu_pool.py) inside those passes where one
follows and LocalZO's draws (cpu_draws.py) inside the backward pass. Imported only when they
first run (importing numba takes time).

The arithmetic is the torch backend's (engine.py) and the CUDA kernels' (cupy_source.py), per
neuron: H[t] = k V[t-1] + c X[t] + b; S[t] = H[t] >= theta[t]; hard reset V = S ? v_reset : H, soft
V = H - theta S. Backward, with x = H - theta[t] and g the surrogate:

    dL/dS  = grad_s + dL/dV[t] (v_reset - H)   (hard; soft: - dL/dV[t] theta; none if detached)
    dL/dH  = dL/dV[t] [x < 0] + dL/dS g         (hard; soft: dL/dV[t] + dL/dS g) + grad_h
    dL/dV[t-1] = k dL/dH

Each call handles the neurons [lo, hi): the caller splits a layer over threads (the kernels release
the GIL). Within a range, neurons go in blocks of BLOCK (DRAWS_BLOCK in LocalZO's backward;
whole pairs of rows when pooling) with t as the outer loop, so the inner loop runs over
consecutive neurons (vectorisable) while V and dL/dV stay in cache (cpu_math.py says why the
blocks are short). Floats are kept in float32 as in the torch backend.

Each kernel variant is a closure of its factory (``forward_kernel``, ``backward_kernel``): its
flags and surrogate are constants there, so numba drops the branches not taken. Helpers are plain
jitted functions that LLVM inlines; numba's own inlining (``inline="always"``) is kept for the
surrogates (so a kernel's loop sees its formula), the forward step's helpers and pooling (where
LLVM's inlining measured slower) and the rectangle's parameter terms, as numba's inliner costs
compile time: ~5 s a backward variant when it inlined every helper, ~1 s now (a clean test run
compiles about a hundred variants).

The backward kernels of the shapes built on exp (ON_EXP) and LocalZO's draws compile with four
vectors interleaved in each loop (cpu_math.InterleavedLoops): their arithmetic is a long chain
of dependent operations that one vector an iteration leaves waiting on latency.

Numba's disk cache keys a compiled kernel on its own file only; kernel_cache.py extends the key
to every kernel module (cpu_*.py), so a kernel that inlines a helper from another one is
compiled again when that helper changes.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from .cpu_draws import (WORK_ROWS, localzo_sample,  # noqa: F401 (localzo_sample: tests)
                        localzo_surrogate)
from .cpu_math import (BLOCK, DRAWS_BLOCK, HALF, HALF_PI, JIT, ONE, TWO, ZERO,
                       JIT_INTERLEAVED, fast_exp, fast_tanh)
from .cpu_pool import (_pool_spike_rows, _unpool_rows, max_pool_2x2,  # noqa: F401 (models/pool.py)
                       max_pool_2x2_backward)

# the built-in shapes with a kernel here (shapes.py gives the same formulas in torch); the index
# of each in SURROGATES
KINDS = {"rect": 0, "triangle": 1, "ramp": 2, "sigmoid": 3, "atan": 4, "superspike": 5,
         "dspike": 6, "exponential": 7, "localzo": 8}
LOCALZO = 8  # a random surrogate: drawn per neuron, step and sample (cpu_draws.py)
# the kinds built on exp, whose backward kernels interleave four vectors a loop
# (cpu_math.InterleavedLoops); the cheaper shapes measured the same or slower with it
ON_EXP = tuple(KINDS[name] for name in ("sigmoid", "dspike", "exponential"))
# the kinds whose parameter gradients sum(dL/dS dF/dp) the backward kernel makes itself (the
# learnable widths and thresholds of PSG+PDA and TrSG); others leave them to Shape.param_grads
PARAM_KINDS = (0,)


# g(x; p) of each built-in shape with a kernel here, given the step's parameters p0..p3 (as many
# as it has); one small function each, inlined where the kernel of that kind is compiled
@njit(inline="always", **JIT)
def rect(x, p0, p1, p2, p3):
    """area_left/left on [-left, 0), area_right/right on [0, right]."""
    if x >= -p0 and x < ZERO:
        return p2 / p0
    if x >= ZERO and x <= p1:
        return p3 / p1
    return ZERO


@njit(inline="always", **JIT)
def triangle(x, p0, p1, p2, p3):
    """height * max(0, 1 - |x| / width), width by side."""
    w = p0 if x < ZERO else p1
    return p2 * max(ZERO, ONE - abs(x) / w)


@njit(inline="always", **JIT)
def ramp(x, p0, p1, p2, p3):
    """max(0, slope x + bias) on [-left, right]."""
    if x < -p0 or x > p1:
        return ZERO
    return max(ZERO, p2 * x + p3)


@njit(inline="always", **JIT)
def sigmoid(x, p0, p1, p2, p3):
    """alpha s (1 - s), s = sigmoid(alpha x)."""
    s = ONE / (ONE + fast_exp(-p0 * x))
    return p0 * s * (ONE - s)


@njit(inline="always", **JIT)
def atan(x, p0, p1, p2, p3):
    """alpha / (2 (1 + (pi/2 alpha x)^2))."""
    u = HALF_PI * p0 * x
    return p0 / (TWO * (ONE + u * u))


@njit(inline="always", **JIT)
def superspike(x, p0, p1, p2, p3):
    """1 / (1 + beta |x|)^2."""
    d = ONE + p0 * abs(x)
    return ONE / (d * d)


@njit(inline="always", **JIT)
def dspike(x, p0, p1, p2, p3):
    """b (1 - tanh^2(b x / w)) / (2 w tanh(b / 2)) on |x| <= w / 2."""
    if abs(x) > HALF * p1:
        return ZERO
    t = fast_tanh(p0 * x / p1)
    return p0 * (ONE - t * t) / (TWO * p1 * fast_tanh(HALF * p0))


@njit(inline="always", **JIT)
def exponential(x, p0, p1, p2, p3):
    """alpha exp(-beta |x|)."""
    return p0 * fast_exp(-p1 * abs(x))


SURROGATES = (rect, triangle, ramp, sigmoid, atan, superspike, dspike, exponential)


@functools.lru_cache(maxsize=None)
def forward_kernel(lerp: bool, hard: bool):
    """The forward kernel of one variant (its flags are constants of the closure, so no branch
    on them is left in the loop). ``lerp``: charge as torch.lerp(V, X, c) (decay-input LIF,
    k = 1 - c), as the torch backend does; ``hard``: hard reset."""
    @njit(**JIT)
    def forward(lo, hi, x, v0, v0_scalar, theta, k, c, b, v_reset, s, h, v_out, pooled, where,
                width, depth):
        """s, h: [T, N]; x: [T, N], or [1, N] for an input that is the same at every step; v0: [N]
        or None (every neuron starts at v0_scalar); v_out: [N]. ``pooled``, ``where`` [T, N / 4]:
        None, or the spikes' 2x2 max-pool as ``max_pool_2x2`` makes it, of planes of rows
        ``width`` long, ``depth`` values a pixel (1, or the channels of channels-last storage;
        lo and hi are then whole pairs of rows)."""
        step = block_length(width, pooled is not None, BLOCK)
        for start in range(lo, hi, step):
            end = min(start + step, hi)
            v = v_out[start:end]
            initial_potentials(v, v0, v0_scalar, start)
            for t in range(len(theta)):
                xt, st = _step_row(x, t, start, end), s[t, start:end]
                if h is None:  # not kept: not stored either
                    charge_fire_reset(xt, v, None, st, theta[t], k, c, b, v_reset, lerp, hard)
                else:
                    charge_fire_reset(xt, v, h[t, start:end], st, theta[t], k, c, b, v_reset,
                                      lerp, hard)
                if pooled is not None:  # the block's spikes are still in cache
                    _pool_spike_rows(s[t, start:end], pooled[t], where[t], start, width,
                                     depth)
    return forward


@njit(**JIT)
def block_length(width, pooling, base):
    """Neurons per block: ``base``, or when pooling whole pairs of rows (at least one)."""
    if not pooling:
        return base
    pair = 2 * width
    return max(pair, base // pair * pair)


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
    place. ``ht`` or ``st`` None: not wanted, not stored (a store per neuron costs ~0.25 ns
    here, as much as the rest of the step)."""
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
        if ht is not None:
            ht[j] = hv
        if st is not None:
            st[j] = ONE if fired else ZERO
        if hard:
            v[j] = v_reset if fired else hv
        else:
            v[j] = hv - th if fired else hv


@njit(inline="always", **JIT)
def _spike_grad(grad_s, gst, grad_pooled, unpooled, g_in, hv, th, v_reset, hard, detach, j):
    """dL/dS[t] of neuron j: from the spikes' own gradient (``grad_s``, None: none), the
    pooled spikes' (``grad_pooled``, unpooled), and the reset through V[t] unless detached."""
    gs = ZERO if grad_s is None else gst[j]
    if grad_pooled is not None:
        gs += unpooled[j]
    if not detach:
        gs += g_in * (v_reset - hv) if hard else -g_in * th
    return gs


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
    if kind not in KINDS.values():
        raise ValueError(f"no kernel for surrogate kind {kind!r} (KINDS: built-in shapes only)")
    surrogate = SURROGATES[kind] if kind != LOCALZO else rect  # (LocalZO draws its own)

    @njit(**(JIT_INTERLEAVED if kind in ON_EXP else JIT))
    def backward(lo, hi, h, x_in, v0, v0_scalar, theta, p, grad_s, grad_v, grad_h, k, c, b,
                 v_reset, grad_x, grad_v0, gs_out, sums, grad_pooled, where, width, depth):
        """BPTT of the neurons [lo, hi). ``h`` [T, N]: the forward's H, or None: then H is
        recomputed, a block at a time, from the input ``x_in`` (the forward's arithmetic, so the
        same numbers). None stands for "not given" (grad_s, grad_v, grad_h, grad_pooled) and
        "not needed" (grad_x, grad_v0, gs_out). ``sums`` [T + 1, 1 + P] receives this range's
        dL/dtheta[t] (column 0) and, in row T, its dL/dk = sum_t <dL/dH[t], V[t-1]>; with
        ``need_p``, columns 1.. receive sum(dL/dS dF/dp) of each step and parameter. ``grad_pooled``
        [T, N / 4]: the gradient of the forward's pooled spikes, added to dL/dS at each
        window's maximum (``where``), pooled as the forward's (``width``, ``depth``)."""
        T = len(theta)
        step = block_length(width, grad_pooled is not None,
                            DRAWS_BLOCK if kind == LOCALZO else BLOCK)
        draws = step if kind == LOCALZO else 0  # the draws' scratch, and dL/dS made first
        work = np.empty((WORK_ROWS, draws), np.float32)
        index, counters = np.empty(draws, np.int32), np.empty(draws, np.uint32)
        spike_grad = np.empty(draws, np.float32)
        gv, g = np.empty(step, dtype=np.float32), np.empty(step, dtype=np.float32)
        unpooled = np.empty(step, dtype=np.float32)  # dL/dS from grad_pooled
        # per-neuron terms of the dL/dtheta[t] and dL/dk sums, summed after each loop (a float sum
        # inside it would keep the loop from being vectorised); V[t-1] for dL/dk
        theta_terms, k_terms = np.empty(step, np.float32), np.empty(step, np.float32)
        p_terms = np.empty((4 if need_p else 0, step), np.float32)
        v_prev = np.empty(step, np.float32)
        # H recomputed (when not given), with the potential it needs on the way
        h_block = np.empty((T if h is None else 1) * step, np.float32)  # rows of ``step``
        v_block = np.empty(step, np.float32)
        for start in range(lo, hi, step):
            end = min(start + step, hi)
            n = end - start
            _recompute_h(x_in, start, end, v0, v0_scalar, theta, k, c, b, v_reset, lerp, hard,
                         h_block, v_block)
            if need_k:  # (a memset a block otherwise: ~7 % of atan's backward)
                k_terms[:n] = ZERO
            if one_frame and grad_x is not None:
                grad_x[0, start:end] = ZERO
            for t in range(T - 1, -1, -1):
                th = theta[t]
                ht = _row(h, t, start, end, h_block[t * step:t * step + n])  # forward's or remade
                gst, ght = _row(grad_s, t, start, end, ht), _row(grad_h, t, start, end, ht)
                gso = _row(gs_out, t, start, end, ht)
                if grad_pooled is not None:
                    _unpool_rows(grad_pooled[t], where[t], unpooled, start, end, width, depth)
                gxt = _row(grad_x, 0 if one_frame else t, start, end, ht)
                last = p.shape[1] - 1  # a shape with fewer parameters ignores the rest
                p0, p1, p2, p3 = p[t, 0], p[t, min(1, last)], p[t, min(2, last)], p[t, min(3, last)]
                if t == T - 1:  # dL/dV at the last step: grad_v's, 0 without it (copied in
                    # first: read in the loop below, behind a branch, it kept that loop from
                    # being vectorised for the rectangle's parameter terms, 2x TrSG's step)
                    for j in range(n):
                        gv[j] = ZERO if grad_v is None else grad_v[start + j]
                if kind == LOCALZO:  # dL/dS first: no draws where it is 0 (cpu_draws.py)
                    for j in range(n):
                        spike_grad[j] = _spike_grad(grad_s, gst, grad_pooled, unpooled, gv[j],
                                                    ht[j], th, v_reset, hard, detach, j)
                    localzo_surrogate(ht, th, p0, p1, p2, start, spike_grad[:n], g[:n], work,
                                      index, counters)
                else:
                    for j in range(n):  # the surrogate in a loop of its own: it vectorises there
                        g[j] = surrogate(ht[j] - th, p0, p1, p2, p3)
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
                    if kind == LOCALZO:  # the value its draws were made for
                        gs = spike_grad[j]
                    else:
                        gs = _spike_grad(grad_s, gst, grad_pooled, unpooled, g_in, hv, th,
                                         v_reset, hard, detach, j)
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
    return backward


@njit(**{**JIT, "fastmath": {"contract", "reassoc"}})
def lane_sum(a, n):
    """sum(a[:n]) in float64, in any order (so it vectorises)."""
    total = 0.0
    for j in range(n):
        total += a[j]
    return total


@njit(**JIT)
def _row(a, t, start, end, stand_in):
    """a[t, start:end], or ``stand_in`` where ``a`` is None."""
    if a is None:
        return stand_in
    return a[t, start:end]


@njit(**JIT)
def _recompute_h(x_in, start, end, v0, v0_scalar, theta, k, c, b, v_reset, lerp, hard,
                 h_block, v_block):
    """Where the forward did not keep H (then its input ``x_in`` is given, else None): H of the
    neurons [start, end) into h_block, made from the input as the forward made it."""
    if x_in is None:  # (Numba drops the rest for a None argument, not for an array's test)
        return
    n = end - start
    initial_potentials(v_block[:n], v0, v0_scalar, start)
    step = len(v_block)
    for t in range(len(theta)):
        charge_fire_reset(_step_row(x_in, t, start, end), v_block[:n],
                          h_block[t * step:t * step + n], None, theta[t], k, c, b, v_reset,
                          lerp, hard)


@njit(**JIT)
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

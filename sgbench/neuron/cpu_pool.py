"""The 2x2, stride-2 max-pool of models/pool.py as Numba kernels, alone or inside the neuron
kernels' passes (cpu_kernels.py): the spikes pooled while in cache, the pooled gradient spread
back the same way."""
from __future__ import annotations

import numpy as np
from numba import njit

from .cpu_math import JIT, ONE, TWO, ZERO, _float_from_bits

THREE = np.float32(3.0)

LOW_WORD = np.uint64(0xFFFFFFFF)


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
def _pool_spike_rows(spikes, out, where, start, width, depth):
    """``max_pool_2x2`` of spikes (0 or 1) in rows ``width`` long, the neurons from ``start`` (a
    multiple of 2 width) of planes of an even height; out and where: all pooled rows, in which
    these begin at start / 4. ``depth`` values a pixel: 1 for planes [..., H, W], C for
    channels-last storage [..., H, W, C] (a row is then W C values). The same results as
    ``max_pool_2x2`` for such input, in loops that stay short and simple: one over the windows
    of a row where depth is 1 (rows of 7 or 14 windows cost 2.4 ns a window here, against 12 ns
    through ``_pool_pair``, whose vectorised loop never runs on rows that short), else one over
    the channels of a window's four pixels, taken as slices (it vectorises: 0.65 ns a window,
    against 2.4 with the pixels' values indexed in the rows)."""
    half = width // 2
    for r in range(len(spikes) // (2 * width)):
        top = spikes[2 * r * width:(2 * r + 1) * width]
        bottom = spikes[(2 * r + 1) * width:(2 * r + 2) * width]
        at = start // 4 + r * half
        pooled, place = out[at:at + half], where[at:at + half]
        if depth == 1:
            for col in range(half):
                a, b = top[2 * col], top[2 * col + 1]
                c, d = bottom[2 * col], bottom[2 * col + 1]
                pooled[col], place[col] = _pool_spike_window(a, b, c, d)
            continue
        for col in range(half // depth):
            left, right, out_at = 2 * col * depth, (2 * col + 1) * depth, col * depth
            a, b = top[left:right], top[right:right + depth]
            c, d = bottom[left:right], bottom[right:right + depth]
            pooled_px, place_px = pooled[out_at:out_at + depth], place[out_at:out_at + depth]
            for ch in range(depth):
                pooled_px[ch], place_px[ch] = _pool_spike_window(a[ch], b[ch], c[ch], d[ch])


@njit(inline="always", **JIT)
def _pool_spike_window(a, b, c, d):
    """A window of spikes (top left, top right, bottom left, bottom right): its maximum, and the
    place of its first 1 in row-major order (0 where there is none)."""
    return (max(max(a, b), max(c, d)),
            np.uint8((ONE - a) * (b + (ONE - b) * (TWO * c + (ONE - c) * THREE * d))))


@njit(**JIT)
def max_pool_2x2_backward(lo, hi, grad_out, where, grad_in):
    """The gradient of ``max_pool_2x2``: grad_in [P, H, W] (every element written) receives each
    output's gradient at its maximum's place, zero elsewhere."""
    for q in range(lo, hi):
        for r in range(grad_out.shape[1]):
            _unpool_pair(grad_out[q, r], where[q, r], grad_in[q, 2 * r], grad_in[q, 2 * r + 1],
                         1)


@njit(inline="always", **JIT)
def _unpool_pair(grad, where, top, bottom, depth):
    """Two rows of ``max_pool_2x2_backward`` (every element written) from one output row, in a
    loop over the windows (on the short rows of the kernels' blocks, 10 % faster than a loop over
    the input columns), or with ``depth`` > 1 (as in ``_pool_spike_rows``) over the channels of
    a window's four pixels, taken as slices."""
    if depth == 1:
        for col in range(grad.shape[0]):
            value, k = grad[col], where[col]
            top[2 * col] = value if k == 0 else ZERO
            top[2 * col + 1] = value if k == 1 else ZERO
            bottom[2 * col] = value if k == 2 else ZERO
            bottom[2 * col + 1] = value if k == 3 else ZERO
        return
    for col in range(grad.shape[0] // depth):
        left, right, out_at = 2 * col * depth, (2 * col + 1) * depth, col * depth
        value, k = grad[out_at:out_at + depth], where[out_at:out_at + depth]
        a, b = top[left:right], top[right:right + depth]
        c, d = bottom[left:right], bottom[right:right + depth]
        for ch in range(depth):
            a[ch] = value[ch] if k[ch] == 0 else ZERO
            b[ch] = value[ch] if k[ch] == 1 else ZERO
            c[ch] = value[ch] if k[ch] == 2 else ZERO
            d[ch] = value[ch] if k[ch] == 3 else ZERO


@njit(inline="always", **JIT)
def _unpool_rows(grad, where, rows, start, end, width, depth):
    """``_pool_spike_rows`` backward: rows[:end - start] (every element written) receive the
    gradient of the pooled rows of the neurons [start, end)."""
    half = width // 2
    for r in range((end - start) // (2 * width)):
        at = start // 4 + r * half
        _unpool_pair(grad[at:at + half], where[at:at + half],
                     rows[2 * r * width:(2 * r + 1) * width],
                     rows[(2 * r + 1) * width:(2 * r + 2) * width], depth)

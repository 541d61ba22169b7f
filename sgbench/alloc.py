"""CPU allocator tuning for large tensors.

glibc serves each allocation above its mmap threshold with fresh pages and returns them on free,
so every large temporary pays its page faults again; on virtual machines that costs more than the
arithmetic. Raising the mmap and trim thresholds keeps freed memory for reuse (the same effect as
the jemalloc/tcmalloc advice in PyTorch's CPU performance guide). Called once by the CLI.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30
_tuned = False


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds; returns whether the tuning is in effect."""
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    except (OSError, AttributeError):
        _tuned = False
    return _tuned


def allocator_tuned() -> bool:
    return _tuned

"""The numba kernels' disk cache, made to heal itself.

Numba keeps compiled kernels in an index file (``.nbi``) and data files (``.nbc``) beside the
source (or in ``NUMBA_CACHE_DIR``, or the user's cache). Numba reads them trusting their
content: an index holding random bytes or a data file cut in half raises UnpicklingError in
every run until someone deletes the cache, and a FIFO in their place blocks the run for ever.
``harden`` makes every cache entry that cannot be read (a special file, an unreadable or damaged
one) a miss: numba compiles the kernel again and writes the entry anew (through a temporary file
and a rename, so the damaged file is replaced), and the run says so in one line. It also keys
the entries of sgbench's kernel modules (``cpu_*.py``) on all of those files, not only the one
that defines the kernel: kernels inline helpers from the others, and numba alone would keep
running a stale compiled copy after such a helper changed. And it keys a kernel that closes
over another jitted function (a backward kernel over its surrogate) on that function's name:
numba hashes a closure's contents, and a dispatcher pickles with a new id in every process, so
such a kernel never found its entry and was compiled again in every process. ``usable``
tells whether any cache folder is writable for a source file; where none is, the kernels are
compiled in every process without a cache, and the run says that too.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import sys

_said: set[str] = set()


def say_once(key: str, message: str) -> None:
    """One line on stderr, once per process for each ``key``."""
    if key not in _said:
        _said.add(key)
        print(f"sgbench: {message}", file=sys.stderr)


def _regular_or_missing(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _damaged(path: str, exc: BaseException | None = None) -> None:
    reason = f"{type(exc).__name__}" if exc is not None else "not a regular file"
    say_once("cache-damaged", f"a numba kernel cache file could not be read ({path}: {reason}); "
                              f"the kernel is compiled again and the entry rewritten")


@functools.lru_cache(maxsize=None)
def harden() -> None:
    """Make numba's cache files fail soft (idempotent; affects this process's numba only)."""
    from numba.core import caching

    index_file = caching.IndexDataCacheFile
    load_index, load_data = index_file._load_index, index_file._load_data

    def safe_load_index(self):
        if not _regular_or_missing(self._index_path):
            _damaged(self._index_path)
            return {}
        try:
            return load_index(self)
        except Exception as exc:  # noqa: BLE001 - any damage is a miss: compile again
            _damaged(self._index_path, exc)
            return {}

    def safe_load_data(self, name):
        path = self._data_path(name)
        if not _regular_or_missing(path):
            _damaged(path)
            raise OSError(f"{path}: not a regular file")  # IndexDataCacheFile.load: a miss
        try:
            return load_data(self, name)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a data file cut short or overwritten
            _damaged(path, exc)
            raise OSError(str(exc)) from None

    index_file._load_index, index_file._load_data = safe_load_index, safe_load_data
    source = caching._SourceFileBackedLocatorMixin
    own_stamp = source.get_source_stamp

    def stamp_of_all_kernel_files(self):
        stamp = own_stamp(self)
        if os.path.realpath(self._py_file) not in KERNEL_FILES:
            return stamp
        return stamp, tuple(own_stamp(_File(path)) for path in KERNEL_FILES)

    source.get_source_stamp = stamp_of_all_kernel_files
    own_key = caching.Cache._index_key

    def key_naming_jitted_cells(self, sig, codegen):
        func = self._py_func
        ours = os.path.realpath(func.__code__.co_filename) in KERNEL_FILES
        if func.__closure__ is None or not ours:
            return own_key(self, sig, codegen)
        try:
            cells = pickle.dumps(tuple(_stable(cell.cell_contents) for cell in func.__closure__))
        except (pickle.PicklingError, TypeError, AttributeError):
            return own_key(self, sig, codegen)
        return (sig, codegen.magic_tuple(), (_digest(func.__code__.co_code), _digest(cells)))

    caching.Cache._index_key = key_naming_jitted_cells


def _stable(value):
    """A closure cell's value as the cache key sees it: a jitted function by its name (its
    source is in the kernel files, whose stamps the key holds), anything else as it is."""
    from numba.core.dispatcher import Dispatcher

    if isinstance(value, Dispatcher):
        return f"{value.py_func.__module__}.{value.py_func.__qualname__}"
    return value


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _File:
    """What numba's get_source_stamp reads of a locator: its source file."""

    def __init__(self, path: str):
        self._py_file = path


HERE = os.path.dirname(os.path.realpath(__file__))
KERNEL_FILES = tuple(sorted(os.path.join(HERE, name) for name in os.listdir(HERE)
                            if name.startswith("cpu_") and name.endswith(".py")))


def usable(source_file: str) -> bool:
    """Whether numba can keep a disk cache for kernels defined in ``source_file`` (some folder
    it would use is writable); if not, says once that kernels compile in every process."""
    from numba.core import caching

    def probe():
        pass

    for locator in caching.FunctionCache._impl_class._locator_classes:
        try:
            if locator.from_function(probe, source_file) is not None:
                return True
        except Exception:  # noqa: BLE001 - a locator that cannot apply here
            continue
    say_once("cache-none", "no writable folder for the numba kernel cache (set NUMBA_CACHE_DIR "
                           "to one): the CPU kernels are compiled anew in every process, "
                           "which takes a while at each start")
    return False

"""Writing files where the user said: a folder proved writable before any work, names that stay
inside it, folders and files of sgbench's own that never follow a link planted there, and one
writer (``write_atomic``) for every file sgbench makes: never through a symbolic link, onto a
special file or a file with other hard links, and never over a file sgbench did not make."""
from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UserError


def ensure_writable(out_dir: Path, what: str = "records") -> Path:
    """Create ``out_dir`` if needed and prove a file can be written there, before any work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".sgbench-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {what} to '{out_dir}': {exc.strerror or exc}") from exc
    return out_dir


MAX_NAME = 120  # characters of a file name's stem: room for suffixes within 255 bytes


def safe_name(text: str) -> str:
    """``text`` usable as one file name: letters, digits, '.', '_' and '-' only, no leading dot
    (names from task files and overrides must not reach outside the output folder), and short
    enough for any file system (a long one keeps its start and a hash of the whole)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).lstrip(".-") or "unnamed"
    if len(cleaned) <= MAX_NAME:
        return cleaned
    digest = hashlib.sha256(str(text).encode()).hexdigest()[:10]
    return f"{cleaned[:MAX_NAME - 11]}-{digest}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a lock's or a job's holder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def own_folder(path: Path) -> Path:
    """A folder sgbench writes into inside the one the user named: made if missing, refused
    if something planted a link (or a file) there."""
    if path.is_symlink() or path.exists() and not path.is_dir():
        raise UserError(f"{path} is a link or a file; sgbench writes only into a folder of its "
                        f"own there (remove it)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_target(path: Path, ours: Callable[[Path], bool] | None = None) -> None:
    """Refuse to write ``path`` where it is a symbolic link, not a regular file (a folder, FIFO,
    device), a file with other hard links (writing it would change a file elsewhere), or, when
    ``ours`` is given, an existing file for which ``ours(path)`` says sgbench did not make it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path} is a symbolic link; sgbench never writes through one (remove "
                        f"it, or choose another folder)")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path} exists and is not a regular file; sgbench writes only files of "
                        f"its own there (remove it, or choose another folder)")
    if st.st_nlink > 1:
        raise UserError(f"{path} has {st.st_nlink - 1} other hard link(s); writing it would change "
                        f"a file elsewhere (remove it, or choose another folder)")
    if ours is not None and not ours(path):
        raise UserError(f"{path} exists and was not written by sgbench; it is left as it is "
                        f"(move it away, or choose another folder)")


def never_replace(path: Path) -> bool:
    """An ``ours`` for files that are never replaced (records)."""
    return False


def same_text(text: str) -> Callable[[Path], bool]:
    """An ``ours`` that allows replacing a file holding exactly ``text`` (nothing is lost)."""
    def ours(path: Path) -> bool:
        try:
            return path.read_text(errors="replace") == text
        except OSError:
            return False
    return ours


def starts_with(marker: str) -> Callable[[Path], bool]:
    """An ``ours`` for generated files that begin with ``marker``."""
    return _head_says(lambda head: head.startswith(marker.encode()), len(marker.encode()))


def contains(marker: str, within: int = 1 << 16) -> Callable[[Path], bool]:
    """An ``ours`` for files whose first ``within`` bytes hold ``marker`` (a figure's metadata)."""
    return _head_says(lambda head: marker.encode() in head, within)


def _head_says(test: Callable[[bytes], bool], size: int) -> Callable[[Path], bool]:
    def ours(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                return test(fh.read(size))
        except OSError:
            return False
    return ours


CHUNK = 1 << 20


def write_atomic(path: Path, data: str | bytes, ours: Callable[[Path], bool] | None = None,
                 durable: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so a
    reader never sees half a file and an interrupted write leaves the old one; the target is
    checked first (``check_target``). ``durable``: fsync before the rename (records)."""
    check_target(path, ours)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # as any file the user writes (mkstemp: 0600)
        with os.fdopen(fd, "wb") as fh:
            for start in range(0, len(data), CHUNK):  # text encoded a chunk at a time
                piece = data[start:start + CHUNK]
                fh.write(piece.encode() if isinstance(piece, str) else piece)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_opened(fd: int, path: Path, doing: str) -> int:
    """``fd``, opened on ``path`` without following a link and without blocking, if it is a
    regular file without other hard links; else closed, and the refusal in one line."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_nlink <= 1:  # 0: unlinked meanwhile (the caller sees)
        return fd
    os.close(fd)
    check_target(path)  # says which, where the file is still there
    raise UserError(f"cannot {doing} {path}: not a file of sgbench's own")


def open_new_or_own(path: Path, mode: str = "a"):
    """Open a file sgbench appends to beside its records (a log) without following a link
    someone planted there (O_NOFOLLOW), nor opening a special file (O_NONBLOCK, then checked)
    or a file with other hard links: the file stays inside the folder the user named."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | (
        os.O_APPEND if "a" in mode else 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc} (a link is never "
                        f"followed)") from None
    check_opened(fd, path, "write")
    if "a" not in mode:
        os.ftruncate(fd, 0)
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode, newline="")

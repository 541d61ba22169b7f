"""Writing files where the user said: a folder proved writable before any work, names that stay
inside it, folders and files of sgbench's own that never follow a link planted there."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

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


def open_new_or_own(path: Path, mode: str = "a"):
    """Open a file sgbench writes beside its records without following a link someone planted
    there (O_NOFOLLOW): the file stays inside the folder the user named."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if "a" in mode else
                                                        os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc} (a link is never "
                        f"followed)") from None
    return os.fdopen(fd, mode, newline="")

"""Run records: environment capture, the atomic store, and reading records back.

A record is one JSON file per run. It is written once, atomically (temporary file in the same
folder, fsync, rename), and never edited.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import __version__
from .alloc import allocator_tuned
from .errors import UserError

SCHEMA = "sgbench.run/2"  # 2: diagnostics, paper_overlay, cost.adapt_s / diagnostics_s
READABLE = ("sgbench.run/1", SCHEMA)


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the sgbench source tree, when it is a git checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def device_name(device) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return _cpu_name()


def capture_env(device, neuron_backend: str) -> dict[str, Any]:
    """What a record stores about the machine and software (never the hostname)."""
    import torch

    return {
        "sgbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "spikingjelly": _package_version("spikingjelly"),
        "numpy": _package_version("numpy"),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "allocator_tuned": allocator_tuned(),
        "neuron_backend": neuron_backend,
        "git": git_state(),
    }


def new_run_id(task: str, method: str, T: int, seed: int, protocol: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{task}_{Path(method).stem}_T{T}_s{seed}_{protocol}_{stamp}_{secrets.token_hex(3)}"


def ensure_writable(out_dir: Path) -> Path:
    """Create ``out_dir`` if needed and prove a file can be written there, before any training."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".sgbench-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"cannot write records to '{out_dir}': {exc.strerror or exc}") from exc
    return out_dir


def write_record(record: dict[str, Any], out_dir: Path) -> Path:
    """Write ``record`` as ``<run_id>.json`` atomically; never overwrites an existing record."""
    path = out_dir / f"{record['run_id']}.json"
    if path.exists():
        raise UserError(f"record {path} already exists; records are never overwritten")
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=False, default=_jsonable)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors and numpy values
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class NotARecord(Exception):
    """A JSON file that is not an sgbench record."""


def read_record(path: Path) -> dict[str, Any]:
    """One record; UserError when it cannot be read, NotARecord for foreign JSON."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"no such record: '{path}'") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    schema = record.get("schema") if isinstance(record, dict) else None
    if not str(schema).startswith("sgbench.run/"):
        raise NotARecord(str(path))
    if schema not in READABLE:
        raise UserError(f"{path}: record schema {schema}, this sgbench reads "
                        f"{', '.join(READABLE)}")
    return record


def load_records(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All records under ``folder`` (recursively) and a list of record files that could not be
    read. JSON files that are not sgbench records are ignored."""
    if not folder.is_dir():
        raise UserError(f"no such folder of runs: '{folder}'")
    records, problems = [], []
    for path in sorted(folder.rglob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            records.append(read_record(path))
        except NotARecord:
            continue  # some other JSON file: not ours to judge
        except UserError as exc:
            problems.append(str(exc))
    return records, problems


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1, default=_jsonable)
    sys.stdout.write("\n")

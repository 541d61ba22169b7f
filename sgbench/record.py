"""Run records: the atomic store and reading records back (the environment a record names:
environment.py; the safe file primitives: files.py).

A record is one JSON file per run. It is written once, atomically (temporary file in the same
folder, fsync, rename), and never edited.
"""
from __future__ import annotations

import json
import stat
import math
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import never_replace, safe_name, write_atomic

SCHEMA = "sgbench.run/2"  # 2: diagnostics, paper_overlay, cost.adapt_s / diagnostics_s
READABLE = ("sgbench.run/1", SCHEMA)


def new_run_id(task: str, method: str, T: int, seed: int, protocol: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return safe_name(f"{task}_{Path(method).stem}_T{T}_s{seed}_{protocol}_{stamp}_"
                     f"{secrets.token_hex(3)}")


def strict(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or Infinity); the
    paths of those replaced are appended to ``found``."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(path or "(root)")
        return None
    if isinstance(value, dict):
        return {k: strict(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # tensors and numpy values
        return strict(value.tolist(), path, found)
    if isinstance(value, Path):
        return str(value)
    return value


MAX_RECORD_BYTES = 16 * 2**20  # what a record may take on disk (readers accept up to 4x that)


def dumps(record: dict[str, Any]) -> str:
    """Strict JSON of a record; non-finite numbers become null, listed in ``nonfinite``. A record
    whose diagnostics would make it larger than MAX_RECORD_BYTES keeps fewer snapshots (the
    first and the last, then the last's summary only), said in ``diagnostics.thinned``; metrics,
    cost and history are always kept whole."""
    found: list[str] = []
    clean = strict(record, found=found)
    if found:
        clean["nonfinite"] = found
    _thin_diagnostics(clean)
    return json.dumps(clean, indent=1, allow_nan=False) + "\n"


def _size(value: Any) -> int:
    return len(json.dumps(value, indent=1))


def _thin_diagnostics(clean: dict[str, Any]) -> None:
    """Drop diagnostics snapshots (sized one at a time, never the whole record at once) until
    the record fits MAX_RECORD_BYTES."""
    diagnostics = clean.get("diagnostics")
    snapshots = diagnostics.get("snapshots") if isinstance(diagnostics, dict) else None
    if not isinstance(snapshots, list) or not snapshots:
        return
    rest = _size({k: v for k, v in clean.items() if k != "diagnostics"})
    budget = MAX_RECORD_BYTES - rest - 4096
    sizes = [_size(s) for s in snapshots]
    if sum(sizes) <= budget:
        return
    kept = [snapshots[0], snapshots[-1]] if len(snapshots) > 1 and \
        sizes[0] + sizes[-1] <= budget else [snapshots[-1]]
    if _size(kept) > budget:  # one snapshot alone is too large: its summary only
        last = kept[-1]
        kept = [{k: v for k, v in last.items() if k != "layers"} | {"layers": []}]
    diagnostics["snapshots"] = kept
    diagnostics["thinned"] = {
        "snapshots_dropped": len(snapshots) - len(kept), "layers_dropped": not kept[-1]["layers"],
        "why": f"the record would have been {(rest + sum(sizes)) / 2**20:.0f} MiB; records are "
               f"kept under {MAX_RECORD_BYTES / 2**20:.0f} MiB"}


def write_record(record: dict[str, Any], out_dir: Path) -> Path:
    """Write ``record`` as ``<run_id>.json`` atomically; never overwrites an existing record."""
    path = out_dir / f"{safe_name(record['run_id'])}.json"
    if path.exists():
        raise UserError(f"record {path} already exists; records are never overwritten")
    return write_atomic(path, dumps(record), never_replace, durable=True)


class RecordNotWritten(UserError):
    """The record could not be written where asked; it was saved to ``path`` instead."""

    def __init__(self, message: str, record: dict[str, Any], path: Path | None):
        super().__init__(message)
        self.record, self.path = record, path


def fallback_folder() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "sgbench" / "unsaved-records"


def save_record(record: dict[str, Any], out_dir: Path) -> Path:
    """Write the record to ``out_dir``; when that fails (a full disk, a folder gone), write it to
    the fallback folder (else the temporary folder) and raise ``RecordNotWritten`` naming both."""
    try:
        return write_record(record, out_dir)
    except (OSError, UserError) as exc:  # UserError: write_atomic's refusals and OS errors
        reason = f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
    saved = None
    for folder in (fallback_folder(), Path(tempfile.gettempdir()) / "sgbench-unsaved-records"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = write_record(record, folder)
            break
        except (OSError, UserError):
            continue
    where = f"it was saved to {saved}" if saved else "no fallback folder was writable either"
    raise RecordNotWritten(f"could not write the record to {out_dir} ({reason}); {where}",
                           record, saved)


class NotARecord(UserError):
    """A JSON file that is not an sgbench record (folder readers skip it; a command given it
    as a record says so in one line)."""

    def __init__(self, path: str):
        super().__init__(f"{path}: not an sgbench run record (no 'schema: sgbench.run/...')")


STATUSES = ("ok", "diverged", "failed", "interrupted")
NUMBER = (int, float)
# What every reader relies on: (dotted field, allowed types, required).
FIELDS: list[tuple[str, tuple, bool]] = [
    ("run_id", (str,), True), ("created", (str,), True), ("status", (str,), True),
    ("method", (dict,), True), ("method.name", (str,), True), ("method.params", (dict,), True),
    ("task", (dict,), True), ("task.name", (str,), True), ("task.version", (int, str), True),
    ("task.config", (dict,), True), ("T", (int,), True), ("seed", (int,), True),
    ("protocol", (str,), True), ("metrics", (dict,), True), ("history", (list,), True),
    ("cost", (dict,), True), ("env", (dict,), True), ("diagnostics", (dict,), False),
    # read by compare, show and the report where present
    ("method.source_sha256", (str, type(None)), False), ("method.fidelity", (str,), False),
    ("method.origin", (dict, type(None)), False), ("task.config.train", (dict,), False),
]


def _get(record: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def problems(record: dict[str, Any]) -> list[str]:
    """How ``record`` breaks the record schema (empty when it conforms)."""
    found = []
    for dotted, kinds, required in FIELDS:
        present, value = _get(record, dotted)
        if not present:
            if required:
                found.append(f"missing '{dotted}'")
        elif not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            found.append(f"'{dotted}' is {type(value).__name__}, not "
                         f"{' or '.join(k.__name__ for k in kinds)}")
    if found:
        return found
    if record["status"] not in STATUSES:
        found.append(f"status '{record['status']}' is not one of {', '.join(STATUSES)}")
    for section in ("metrics", "cost"):
        for key, value in record[section].items():
            if value is not None and not isinstance(value, (*NUMBER, str, dict, list)) \
                    or isinstance(value, float) and not math.isfinite(value):
                found.append(f"'{section}.{key}' is not a finite number: {value!r}")
    top1 = record["metrics"].get("top1")
    if record["status"] == "ok" and not (isinstance(top1, NUMBER) and not isinstance(top1, bool)):
        found.append("an ok record without a numeric metrics.top1")
    return found + _inner_problems(record)


MAX_MAGNITUDE = 1e18  # larger numbers overflow means and sums: no measure is that large
READ_AS_NUMBERS = ("top1", "top1_best", "top1_best_epoch", "test_loss", "synops", "macs",
                   "energy_uj", "energy_paper_uj", "wall_s", "train_compute_s",
                   "train_samples_per_s", "epoch_time_s", "peak_memory_mb", "latency_b1_p50_ms",
                   "latency_bn_p50_ms")
EPOCH_NUMBERS = ("lr", "train_loss", "train_top1", "test_loss", "test_top1", "epoch_time_s")


def _number_problem(where: str, value: Any, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, NUMBER) or not math.isfinite(value) \
            or abs(value) > MAX_MAGNITUDE:
        return f"'{where}' is not a number of sensible size: {str(value)[:40]!r}"
    return None


def _inner_problems(record: dict[str, Any]) -> list[str]:
    """The inner fields readers use: numbers where numbers are read, lists of mappings where
    they are walked (history, diagnostics snapshots and their layers), sane T and seed."""
    found = [p for section in ("metrics", "cost") for key, value in record[section].items()
             if (key in READ_AS_NUMBERS or not isinstance(value, (str, dict, list)))
             and (p := _number_problem(f"{section}.{key}", value))]
    if record["T"] < 1 or record["seed"] < 0:
        found.append(f"T {record['T']} or seed {record['seed']} out of range")
    for index, entry in enumerate(record["history"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("epoch"), int):
            found.append(f"history[{index}] is not an epoch's mapping")
            continue
        found += [p for key in EPOCH_NUMBERS
                  if (p := _number_problem(f"history[{index}].{key}", entry.get(key)))]
    if not isinstance(record["task"]["config"].get("train", {}), dict):
        found.append("'task.config.train' is not a mapping")
    for where in ("method.search", "method.origin", "env.git"):
        present, value = _get(record, where)
        if present and value is not None and not isinstance(value, dict):
            found.append(f"'{where}' is not a mapping")
    return found + _diagnostics_problems(record.get("diagnostics"))


def _diagnostics_problems(diagnostics: Any) -> list[str]:
    if diagnostics is None:
        return []
    snapshots = diagnostics.get("snapshots", []) if isinstance(diagnostics, dict) else None
    if not isinstance(snapshots, list):
        return ["'diagnostics.snapshots' is not a list"]
    for index, snap in enumerate(snapshots):
        if not isinstance(snap, dict) or not isinstance(snap.get("layers"), list) or \
                not isinstance(snap.get("summary", {}), dict) or \
                not all(isinstance(layer, dict) for layer in snap["layers"]):
            return [f"diagnostics.snapshots[{index}] is not a snapshot (layers, summary)"]
        for layer in snap["layers"]:
            rates = layer.get("spike_rate", [])
            if not isinstance(rates, list) or any(_number_problem("rate", r, False)
                                                  for r in rates):
                return [f"diagnostics.snapshots[{index}]: a layer's spike_rate is not numbers"]
    return []


MAX_JSON_BYTES = 64 * 2**20  # a record with diagnostics of a deep network is a few MB


def read_json(path: Path, what: str = "record") -> Any:
    """Strict JSON from a regular file of bounded size (never a FIFO or a device, which could
    block or never end), nested no deeper than Python can parse; UserError otherwise."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"no such {what}: '{path}'") from None
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: not a regular file (a {what} is a plain JSON file)")
    if info.st_size > MAX_JSON_BYTES:
        raise UserError(f"{path}: {info.st_size:,} bytes, more than a {what} can be "
                        f"({MAX_JSON_BYTES:,})")
    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a {what}") from None
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not (strict) JSON
        raise UserError(f"{path}: unreadable ({exc})") from None


def read_record(path: Path) -> dict[str, Any]:
    """One record; UserError when it cannot be read, NotARecord for foreign JSON."""
    record = read_json(path)
    schema = record.get("schema") if isinstance(record, dict) else None
    if not str(schema).startswith("sgbench.run/"):
        raise NotARecord(str(path))
    if schema not in READABLE:
        raise UserError(f"{path}: record schema {schema}, this sgbench reads "
                        f"{', '.join(READABLE)}")
    found = problems(record)
    if found:
        raise UserError(f"{path}: not a valid record: {'; '.join(found[:3])}")
    return record


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


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
    """Strict JSON on stdout (non-finite numbers as null)."""
    json.dump(strict(data), sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")

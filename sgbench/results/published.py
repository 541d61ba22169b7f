"""Published numbers (``sgbench/published.yaml``): loading, validation and lookup."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..errors import UserError

SCHEMA = "sgbench.results.published/1"
EVIDENCE = ("primary", "secondary", "secondary, corroborated", "cited", "number not found")
EPOCHS = ("best", "final", "unknown")
MATCHES = ("exact", "approximate", "different")
FIELDS = {"method": (str, type(None)), "name": str, "external": bool, "paper": str,
          "dataset": str, "task": (str, type(None)), "arch": str, "T": (int, type(None)),
          "top1": (float, int, type(None)), "std": (float, int, type(None)), "epoch": str,
          "evidence": str, "source": str, "protocol_match": str}


def default_path() -> Path:
    """The published numbers sgbench ships (``sgbench/published.yaml``)."""
    return Path(__file__).resolve().parent.parent / "published.yaml"


def load(path: Path | None = None) -> list[dict[str, Any]]:
    """The entries of a published-numbers file; [] when the default file is not installed."""
    target = Path(path) if path is not None else default_path()
    if not target.is_file():
        if path is not None:
            raise UserError(f"no published-numbers file at '{target}'")
        return []
    data = load_yaml(target, "published-numbers")
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UserError(f"{target} must hold a mapping with a 'results' list")
    found = [p for i, entry in enumerate(data["results"]) for p in _type_problems(i, entry)]
    if found:  # readers look entries up by these fields: their types must hold
        raise UserError(f"{target}: {'; '.join(found[:3])}"
                        + (f" (and {len(found) - 3} more)" if len(found) > 3 else ""))
    return data["results"]


def _where(i: int, entry: Any) -> str:
    if not isinstance(entry, dict):
        return f"published entry {i + 1}"
    return f"published entry {i + 1} ({entry.get('name', '?')}, {entry.get('dataset', '?')})"


def _type_problems(i: int, entry: Any) -> list[str]:
    """A missing field or a value of the wrong type, per field."""
    where = _where(i, entry)
    if not isinstance(entry, dict):
        return [f"{where}: not a mapping"]
    found = []
    for key, kinds in FIELDS.items():
        if key not in entry:
            found.append(f"{where}: missing '{key}'")
        elif not isinstance(entry[key], kinds) or (
                isinstance(entry[key], bool) and kinds is not bool):  # bool is an int too
            found.append(f"{where}: '{key}' has the wrong type ({str(entry[key])[:40]!r})")
    return found


def problems(entries: list[dict[str, Any]], methods: set[str], tasks: set[str]) -> list[str]:
    """Every way the entries break the schema, name unknown methods or tasks, or repeat."""
    found, seen = [], set()
    for i, entry in enumerate(entries):
        where = _where(i, entry)
        found += _type_problems(i, entry)
        if not isinstance(entry, dict):
            continue
        found += [f"{where}: unknown key '{key}'" for key in entry if key not in FIELDS]
        found += _value_problems(where, entry, methods, tasks)
        key = tuple(entry.get(k) for k in ("name", "dataset", "arch", "T", "source"))
        if key in seen:
            found.append(f"{where}: duplicate of an earlier entry")
        seen.add(key)
    return found


def _value_problems(where: str, e: dict[str, Any], methods: set[str], tasks: set[str]
                    ) -> list[str]:
    out = []
    for key, allowed in (("evidence", EVIDENCE), ("epoch", EPOCHS),
                         ("protocol_match", MATCHES)):
        if key in e and e[key] not in allowed:
            out.append(f"{where}: {key} '{e[key]}' is not one of {', '.join(allowed)}")
    if e.get("external") is False and e.get("method") not in methods:
        out.append(f"{where}: unknown method '{e.get('method')}' (mark it external, or register "
                   f"the method)")
    if e.get("external") is True and e.get("method") is not None:
        out.append(f"{where}: an external entry has method null")
    if e.get("task") is not None and e["task"] not in tasks:
        out.append(f"{where}: unknown task '{e['task']}'")
    top1 = e.get("top1")
    if top1 is None and e.get("evidence") != "number not found":
        out.append(f"{where}: top1 is null but the evidence is not 'number not found'")
    if isinstance(top1, (int, float)) and not 0 <= top1 <= 100:
        out.append(f"{where}: top1 {top1} is not a percentage")
    if isinstance(e.get("std"), (int, float)) and not 0 <= e["std"] < 100:
        out.append(f"{where}: std {e['std']} is not a percentage spread")
    if isinstance(e.get("T"), int) and e["T"] < 1:
        out.append(f"{where}: T must be >= 1")
    return out


def lookup(entries: list[dict[str, Any]], task: str, T: int, method: str | None = None
           ) -> list[dict[str, Any]]:
    """Entries with a number for ``task`` at ``T`` (and ``method``, when given)."""
    return [e for e in entries if e.get("task") == task and e.get("T") == T
            and e.get("top1") is not None and (method is None or e.get("method") == method)]

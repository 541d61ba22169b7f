"""Where a set of records came from, read from the records themselves: commits (and the
methods each ran), epochs, devices, threads, versions and dates."""
from __future__ import annotations

from typing import Any, Callable


def _values(records: list[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> str:
    return ", ".join(sorted({str(get(r)) for r in records}))


def _env(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("env") or {}


def _commit(record: dict[str, Any]) -> str:
    return ((_env(record).get("git") or {}).get("commit") or "unknown")[:10]


def provenance(records: list[dict[str, Any]]) -> str:
    if not records:
        return "No records yet: run the sweep."
    by_commit = {c: sorted({r["method"]["name"] for r in records if _commit(r) == c})
                 for c in sorted({_commit(r) for r in records})}
    commits = "; ".join(f"{c} ({', '.join(m)})" for c, m in by_commit.items())
    return (f"{len(records)} records; epochs "
            f"{_values(records, lambda r: r['task']['config'].get('train', {}).get('epochs'))}; "
            f"commit{'s' * (len(by_commit) > 1)} {commits} (uncommitted changes: "
            f"{_values(records, lambda r: (_env(r).get('git') or {}).get('dirty'))}); device "
            f"{_values(records, lambda r: _env(r).get('device_name'))}; torch threads "
            f"{_values(records, lambda r: _env(r).get('torch_threads'))}; sgbench "
            f"{_values(records, lambda r: _env(r).get('sgbench'))}, torch "
            f"{_values(records, lambda r: _env(r).get('torch'))}; created "
            f"{min(r['created'] for r in records)} to {max(r['created'] for r in records)}.")

"""`sgbench show RECORD`: a run's headline numbers and its gradient diagnostics as tables."""
from __future__ import annotations

import statistics
from typing import Any

from rich.table import Table

from .errors import UsageError, UserError


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 and value else f"{value:.{digits}f}"
    return str(value)


def _pct(values: list[float] | float | None) -> str:
    if values is None:
        return "—"
    value = statistics.fmean(values) if isinstance(values, list) else values
    return f"{100 * value:.1f}"


def snapshot(record: dict[str, Any], epoch: int | None) -> dict[str, Any]:
    """The diagnostics taken after ``epoch`` (default: the last)."""
    snapshots = (record.get("diagnostics") or {}).get("snapshots") or []
    if not snapshots:
        raise UserError("this record has no diagnostics (status "
                        f"{record.get('status')}, or written by an older sgbench)")
    if epoch is None:
        return snapshots[-1]
    for snap in snapshots:
        if snap["epoch"] == epoch:
            return snap
    raise UsageError(f"no diagnostics after epoch {epoch}; this record has epochs "
                     f"{', '.join(str(s['epoch']) for s in snapshots)} (see --diag-every)")


def headline(record: dict[str, Any]) -> str:
    m, method, cost = record["metrics"], record["method"], record["cost"]
    top1 = "—" if m["top1"] is None else f"{m['top1']:.2f}% (best {m['top1_best']:.2f}% " \
                                          f"at epoch {m['top1_best_epoch']})"
    return (f"{method['name']} [{method['fidelity']}] on {record['task']['name']} "
            f"v{record['task']['version']}, T={record['T']}, seed {record['seed']}, "
            f"{record['protocol']} protocol: {record['status']}, top-1 {top1}; "
            f"wall {cost['wall_s']:.1f}s, search {cost.get('adapt_s', 0):.1f}s")


def activity_table(snap: dict[str, Any]) -> Table:
    table = Table("layer", "name", "rate %", "cover %", "vanilla %", "H mean", "H std",
                  "theta (per t)",
                  title=f"forward, per spiking layer after epoch {snap['epoch']} (probe batch; "
                        f"rates and coverage are means over t)")
    for layer in snap["layers"]:
        table.add_row(str(layer["layer"]), layer["name"], _pct(layer["spike_rate"]),
                      _pct(layer["coverage"]), _pct(layer["coverage_vanilla"]),
                      _fmt(statistics.fmean(layer["h_mean"])),
                      _fmt(statistics.fmean(layer["h_std"])),
                      "/".join(_fmt(v, 2) for v in layer["theta"]))
    return table


def gradient_table(snap: dict[str, Any]) -> Table:
    table = Table("layer", "surrogate at the last t", "SGV", "TGC", "CV", "|dL/dW|", "k",
                  "gamma", title="backward, per spiking layer (dL/dH on the probe batch)")
    for layer in snap["layers"]:
        p_last = ",".join(_fmt(v, 2) for v in layer["p"][-1])
        table.add_row(str(layer["layer"]), f"{layer['shape']}({p_last})", _fmt(layer["sgv"]),
                      _fmt(layer["tgc"]), _fmt(layer["cv"], 1), _fmt(layer["grad_norm"]),
                      _fmt(layer["decay"]), _fmt(layer["gamma_mean"]))
    return table


def timestep_table(snap: dict[str, Any]) -> Table:
    table = Table("t", "rate %", "cover %", "vanilla %", title="per timestep (mean over layers)")
    T = len(snap["layers"][0]["spike_rate"])
    for t in range(T):
        column = lambda key: [layer[key][t] for layer in snap["layers"]]  # noqa: E731
        table.add_row(str(t + 1), _pct(column("spike_rate")), _pct(column("coverage")),
                      _pct(column("coverage_vanilla")))
    return table


def summary_table(snap: dict[str, Any]) -> Table:
    s = snap["summary"]
    table = Table("summary", "value", title="the numbers the papers quote")
    rows = [
        ("spike rate, mean over layers ± std across layers (DS-ATGO Fig. 8)",
         f"{_pct(s['spike_rate'])} ± {_pct(s['spike_rate_layer_std'])} %"),
        ("coverage of the gradient-available interval, own / vanilla",
         f"{_pct(s['coverage'])} / {_pct(s['coverage_vanilla'])} %"),
        ("deep-layer coverage, last 3 spiking layers, own / vanilla (DS-ATGO Fig. 11)",
         f"{_pct(s['deep_coverage'])} / {_pct(s['deep_coverage_vanilla'])} %"),
        ("SGV at T, TGC, CV of dL/dH, means over layers (A2SG)",
         f"{_fmt(s['sgv'])}, {_fmt(s['tgc'])}, {_fmt(s['cv'])}"),
    ]
    for row in rows:
        table.add_row(*row)
    return table

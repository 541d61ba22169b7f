"""`sgbench show RECORD`: a run's headline numbers and its gradient diagnostics as tables."""
from __future__ import annotations

import statistics
from typing import Any

from rich.table import Table

from ..environment import machine_label
from ..errors import UsageError, UserError

DEEP_LAYERS = 3  # as measure.diagnostics (DS-ATGO's deeper layers)


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
    top1 = "—" if m.get("top1") is None else f"{m['top1']:.2f}%" + (
        "" if m.get("top1_best") is None else
        f" (best {m['top1_best']:.2f}% at epoch {m.get('top1_best_epoch')})")
    return (f"{method['name']} [{method['fidelity']}] on {record['task']['name']} "
            f"v{record['task']['version']}, T={record['T']}, seed {record['seed']}, "
            f"{record['protocol']} protocol: {record['status']}, top-1 {top1}; "
            f"wall {cost.get('wall_s') or 0:.1f}s, search {_search_cost(cost)}")


def _search_cost(cost: dict[str, Any]) -> str:
    """The between-epoch work of adaptive methods (searches, finite differences), in seconds
    and as a share of the training steps' time."""
    adapt, train = cost.get("adapt_s") or 0.0, cost.get("train_compute_s") or 0.0
    share = f" ({100 * adapt / train:.1f} % of training)" if train > 0 else ""
    return f"{adapt:.1f}s{share}"


def identity_table(record: dict[str, Any]) -> Table:
    """What ran: the method's parameters, origin and source hash, what its search chose, the
    recipe, and where it ran (commit, device, threads, versions)."""
    method, cfg, env = record["method"], record["task"]["config"], record.get("env") or {}
    origin = method.get("origin") or {}
    git = env.get("git") or {}
    train = cfg.get("train") or {}
    rows = [("method parameters", _mapping(method.get("params") or {})),
            ("origin", " ".join(str(origin[k]) for k in ("kind", "where", "version")
                                if origin.get(k)) or "—"),
            ("source sha256", method.get("source_sha256") or "—"),
            ("search chose", _search(method.get("search") or {})),
            ("model", _mapping(cfg.get("model") or {})),
            ("neuron", _mapping(cfg.get("neuron") or {})),
            ("recipe", _mapping(train)),
            ("commit", f"{git.get('commit') or 'unknown'}"
                       + (" (uncommitted changes)" if git.get("dirty") else "")),
            ("device", f"{machine_label(env)}, "
                       f"{env.get('torch_threads', '—')} torch thread(s), neuron backend "
                       f"{env.get('neuron_backend', '—')}"),
            ("versions", ", ".join(f"{k} {env[k]}" for k in ("sgbench", "python", "torch",
                                                             "spikingjelly") if env.get(k)))]
    table = Table("what ran", "", title=f"run {record['run_id']}")
    for row in rows:
        table.add_row(*row)
    return table


def _mapping(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "—"


def _search(search: dict[str, Any]) -> str:
    """Per searched parameter: the value per layer (last timestep) and its bounds."""
    parts = []
    for name, report in search.items():
        if not isinstance(report, dict):
            continue
        chosen = ", ".join(_fmt(float(steps[-1]), 3) for steps in report["chosen"])
        low, high = report["bounds"]
        parts.append(f"{name} per layer (last t): {chosen}; bounds [{_fmt(low)}, {_fmt(high)}]"
                     f", {report['layers_at_bound']} layer(s) at a bound")
    return "; ".join(parts) or "—"


def activity_table(snap: dict[str, Any]) -> Table:
    table = Table("layer", "name", "rate %", "cover %", "vanilla %", "H mean", "H std",
                  "theta (per t)",
                  title=f"forward, per spiking layer after epoch {snap['epoch']} (probe batch; "
                        f"rates and coverage are means over t)")
    for layer in snap["layers"]:
        table.add_row(str(layer["layer"] + 1), layer["name"].removeprefix("body."),
                      _pct(layer["spike_rate"]),
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
        table.add_row(str(layer["layer"] + 1), f"{layer['shape']}({p_last})", _fmt(layer["sgv"]),
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
    deep = min(DEEP_LAYERS, len(snap["layers"]))
    table = Table("summary", "value", title="the numbers the papers quote")
    rows = [
        ("spike rate, mean over layers ± std across layers (DS-ATGO Fig. 8)",
         f"{_pct(s['spike_rate'])} ± {_pct(s['spike_rate_layer_std'])} %"),
        ("coverage of the gradient-available interval, own / vanilla",
         f"{_pct(s['coverage'])} / {_pct(s['coverage_vanilla'])} %"),
        (f"deep-layer coverage, last {deep} of {len(snap['layers'])} spiking layers, own / "
         f"vanilla (DS-ATGO Fig. 11)",
         f"{_pct(s['deep_coverage'])} / {_pct(s['deep_coverage_vanilla'])} %"),
        ("SGV at T (scale-free in brackets), TGC, CV of dL/dH, layer means (A2SG)",
         f"{_fmt(s['sgv'])} ({_fmt(s.get('sgv_std'))}), {_fmt(s['tgc'])}, {_fmt(s['cv'])}"),
    ]
    fd = snap.get("fd")
    if fd:
        rows.append((f"FD cosine: surrogate vs finite-difference gradient, {fd['weights']} of "
                     f"the first layer's {fd['of']} weights, eps {fd['eps']:g} (Dspike)",
                     _fmt(fd["cosine"])))
    for row in rows:
        table.add_row(*row)
    return table


def result_table(record: dict[str, Any]) -> Table:
    """Everything measured besides the diagnostics: accuracy, operations and energy, latency,
    training cost."""
    m, c = record["metrics"], record["cost"]
    rows = [("top-1, final epoch / best epoch (%)", f"{_fmt(m.get('top1'), 2)} / "
             f"{_fmt(m.get('top1_best'), 2)} (epoch {m.get('top1_best_epoch', '—')})"),
            ("test loss", _fmt(m.get("test_loss"))),
            ("SynOps / MACs per sample", f"{_count(m.get('synops'))} / {_count(m.get('macs'))}"),
            ("energy per sample (uJ), sgbench / paper convention",
             f"{_fmt(m.get('energy_uj'), 2)} / {_fmt(m.get('energy_paper_uj'), 2)}"),
            ("latency batch 1, p50 / p95 (ms)", f"{_fmt(c.get('latency_b1_p50_ms'), 2)} / "
             f"{_fmt(c.get('latency_b1_p95_ms'), 2)}"),
            (f"latency batch {c.get('latency_bn_batch', 'N')}, p50 / p95 (ms)",
             f"{_fmt(c.get('latency_bn_p50_ms'), 2)} / {_fmt(c.get('latency_bn_p95_ms'), 2)}"),
            ("training: samples/s (data loading excluded), mean epoch (s)",
             f"{_count(c.get('train_samples_per_s'))}, {_fmt(c.get('epoch_time_s'), 1)}"),
            ("wall, method searches, diagnostics (s)", ", ".join(
                f"{c.get(k) or 0:.1f}" for k in ("wall_s", "adapt_s", "diagnostics_s"))),
            ("peak memory (MB)", _count(c.get("peak_memory_mb")))]
    table = Table("measure", "value", title="result")
    for row in rows:
        table.add_row(*row)
    return table


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def history_table(record: dict[str, Any]) -> Table:
    table = Table("epoch", "lr", "train loss", "train top-1", "test loss", "test top-1",
                  "time (s)", title="per epoch")
    for h in record["history"]:
        table.add_row(str(h["epoch"]), f"{h['lr']:.3g}", _fmt(h.get("train_loss"), 4),
                      _fmt(h.get("train_top1"), 2), _fmt(h.get("test_loss"), 4),
                      _fmt(h.get("test_top1"), 2), _fmt(h.get("epoch_time_s"), 1))
    return table


def eval_T_table(record: dict[str, Any]) -> Table | None:
    rows = record.get("eval_T") or []
    if not rows:
        return None
    table = Table("T", "top-1 (%)", "SynOps", "energy (uJ)", "latency b1 (ms)", "policy",
                  title="the trained model at other timesteps (--eval-T)")
    for r in rows:
        table.add_row(str(r["T"]), _fmt(r["top1"], 2), _count(r.get("synops")),
                      _fmt(r.get("energy_uj"), 2), _fmt(r.get("latency_b1_p50_ms"), 2),
                      r["policy"])
    return table


GLOSSARY = [
    ("rate", "share of neurons that spike, per timestep"),
    ("cover", "share of pre-spike potentials H inside the surrogate's support (a gradient "
              "flows), under the method's own threshold and surrogate"),
    ("vanilla", "the same share under a unit rectangle at the neuron's threshold"),
    ("theta, k, gamma", "threshold in use per timestep; the layer's decay; the mean weight of "
                        "the norm layer feeding it"),
    ("SGV", "Var(dL/dH) / mean |dL/dH| at the last timestep (A2SG); in brackets std(dL/dH) / "
            "mean |dL/dH|, which does not change when dL/dH is scaled"),
    ("TGC", "mean cosine of dL/dH at consecutive timesteps (A2SG)"),
    ("CV", "std / |mean| of dL/dH over all timesteps"),
    ("FD cosine", "cosine of dL/dW through the surrogates with the central finite difference of "
                  "the loss, (L(w + eps) - L(w - eps)) / (2 eps) per weight: 1 is the real "
                  "network's direction"),
    ("SynOps, MACs", "accumulates driven by spikes and multiply-accumulates of real-valued "
                     "inputs, per sample over all timesteps"),
]


def glossary(snap: dict[str, Any]) -> list[str]:
    """The terms of the tables, and a note where a layer's surrogate has no bounded support."""
    lines = [f"{term}: {meaning}" for term, meaning in GLOSSARY]
    unbounded = sorted({layer["shape"] for layer in snap["layers"]
                        if any(None in bounds for bounds in layer.get("support", []))})
    if unbounded:
        lines.append(f"note: {', '.join(unbounded)} has no bounded support, so every potential "
                     f"counts as covered (100 %); compare coverage only between bounded shapes")
    return lines

"""`sgbench plot KIND`: the figures SG papers argue with, drawn from run records (matplotlib).

Over many records (one task): ``accuracy-vs-T`` (mean ± std over seeds per method), ``pareto``
(top-1 against energy per sample, the Pareto front marked) and ``curves`` (train and test top-1
and loss per epoch, mean over seeds), ``grad-decay`` (the RMS of dL/dH per timestep in the
first spiking layer, relative to the last step's: whether each method's gradient grows or fades
going back in time). For one record: ``firing`` (spike rate, layer x timestep),
``membrane`` (histogram of H - theta per layer with the surrogate's support, the threshold and the
vanilla window: the gradient-available-interval figure of DS-ATGO, AAAI 2026, Fig. 5) and
``coverage`` (the share of H in the support per layer, the method's against vanilla).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError, UserError
from ..files import contains, write_atomic
from .compare import summarize
from .show import snapshot

MADE_BY = "sgbench"  # in each figure's metadata: an existing file with it is sgbench's to replace

KINDS = ("rank", "accuracy-vs-T", "pareto", "curves", "grad-decay", "cd", "bayes", "firing",
         "membrane", "coverage")
ONE_RECORD = ("firing", "membrane", "coverage")
ACROSS_TASKS = ("cd", "bayes")
FORMATS = (".png", ".svg", ".pdf")
MARKERS = "os^Dv<>P*XhdH8p"
TEXT_PT = 9  # the smallest text in any figure, in points
LEGEND = dict(fontsize=TEXT_PT, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
# The built-in methods in a fixed order: each keeps its colour and marker in every figure.
BUILT_IN = ("atan", "rect", "triangle", "sigmoid", "superspike", "slayer", "mpd_agl", "ds_atgo",
            "adali", "a2sg", "st_asg", "psg_pda", "dspike", "localzo", "trsg")
VANILLA = (-0.5, 0.5)  # the unit rectangle that coverage_vanilla uses


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    plt.rcParams.update({"text.parse_math": False,  # names from records are text, never TeX
                         "font.size": TEXT_PT + 1, "axes.titlesize": TEXT_PT + 1,
                         "axes.labelsize": TEXT_PT + 1, "xtick.labelsize": TEXT_PT,
                         "ytick.labelsize": TEXT_PT, "legend.fontsize": TEXT_PT,
                         "figure.titlesize": TEXT_PT + 2})
    return plt


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        from ..values import did_you_mean

        raise UsageError(f"unknown plot '{kind}'{did_you_mean(kind, KINDS)}; plots: "
                         f"{', '.join(KINDS)}")


def check_out(out: Path) -> None:
    if out.is_dir():
        raise UsageError(f"--out names a folder ({out}); give a file name ending in "
                         f"{', '.join(FORMATS)}")
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out must end in {', '.join(FORMATS)}; got '{out.name}'")
    from ..files import check_target, ensure_writable

    ensure_writable(out.parent, "the figure")  # under a file or /proc: one line, before drawing
    check_target(out, contains(MADE_BY))  # a link, a special file or a user's own: before drawing


def style(name: str) -> dict[str, Any]:
    """A method's marker and colour, the same in every figure and report: the built-ins by a
    fixed table, any other name by a stable hash of it (the method name of a label such as
    'a2sg (h=0)' decides, so its variants share the method's colour)."""
    import hashlib

    from matplotlib import colormaps

    method = name.split(" ")[0].split("@")[0]
    index = BUILT_IN.index(method) if method in BUILT_IN else \
        len(BUILT_IN) + int(hashlib.sha256(method.encode()).hexdigest(), 16) % 97
    palette = colormaps["tab20"].colors
    return {"marker": MARKERS[index % len(MARKERS)], "color": palette[(index * 2) % 20
                                                                     + (index // 10) % 2]}


def _epochs(rows: list[dict[str, Any]]) -> str:
    epochs = sorted({r["epochs"] for r in rows if r["epochs"] is not None})
    return f"{'/'.join(map(str, epochs))} epochs" if epochs else ""


def _measured(records: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [row for row in summarize(records, task) if row["n"] > 0]


def accuracy_vs_T(ax, records: list[dict[str, Any]], task: str) -> None:
    rows = _measured(records, task)
    for label in sorted({r["label"] for r in rows}):
        mine = sorted((r for r in rows if r["label"] == label), key=lambda r: r["T"])
        ax.errorbar([r["T"] for r in mine], [r["top1_mean"] for r in mine],
                    yerr=[r["top1_std"] or 0.0 for r in mine], capsize=3, label=label,
                    **style(label))
    ax.set(xlabel="timesteps T", ylabel="top-1 (%)",
           title=f"{task}, {_epochs(rows)}: accuracy against T (mean ± std over seeds)")
    ax.set_xticks(sorted({r["T"] for r in rows}))
    ax.legend(**LEGEND)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both energy (lower) and top-1 (higher)."""
    front, best = [], float("-inf")
    for energy, top1 in sorted(points, key=lambda p: (p[0], -p[1])):
        if top1 > best:
            front.append((energy, top1))
            best = top1
    return front


def pareto(ax, records: list[dict[str, Any]], task: str) -> None:
    """Top-1 against energy per (configuration, T): mean ± std over seeds on both axes, each
    configuration by its marker and colour in the legend beside the axes (direct labels
    collided where methods sit close together), the Pareto front of the means marked."""
    rows = [r for r in _measured(records, task) if r["energy_uj_mean"] is not None]
    if not rows:
        raise UserError(f"no records of '{task}' carry an energy estimate")
    several_T = len({r["T"] for r in rows}) > 1
    for r in sorted(rows, key=lambda r: (r["label"], r["T"])):
        look = style(r["label"])
        ax.errorbar(r["energy_uj_mean"], r["top1_mean"], xerr=r["energy_uj_std"] or 0.0,
                    yerr=r["top1_std"] or 0.0, fmt=look["marker"], color=look["color"],
                    markersize=6, capsize=2, elinewidth=0.8, zorder=3,
                    label=r["label"] + (f" T={r['T']}" if several_T else ""))
    front = pareto_front([(r["energy_uj_mean"], r["top1_mean"]) for r in rows])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black",
            linestyle="--", linewidth=1, label="Pareto front (of the means)")
    ax.set(xlabel="energy per sample (uJ, 45 nm model)", ylabel="top-1 (%)",
           title=f"{task}, {_epochs(rows)}: top-1 against energy (mean ± std over seeds)")
    ax.legend(**LEGEND)  # beside the axes: methods that sit close together never collide


def rank_chart(ax, records: list[dict[str, Any]], task: str, baseline: str | None) -> None:
    """Who wins: the configurations of one context (the task's largest: T, epochs) ranked by
    mean top-1, each with its 95 % interval of the mean (t distribution), its per-seed values,
    and the baseline's mean."""
    from .ranking import context, pick_baseline, refuse_baseline
    from .stats import mean_interval

    measured = _measured(records, task)
    contexts = [context(r) for r in measured]
    largest = max(contexts, key=lambda c: (contexts.count(c), str(c)))
    rows = sorted((r for r in measured if context(r) == largest), key=lambda r: r["top1_mean"])
    for y, r in enumerate(rows):
        look = style(r["label"])
        low, high = mean_interval(r["top1_runs"]) or (r["top1_mean"], r["top1_mean"])
        ax.plot([low, high], [y, y], color=look["color"], linewidth=2, alpha=0.6)
        ax.scatter(r["top1_runs"], [y] * r["n"], s=14, color=look["color"], alpha=0.5,
                   zorder=3, linewidths=0)
        ax.scatter([r["top1_mean"]], [y], s=40, marker=look["marker"], color=look["color"],
                   zorder=4, edgecolors="black", linewidths=0.5)
    base = pick_baseline(rows, baseline) if baseline else None
    if baseline and base is None:
        refuse_baseline(rows, baseline)  # as compare --baseline refuses it
    if base is not None:
        ax.axvline(base["top1_mean"], color="grey", linestyle="--", linewidth=1,
                   label=f"baseline: {base['label']}")
        ax.legend(fontsize=TEXT_PT, loc="lower right")
    ax.set_yticks(range(len(rows)), [f"{r['rank']}. {r['label']}" for r in rows])
    ax.set(xlabel="final-epoch top-1 (%)", ylim=(-0.7, len(rows) - 0.3),
           title=f"{task}, T={largest[3]}, {_epochs(rows)}: mean (large), seeds (small), "
                 f"95 % interval")
    ax.grid(axis="x", alpha=0.3)
    ax.figure.set_size_inches(7, max(2.5, 0.32 * len(rows) + 1.2))


def cd_diagram(ax, records: list[dict[str, Any]]) -> None:
    """The critical-difference diagram (Demšar, JMLR 7, 2006, Fig. 1): each method at its mean
    rank over the tasks, and a bar joining methods whose mean ranks differ by less than the
    Nemenyi critical difference."""
    from .compare import summarize
    from .ranking import across_tasks

    result = across_tasks(summarize(records))
    ranks, methods, cd = result["mean_rank"], result["methods"], result["cd"]
    k = len(methods)
    ax.set_xlim(0.2 - 0.06 * k, k + 0.8 + 0.06 * k)  # room for the labels on both sides
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.plot([1, k], [0.9, 0.9], color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0.9, 0.92], color="black", linewidth=1)
        ax.text(tick, 0.94, str(tick), ha="center", fontsize=TEXT_PT)
    shown = min(cd, k - 1)  # a CD wider than the axis is drawn to its end and said so
    ax.plot([1, 1 + shown], [1.0, 1.0], color="black", linewidth=2)
    ax.text(1 + shown / 2, 1.02, f"CD = {cd:.2f}" + (" (wider than the axis)" if cd > shown
                                                    else ""), ha="center", fontsize=TEXT_PT)
    half = (k + 1) // 2
    for i, method in enumerate(methods):
        left = i < half
        y = 0.82 - 0.8 * (i if left else k - 1 - i) / max(half, 1)
        x_text = 0.6 if left else k + 0.4
        look = style(method)
        ax.plot([ranks[method], ranks[method], x_text], [0.9, y, y], color=look["color"],
                linewidth=1)
        ax.text(x_text, y, f"{method} {ranks[method]:.2f}", ha="right" if left else "left",
                va="center", fontsize=TEXT_PT)
    for n, (low, high) in enumerate(_cliques([ranks[m] for m in methods], cd)):
        y = 0.86 - 0.025 * n
        ax.plot([low - 0.05, high + 0.05], [y, y], color="black", linewidth=3)
    p = result["friedman_p"]
    ax.set_title(f"mean rank over {len(result['tasks'])} tasks: {', '.join(result['tasks'])}\n"
                 f"Friedman p = {'—' if p is None else f'{p:.3g}'}; a bar joins methods the "
                 f"Nemenyi test cannot tell apart (alpha {result['alpha']})",
                 fontsize=TEXT_PT + 1, pad=22)
    ax.figure.set_size_inches(7.5, 1.6 + 0.22 * k)


def bayes_chart(ax, records: list[dict[str, Any]], baseline: str | None) -> None:
    """Each method against the baseline across the tasks: P(worse), P(equal), P(better) on a
    new task (the hierarchical model of `bayes`) as one stacked bar per method."""
    from .compare import summarize
    from .ranking import across_tasks, bayes_across

    result = across_tasks(summarize(records))
    base = baseline or "atan"
    if base not in result["methods"]:
        raise UserError(f"--baseline '{base}' has no runs on every task here; methods: "
                        f"{', '.join(result['methods'])}")
    found = bayes_across(result, baseline=base)
    vs = found["vs_baseline"]
    methods = sorted(vs, key=lambda m: vs[m][2])
    colours = ("#c0504d", "#bfbfbf", "#4f81bd")
    for i, method in enumerate(methods):
        left = 0.0
        for part, colour in zip(vs[method], colours):
            ax.barh(i, part, left=left, color=colour, height=0.7)
            if part >= 0.08:
                ax.text(left + part / 2, i, f"{part:.2f}", ha="center", va="center",
                        fontsize=TEXT_PT)
            left += part
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xlim(0, 1)
    ax.axvline(0.95, color="black", linewidth=0.8, linestyle=":")
    ax.legend(handles=[_patch(c, n) for c, n in zip(colours, ("worse", "practically equal",
                                                              "better"))], **LEGEND)
    ax.set(xlabel=f"probability on a new task (ROPE ±{found['rope']:g} points of top-1)",
           title=f"against {base} over {len(result['tasks'])} tasks: "
                 f"{', '.join(result['tasks'])}\n(hierarchical model; dotted: 0.95)")
    ax.figure.set_size_inches(7, max(2.5, 0.32 * len(methods) + 1.4))


def _patch(colour: str, name: str):
    from matplotlib.patches import Patch

    return Patch(color=colour, label=name)


def _cliques(ranks: list[float], cd: float) -> list[tuple[float, float]]:
    """The maximal runs of sorted mean ranks that span less than the critical difference."""
    ordered = sorted(ranks)
    found: list[tuple[float, float]] = []
    for i, low in enumerate(ordered):
        j = max(j for j in range(i, len(ordered)) if ordered[j] - low < cd)
        if j > i and not any(a <= low and ordered[j] <= b for a, b in found):
            found.append((low, ordered[j]))
    return found


def curves(axes, records: list[dict[str, Any]], task: str) -> None:
    """Per configuration (as the leaderboard's rows: two versions of a method apart), the mean
    over its counted runs of each epoch's train and test numbers."""
    loss_ax, top1_ax = axes
    by_id = {r.get("run_id"): r for r in records}
    for row in sorted(_measured(records, task), key=lambda r: (r["label"], r["T"])):
        runs = [by_id[i] for i in row["run_ids"] if i in by_id]
        epochs = min(len(r["history"]) for r in runs)
        look = style(row["label"])
        for key, ax in (("loss", loss_ax), ("top1", top1_ax)):
            for split, line in (("test", "-"), ("train", "--")):
                ys = [sum(r["history"][e][f"{split}_{key}"] for r in runs) / len(runs)
                      for e in range(epochs)]
                ax.plot(range(1, epochs + 1), ys, line, color=look["color"],
                        marker=look["marker"], markevery=max(1, epochs // 8), markersize=4,
                        label=f"{row['label']} T={row['T']}" if ax is top1_ax and split == "test"
                        else None)
    from matplotlib.ticker import MaxNLocator

    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    top1_ax.set(xlabel="epoch", ylabel="top-1 (%)", title="top-1 (%)")
    top1_ax.figure.suptitle(f"{task}: mean over seeds per epoch (train dashed, test solid)")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = top1_ax.get_legend_handles_labels()  # below both panels: the width stays
    top1_ax.figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                          ncol=min(5, len(labels)), fontsize=TEXT_PT)


def grad_decay(ax, records: list[dict[str, Any]], task: str) -> None:
    """Per configuration, the geometric mean over its runs of rms_t / rms_T of dL/dH in the
    first spiking layer, from each run's last diagnostics (log scale): above 1 the gradient
    grows going back in time (explodes), below 1 it fades (vanishes)."""
    import math

    from matplotlib.ticker import FuncFormatter

    by_id = {r.get("run_id"): r for r in records}
    rows = sorted(_measured(records, task), key=lambda r: (r["label"], r["T"]))
    drawn = 0
    for row in rows:
        curves = [relative_rms(by_id[i]) for i in row["run_ids"] if i in by_id]
        curves = [c for c in curves if c]
        if not curves:
            continue
        steps = min(len(c) for c in curves)
        mean = [math.exp(sum(math.log(c[t]) for c in curves) / len(curves))
                for t in range(steps)]
        ax.plot(range(1, steps + 1), mean, label=f"{row['label']} T={row['T']}",
                markevery=max(1, steps // 10), markersize=4, **style(row["label"]))
        drawn += 1
    if not drawn:
        raise UserError(f"no record of {task} has gradients per timestep (records written "
                        "before sgbench kept them, or T=1): rerun them")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # no mathtext
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set(xlabel="timestep t", ylabel="RMS of dL/dH[t] / at the last step",
           title=f"{task}, {_epochs(rows)}: the gradient back in time, spiking layer 1\n"
                 "(above 1 it grows going back, below 1 it fades; geometric mean over seeds)")
    ax.legend(**LEGEND)


def relative_rms(record: dict[str, Any]) -> list[float] | None:
    """rms_t / rms_T of the first spiking layer's dL/dH, or None without them."""
    try:
        layers = snapshot(record, None)["layers"]
    except UserError:  # no diagnostics
        return None
    rms = layers[0].get("grad_rms_per_step") if layers else None
    if not rms or len(rms) < 2 or any(v is None or v <= 0 for v in rms):
        return None
    return [v / rms[-1] for v in rms]


def _title(record: dict[str, Any]) -> str:
    """Which run exactly: the configuration, the seed and how long it trained."""
    from .compare import label, method_defaults

    name = label(record["method"]["name"], record["method"]["params"], method_defaults(record))
    return (f"{name} on {record['task']['name']}, T={record['T']}, seed {record['seed']}, "
            f"{len(record['history'])} epochs")


def layer_name(index: int, name: str) -> str:
    """A spiking layer as people count them, with the module it is in."""
    return f"{index + 1}: {name.removeprefix('body.')}"


def firing(ax, record: dict[str, Any], vmax: float = 1.0) -> None:
    """Spike rate per layer and timestep on one colour scale, [0, vmax] (the report passes
    the largest rate of the records it shows, so its heatmaps compare)."""
    layers = snapshot(record, None)["layers"]
    rates = [layer["spike_rate"] for layer in layers]
    image = ax.imshow(rates, aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
    ax.figure.colorbar(image, ax=ax, label="spike rate")
    ax.set_xticks(range(len(rates[0])), [str(t + 1) for t in range(len(rates[0]))])
    ax.set_yticks(range(len(layers)), [layer_name(i, layer["name"])
                                       for i, layer in enumerate(layers)])
    ax.set(xlabel="timestep", ylabel="spiking layer", title=f"firing rates: {_title(record)}")


def membrane(fig, record: dict[str, Any]) -> None:
    layers = [layer for layer in snapshot(record, None)["layers"] if "h_hist" in layer]
    if not layers:
        raise UserError(f"record {record['run_id']} predates membrane histograms: rerun it")
    cols = min(3, len(layers))
    rows = (len(layers) + cols - 1) // cols
    fig.set_size_inches(max(3.0 * cols, 6.0), 2.5 * rows + 0.9)
    for index, layer in enumerate(layers):
        ax = fig.add_subplot(rows, cols, index + 1)
        _membrane_panel(ax, layer)
    fig.axes[0].legend(loc="upper left")
    fig.suptitle(f"H - θ on the probe batch: {_title(record)}", fontsize=TEXT_PT + 1)
    fig.tight_layout()


def _membrane_panel(ax, layer: dict[str, Any]) -> None:
    hist = layer["h_hist"]
    lo, hi = hist["range"]
    width = (hi - lo) / hist["bins"]
    total = hist["below"] + hist["above"] + sum(hist["counts"]) or 1
    centres = [lo + width * (i + 0.5) for i in range(hist["bins"])]
    ax.bar(centres, [c / total for c in hist["counts"]], width=width, color="tab:blue",
           label="share of H")
    for n, (left, right) in enumerate(sorted({tuple(s) for s in layer["support"]},
                                             key=str)):
        ax.axvspan(lo if left is None else max(left, lo), hi if right is None else min(right, hi),
                   color="tab:orange", alpha=0.2, label="surrogate support" if n == 0 else None)
    for n, bound in enumerate(VANILLA):
        ax.axvline(bound, color="grey", linestyle="--", linewidth=0.8,
                   label="vanilla window" if n == 0 else None)
    ax.axvline(0.0, color="red", linewidth=1, label="threshold")
    own = sum(layer["coverage"]) / len(layer["coverage"])
    ax.set_title(f"layer {layer_name(layer['layer'], layer['name'])} ({layer['shape']}): "
                 f"in support {own:.0%}")
    ax.set_xlim(lo, hi)


def coverage(ax, record: dict[str, Any]) -> None:
    layers = snapshot(record, None)["layers"]
    xs = range(len(layers))
    own = [sum(layer["coverage"]) / len(layer["coverage"]) for layer in layers]
    vanilla = [sum(layer["coverage_vanilla"]) / len(layer["coverage_vanilla"])
               for layer in layers]
    ax.bar([x - 0.2 for x in xs], own, width=0.4, label=f"{record['method']['name']}")
    ax.bar([x + 0.2 for x in xs], vanilla, width=0.4, label="vanilla (unit rectangle)")
    ax.set_xticks(list(xs), [layer_name(i, layer["name"]) for i, layer in enumerate(layers)],
                  rotation=45, ha="right")
    ax.set(ylabel="share of H with a gradient", ylim=(0, 1),
           title=f"gradient-available share per layer: {_title(record)}")
    ax.legend(**LEGEND)


def draw(kind: str, records: list[dict[str, Any]], task: str | None, out: Path,
         dpi: int = 150, baseline: str | None = None, vmax: float = 1.0) -> Path:
    """Render ``kind`` from ``records`` (one record for the one-record kinds) into ``out`` (PNG,
    SVG or PDF by its extension); the figure grows to hold its legend and labels. ``baseline``
    draws that row's mean on the rank chart; ``vmax`` tops the firing heatmap's scale."""
    check_kind(kind)
    check_out(out)
    plt = _pyplot()
    fig = plt.figure(figsize=(7, 4.5) if kind != "curves" else (9, 4.2))
    painters: dict[str, Callable[[], None]] = {
        "rank": lambda: rank_chart(fig.add_subplot(), records, task, baseline),
        "cd": lambda: cd_diagram(fig.add_subplot(), records),
        "bayes": lambda: bayes_chart(fig.add_subplot(), records, baseline),
        "accuracy-vs-T": lambda: accuracy_vs_T(fig.add_subplot(), records, task),
        "pareto": lambda: pareto(fig.add_subplot(), records, task),
        "curves": lambda: curves(fig.subplots(1, 2), records, task),
        "grad-decay": lambda: grad_decay(fig.add_subplot(), records, task),
        "firing": lambda: firing(fig.add_subplot(), records[0], vmax),
        "membrane": lambda: membrane(fig, records[0]),
        "coverage": lambda: coverage(fig.add_subplot(), records[0]),
    }
    try:
        painters[kind]()
        out.parent.mkdir(parents=True, exist_ok=True)
        image = io.BytesIO()  # rendered first, then written by the one safe writer
        fig.savefig(image, format=out.suffix.lstrip(".").lower() or "png", dpi=dpi,
                    bbox_inches="tight", pad_inches=0.15, metadata={"Creator": MADE_BY})
    finally:
        plt.close(fig)
    return write_atomic(out, image.getvalue(), contains(MADE_BY))


def pick_task(records: list[dict[str, Any]], task: str | None) -> str:
    """The task to plot: the one asked for, or the only one the records have."""
    tasks = sorted({r["task"]["name"] for r in records if r["status"] == "ok"})
    if task is not None:
        if task not in tasks:
            raise UserError(f"no finished records of task '{task}'; found: "
                            f"{', '.join(tasks) or 'none'}")
        return task
    if len(tasks) != 1:
        raise UsageError(f"the records cover tasks {', '.join(tasks) or 'none'}: choose one with "
                         "--task" if tasks else "no finished records to plot")
    return tasks[0]


def pick_record(records: list[dict[str, Any]], task: str | None, method: str | None
                ) -> dict[str, Any]:
    """The record a one-record figure shows, chosen the same way every time: of the finished
    records of the task (and method) with diagnostics, the longest run, then the lowest seed."""
    found = [r for r in records if r["status"] == "ok"
             and (task is None or r["task"]["name"] == task)
             and (method is None or r["method"]["name"] == method)
             and r.get("diagnostics", {}).get("snapshots")]
    if not found:
        raise UserError("no finished record with diagnostics matches "
                        f"task={task or 'any'}, method={method or 'any'}")
    return min(found, key=lambda r: (-len(r["history"]), r["seed"], r["created"]))

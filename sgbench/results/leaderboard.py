"""``results/LEADERBOARD.md``: the committed leaderboard sweeps and the pinned suites, rendered by
`compare`'s table code, with where every number came from (read from the records themselves)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..errors import UserError
from ..record import load_records
from .compare import blank_measures, summarize
from .provenance import provenance
from .reference import pinned_path, read_pinned, suite_names
from .table import render

BOARDS = Path("results/leaderboards")  # sweep specs; their records under each spec's `out`
LEADERBOARD = Path("results/LEADERBOARD.md")


def pinned_section(pinned: dict[str, Any]) -> str:
    """Markdown of one suite's pinned numbers, rendered by `compare`'s table code."""
    rows = []
    for g in pinned["groups"]:
        row = {"task": g["task"], "version": g["version"], "protocol": "controlled", "T": g["T"],
               "epochs": g["epochs"], "method": g["method"], "params": g["params"],
               "label": g["label"], "n": g["n"], "excluded": 0, **blank_measures()}
        row["top1_mean"], row["top1_std"] = g["top1_mean"], g["top1_std"] if g["n"] > 1 else None
        rows.append(row)
    suite = pinned["suite"]
    tolerances = [g["tolerance"] for g in pinned["groups"]]
    return (f"## Reference suite `{suite['name']}` (pinned)\n\nFrom `sgbench/suites/"
            f"{suite['name']}.pinned.json` (suite v{suite['version']}: {suite['epochs']} epochs, "
            f"seeds {suite['seeds']}). Final-epoch top-1, mean ± std over seeds; `sgbench "
            f"regress` allows each configuration's mean to fall by its tolerance, three "
            f"standard errors of a difference of means ({min(tolerances):.2f} to "
            f"{max(tolerances):.2f} points here). Short runs on CPU: a guard against "
            f"regressions, not a measure of what the methods can reach.\n\n"
            + render(rows, "md", ("top1",)) + "\n")


BOARD_COLUMNS = ("top1", "deep_coverage", "synops", "energy_uj")
BOARD_BASELINE = "atan"


def board_records(spec_path: Path) -> list[dict[str, Any]]:
    folder = Path(load_yaml(spec_path, "sweep spec")["out"])
    return load_records(folder)[0] if folder.is_dir() else []


def board_section(spec_path: Path, records: list[dict[str, Any]]) -> str:
    """Markdown of one committed leaderboard sweep: every record in its folder, the `compare`
    table against the baseline, and where the numbers come from (read from the records)."""
    spec = load_yaml(spec_path, "sweep spec")
    folder = Path(spec["out"])
    if not records:
        return f"## {spec['name']}: `{spec_path}`\n\nNo records yet: run the sweep.\n"
    tasks = sorted({r["task"]["name"] for r in records}) or list(spec["tasks"])
    baseline = BOARD_BASELINE if any(r["method"]["name"] == BOARD_BASELINE for r in records) \
        else None
    rows = [row for task in tasks for row in summarize(records, task, baseline=baseline)]
    cols = ",".join(BOARD_COLUMNS)
    command = (f"sgbench compare --runs {folder} --task {tasks[0]} --baseline {BOARD_BASELINE} "
               f"--columns {cols} --format md")
    return (f"## {spec['name']}: `{spec_path}`\n\n"
            f"{_explained(records)}\n\nReproduce the table: `{command}`.\n\n"
            + render(rows, "md", BOARD_COLUMNS) + "\n")


def _explained(records: list[dict[str, Any]]) -> str:
    return (f"{provenance(records)} Final-epoch top-1 (%), mean ± std over seeds, ranked; deep "
            f"coverage: the share of the last three spiking layers' potentials inside the "
            f"surrogate's support after the final epoch; SynOps and energy (uJ) per sample; Δ "
            f"to `{BOARD_BASELINE}` with its 95 % interval and Welch's p, Holm-corrected.")


def across_section(records: list[dict[str, Any]]) -> str:
    """The boards' methods across their tasks: the probabilities of better, practically equal
    and worse (hierarchical model), against the baseline and pairwise; then mean ranks,
    Friedman and the Nemenyi CD, with the number of tasks the CD would need."""
    from .ranking import across_tasks, bayes_across

    try:
        result = across_tasks(summarize(records))
    except UserError as exc:
        return f"## Across tasks\n\n{exc}\n"
    bayes = bayes_across(result, baseline=BOARD_BASELINE)
    waiting = (f"Left out until every method has runs there: {', '.join(result['left_out'])}."
               f"\n\n" if result["left_out"] else "")
    return ("## Across tasks\n\n" + waiting + _bayes_tables(result, bayes) + "\n"
            + _rank_table(result) + "\n")


def _bayes_tables(result: dict[str, Any], bayes: dict[str, Any]) -> str:
    from tabulate import tabulate

    from .bayes import LEVEL, verdict

    rope, tasks = bayes["rope"], ", ".join(result["tasks"])
    methods = result["methods"]
    vs = bayes["vs_baseline"]
    ranked = sorted(vs, key=lambda m: -vs[m][2])
    rows = [[m, *(f"{p:.2f}" for p in vs[m]), verdict(vs[m], LEVEL)] for m in ranked]
    cells = [[a, *("—" if a == b else "{:.0f}/{:.0f}".format(100 * bayes["pairs"][(b, a)][2],
                                                             100 * bayes["pairs"][(b, a)][1])
                   for b in methods)] for a in methods]
    return (f"How likely each method is to be worse than, practically equal to (within "
            f"±{rope:g} points of top-1) or better than `{BOARD_BASELINE}` on a new task like "
            f"{tasks}: a Bayesian hierarchical model over the per-seed differences on every "
            f"task (after Corani et al., Machine Learning 2017; docs/statistics.md). A verdict "
            f"needs probability {LEVEL:g}.\n\n"
            + tabulate(rows, headers=["method", "P(worse)", "P(equal)", "P(better)", "verdict"],
                       tablefmt="github", disable_numparse=True)
            + "\n\nPairwise: the row method against the column method, P(better) / P(equal) "
            "in percent (P(worse) is the rest).\n\n"
            + tabulate(cells, headers=["", *methods], tablefmt="github",
                       disable_numparse=True) + "\n")


def _rank_table(result: dict[str, Any]) -> str:
    from tabulate import tabulate

    from .stats import tasks_needed

    p, k = result["friedman_p"], len(result["methods"])
    needed = tasks_needed(k, 4.0)
    rows = [[m, f"{result['mean_rank'][m]:.2f}"] + [f"{result['scores'][t][m]:.2f}"
                                                     for t in result["tasks"]]
            for m in result["methods"]]
    return (f"Mean rank of each method (default parameters) over {', '.join(result['tasks'])}, "
            f"by mean final-epoch top-1 per task; Friedman test p = "
            f"{'—' if p is None else f'{p:.3g}'}; Nemenyi critical difference {result['cd']:.2f} "
            f"at alpha {result['alpha']} (Demšar, JMLR 2006): mean ranks closer than that are "
            f"not told apart. To tell {k} methods' mean ranks 4 apart it would need "
            f"{needed} tasks; here there are {len(result['tasks'])}. The diagram: `sgbench plot "
            f"cd --runs {BOARDS}`; the probabilities against {BOARD_BASELINE}: `sgbench plot "
            f"bayes --runs {BOARDS}`.\n\n"
            + tabulate(rows, headers=["method", "mean rank", *result["tasks"]],
                       tablefmt="github", disable_numparse=True) + "\n")


def leaderboard() -> str:
    """results/LEADERBOARD.md: the committed leaderboard sweeps, the ranking across their tasks,
    then every pinned suite."""
    specs = sorted(BOARDS.glob("*.yaml"))
    found = {p: board_records(p) for p in specs}
    sections = [board_section(p, found[p]) for p in specs]
    sections.append(across_section([r for records in found.values() for r in records]))
    sections += [pinned_section(read_pinned(pinned_path(name))) for name in suite_names()
                 if pinned_path(name).is_file()]
    return ("# Leaderboards\n\nGenerated by `sgbench reference leaderboard` from committed run "
            "records and pinned reference numbers; CI checks that it is current.\n\n"
            + "\n".join(sections))


def write_leaderboard(check: bool = False) -> Path:
    """Write the leaderboard, or (``check``) fail when the file differs from what it would be."""
    text = leaderboard()
    if check:
        if not LEADERBOARD.is_file() or LEADERBOARD.read_text() != text:
            raise UserError(f"{LEADERBOARD} is stale: run `sgbench reference leaderboard`")
        return LEADERBOARD
    LEADERBOARD.parent.mkdir(parents=True, exist_ok=True)
    LEADERBOARD.write_text(text)
    return LEADERBOARD

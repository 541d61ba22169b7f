"""Leaderboard rows as a table (terminal, Markdown, HTML), CSV or JSON.

A table names a configuration by its short label (the method and the parameters that differ from
its defaults; CSV and JSON keep every parameter), shows a column only where rows differ (what all
rows share goes into the caption), and writes each measure in one number format.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from tabulate import tabulate

from ..errors import UsageError
from .bayes import UNDECIDED
from .compare import DEFAULT_COLUMNS, KEYS, MEASURES, flags

FORMATS = ("table", "md", "csv", "json", "html")
CONTEXT = ("task", "version", "protocol", "T", "epochs")  # shown as columns only when they vary


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got '{fmt}'")


def number(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def cell(row: dict[str, Any], column: str) -> str:
    """Mean ± std in the measure's format (the std only where there are several seeds)."""
    fmt = MEASURES[column].fmt
    mean, std = row.get(f"{column}_mean"), row.get(f"{column}_std")
    return number(mean, fmt) + (f" ± {number(std, fmt)}" if std is not None else "")


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"


def p_value(p: float | None) -> str:
    return "—" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def interval(ci: tuple | list | None) -> str:
    return "" if ci is None else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def ranks(values: list[int]) -> str:
    """Ranks as runs: [2, 3, 4, 7] -> '2-4, 7'."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def to_target(row: dict[str, Any]) -> str:
    """The mean first epoch (and training seconds) at the task's target, over the seeds that
    reached it."""
    if not row.get("n") or row.get("target") is None:
        return "—"
    if not row["reached"]:
        return "not reached"
    part = "" if row["reached"] == row["n"] else f" ({row['reached']}/{row['n']})"
    return f"{row['target_epoch_mean']:.1f}, {row['target_s_mean']:,.0f} s{part}"


def caption(rows: list[dict[str, Any]]) -> list[str]:
    """What every row shares (one line), and what the columns mean (one line each)."""
    shared = [f"{key} {rows[0][key]}" for key in CONTEXT
              if len({str(r[key]) for r in rows}) == 1 and rows[0][key] is not None]
    notes = ["ranked by mean top-1 of the final epoch; mean ± std over seeds (n)"]
    if any(row["excluded"] for row in rows):
        notes.append("not ok: runs that failed, diverged or were interrupted")
    if _has_target(rows):
        notes.append("to target: the first epoch whose test top-1 reaches the task's target, "
                     "and the training seconds until then, mean over the seeds that reached it")
    if any("baseline" in row for row in rows):
        notes.append(f"Δ: difference of means to {_baseline_name(rows)} with its 95 % interval "
                     "(Welch); p: Welch's test, Holm-corrected over the rows; * p < 0.05")
    bayes = _bayes_setting(rows)
    if bayes:
        notes.append(f"P(w/e/b): probabilities that the row is worse than, practically equal to "
                     f"(within ±{bayes[0]:g} points) or better than {_baseline_name(rows)} "
                     f"(Bayesian correlated t-test on the seeds, Benavoli et al. 2017); verdict "
                     f"at probability {bayes[1]:g}, else the seeds that would likely decide")
    if any(row.get("above") for row in rows):
        notes.append("above ranks: rows this one beats at p < 0.05 (Welch, Holm-corrected "
                     "over all pairs)")
    return ["; ".join(shared)] * bool(shared) + notes


def _bayes_setting(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    """The ROPE and level of the rows' Bayesian comparisons (None without any)."""
    found = [row["baseline"]["bayes"] for row in rows if row.get("baseline", {}).get("bayes")]
    return (found[0]["rope"], found[0]["level"]) if found else None


def probabilities(bayes: dict[str, Any] | None) -> str:
    """P(worse) / P(equal) / P(better), or — without them (one seed)."""
    if not bayes or bayes["p_better"] is None:
        return "—"
    return " / ".join(f"{bayes[k]:.2f}" for k in ("p_worse", "p_equal", "p_better"))


def verdict(bayes: dict[str, Any] | None) -> str:
    if not bayes:
        return ""
    if bayes["verdict"] != UNDECIDED:
        return bayes["verdict"]
    need = bayes.get("seeds_needed")
    return "undecided" + (f": ~{need} seeds" if need else ": more seeds" if bayes["p_better"]
                          is None else ": >100 seeds")


def _has_target(rows: list[dict[str, Any]]) -> bool:
    return any(row.get("target") is not None and row.get("n") for row in rows)


def render(rows: list[dict[str, Any]], fmt: str, columns: tuple[str, ...] = DEFAULT_COLUMNS,
           width: int | None = None) -> str:
    """The rows in ``fmt``; a terminal table wraps its cells to fit ``width`` characters."""
    check_format(fmt)
    if fmt == "json":
        from ..record import strict

        return json.dumps(strict(rows), indent=1, allow_nan=False)
    headers, body = _grid(rows, columns)
    if fmt == "csv":
        return _csv(rows, columns, headers, body)
    style = {"md": "github", "html": "html"}.get(fmt, "simple")  # tabulate escapes html
    table = str(tabulate(body, headers=headers, tablefmt=style, disable_numparse=True))
    if fmt == "html":
        return table
    notes = caption(rows)
    if fmt == "table" and width is not None:
        import textwrap

        notes = [line for note in notes for line in textwrap.wrap(note, width)]
        table = _fitted(headers, body, width) if _width(table) > width else table
    return ("\n\n" if fmt == "md" else "\n").join(notes) + f"\n\n{table}"


def _width(text: str) -> int:
    return max(map(len, text.splitlines()), default=0)


def _fitted(headers: list[str], body: list[list[str]], width: int) -> str:
    """The table with its widest columns wrapped (at spaces, nothing cut) until it fits
    ``width``, with a line between rows so wrapped cells stay readable; where even that is
    too wide, one block of lines per row."""
    limits = [max(len(w) for c in [h, *(r[i] for r in body)] for w in c.split()) or 1
              for i, h in enumerate(headers)]  # never narrower than a word
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    while True:
        table = str(tabulate(body, headers=headers, tablefmt="simple_grid",
                             disable_numparse=True, maxcolwidths=widths,
                             maxheadercolwidths=widths))
        shrinkable = [i for i, w in enumerate(widths) if w > limits[i]]
        if _width(table) <= width:
            return table
        if not shrinkable:
            return _stacked(headers, body, width)
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= max(1, (_width(table) - width) // 4)
        widths[widest] = max(widths[widest], limits[widest])


def _stacked(headers: list[str], body: list[list[str]], width: int) -> str:
    """Each row as a block: its rank and configuration, then its columns as "header: value",
    wrapped to ``width``."""
    import textwrap

    name = headers.index("method")
    blocks = []
    for cells in body:
        # fields break between each other, not inside (no-break spaces while wrapping)
        fields = " · ".join(f"{h}: {v}".replace(" ", "\xa0")
                            for i, (h, v) in enumerate(zip(headers, cells))
                            if i not in (0, name) and v)
        lines = textwrap.wrap(fields, width, initial_indent="   ", subsequent_indent="   ")
        blocks.append("\n".join([f"{cells[0]}. {cells[name]}"]
                                 + [line.replace("\xa0", " ") for line in lines]))
    return "\n".join(blocks)


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...], headers: list[str],
         body: list[list[str]]) -> str:
    """Every column of the table as shown, then the raw numbers behind it."""
    raw = [*KEYS, "rank", "n", "seeds", "top1_runs"] + [
        f"{c}_{s}" for c in columns for s in ("mean", "std")]
    raw += ["baseline_delta", "baseline_ci_low", "baseline_ci_high", "baseline_p",
            "baseline_p_holm", "p_worse", "p_equal", "p_better", "verdict", "seeds_needed",
            "rope", "target", "target_epoch_mean", "target_s_mean", "reached"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers + raw)
    for row, shown in zip(rows, body):
        base = row.get("baseline") or {}
        ci = base.get("ci") or (None, None)
        values = {**row, "params": json.dumps(row["params"], sort_keys=True),
                  "seeds": " ".join(map(str, row["seeds"])),
                  "top1_runs": " ".join(map(str, row.get("top1_runs", []))),
                  "baseline_delta": base.get("delta"), "baseline_ci_low": ci[0],
                  "baseline_ci_high": ci[1], "baseline_p": base.get("p_value"),
                  "baseline_p_holm": base.get("p_holm"), **(base.get("bayes") or {})}
        writer.writerow(shown + ["" if values.get(k) is None else values[k] for k in raw])
    return buffer.getvalue().rstrip("\n").replace("\r\n", "\n")


def _grid(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> tuple[list, list]:
    varying = [key for key in CONTEXT if len({str(r[key]) for r in rows}) > 1]
    published = any(row.get("published", {}).get("top1") is not None for row in rows)
    baseline = any("baseline" in row for row in rows)
    not_ok = any(row["excluded"] for row in rows)
    target = _has_target(rows)
    above = any(row.get("above") for row in rows)
    headers = ["rank"] + varying + ["method"] + [MEASURES[c].header for c in columns] + ["n"]
    headers += ["not ok"] * not_ok + ["published (evidence)", "Δ pub."] * published
    headers += [f"to {_target_name(rows)}: epoch, time"] * target
    headers += [f"Δ {_baseline_name(rows)} [95 % CI]", "p (Holm)"] if baseline else []
    bayes = _bayes_setting(rows) is not None
    headers += ["P(w/e/b)", "verdict"] * bayes
    headers += ["above ranks"] * above + ["flags"]
    body = []
    for row in rows:
        cells = [str(row.get("rank", "—"))]
        cells += [str(row[k]) if row[k] is not None else "—" for k in varying]
        cells += [row["label"]] + [cell(row, c) for c in columns] + [str(row["n"])]
        cells += [str(row["excluded"])] * not_ok
        if published:
            pub = row.get("published", {})
            cells += [f"{pub['top1']:.2f} ({pub['evidence']}, {pub['epoch']})"
                      if pub.get("top1") is not None else "—", signed(pub.get("delta"))]
        cells += [to_target(row)] * target
        if baseline:
            base = row.get("baseline", {})
            cells += [signed(base.get("delta")) + interval(base.get("ci")),
                      p_value(base.get("p_holm")) + " *" * bool(base.get("significant"))]
        if bayes:
            found = row.get("baseline", {}).get("bayes")
            cells += [probabilities(found), verdict(found)]
        cells += [ranks(row.get("above", []))] * above
        body.append(cells + [", ".join(flags(row))])
    return headers, body


def _target_name(rows: list[dict[str, Any]]) -> str:
    found = sorted({row["target"] for row in rows if row.get("target") is not None})
    return "/".join(f"{t:g} %" for t in found)


def _baseline_name(rows: list[dict[str, Any]]) -> str:
    return next(row["baseline"]["label"] or row["baseline"]["method"]
                for row in rows if "baseline" in row)

"""`sgbench list methods|tasks` (read without importing any method) and `sgbench check-method`."""
from __future__ import annotations

import typer
from rich.table import Table

from ..errors import UsageError
from .common import Json, out, print_json, user_errors


@user_errors
def list_cmd(
    what: str = typer.Argument(..., help="methods or tasks"),
    json_out: Json = False,
) -> None:
    """List the methods (name, origin, kinds, fidelity, citation; broken plugins with their
    error) or the tasks."""
    if what == "methods":
        from ..registry import describe_all

        rows = describe_all()
        columns = ["name", "origin", "kinds", "fidelity", "citation"]
    elif what == "tasks":
        from ..config import describe_task, task_names

        rows = [describe_task(name) for name in task_names()]
        columns = ["name", "version", "dataset", "arch", "T", "citation"]
    else:
        raise UsageError(f"list takes 'methods' or 'tasks', got '{what}'")
    if json_out:
        print_json(rows)
        return
    table = Table()
    for column in columns:  # every column but the last (the citation) keeps its width
        table.add_column(column, no_wrap=column != columns[-1])
    for row in rows:
        cells = [", ".join(v) if isinstance(v, list) else str(v) for v in (row[c] for c in columns)]
        if row.get("error"):
            cells = cells[:2] + ["[red]broken[/]", "", row["error"]]
        table.add_row(*cells)
    out.print(table)


@user_errors
def check_method_cmd(
    method: str = typer.Argument(..., metavar="NAME|PATH", help="A method name or a .py file."),
    json_out: Json = False,
) -> None:
    """Run the method contract check (the one sgbench's own tests run on every built-in):
    parameters, rules, surrogate (>= 0, support, inputs untouched), BPTT against autograd in
    float64, extreme and half-precision input, state round trip. Exit 1 when a check fails."""
    from ..registry import load_method
    from ..testing import check_method, passed

    cls = load_method(method)
    checks = check_method(cls)
    if json_out:
        print_json({"method": cls.name, "origin": cls.origin.as_record(),
                    "checks": [vars(c) for c in checks]})
    else:
        table = Table("check", "result", "detail",
                      title=f"{cls.name} ({cls.origin.describe()})")
        for c in checks:
            table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAILED[/]", c.detail)
        out.print(table)
    if not passed(checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("check-method")(check_method_cmd)

"""`sgbench list methods|tasks` (read without importing any method) and `sgbench check-method`."""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..errors import UsageError
from .common import Json, Overrides, Params, out, print_json, print_tables, user_errors


MAX_TIME_LIMIT_S = 3600.0  # a check needs seconds; an hour is a hang


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
    table = Table(*columns)
    for row in rows:
        cells = [", ".join(v) if isinstance(v, list) else str(v) for v in (row[c] for c in columns)]
        if row.get("error"):
            cells = cells[:2] + ["[red]broken[/]", "", row["error"]]
        table.add_row(*cells)
    print_tables(table)


@user_errors
def check_method_cmd(
    method: str = typer.Argument(..., metavar="NAME|PATH", help="A method name or a .py file."),
    params: Params = [],
    time_limit: float = typer.Option(60.0, "--time-limit", help="Seconds each check may take "
                                     "(a callback that never returns fails it)."),
    json_out: Json = False,
) -> None:
    """Run the method contract check (the one sgbench's own tests run on every built-in) at the
    given --param values: parameters, rules, surrogate (>= 0, support, inputs untouched), BPTT
    against autograd in float64, extreme and half-precision input, state round trip, every hook
    on a probe batch, and the surrogate at every declared parameter bound. Exit 1 when a check
    fails."""
    from ..params import parse_params
    from ..registry import load_method
    from ..testing import check_method, passed

    cls = load_method(method)
    if not 0 < time_limit <= MAX_TIME_LIMIT_S:  # inf and nan too: setitimer needs a number
        raise UsageError(f"--time-limit must lie in (0, {MAX_TIME_LIMIT_S:g}] seconds, got "
                         f"{time_limit}")
    checks = check_method(cls, parse_params(cls, params), time_limit)
    if json_out:
        print_json({"method": cls.name, "origin": cls.origin.as_record(),
                    "checks": [vars(c) for c in checks]})
    else:
        table = Table("check", "result", "detail",
                      title=f"{cls.name} ({cls.origin.describe()})")
        for c in checks:
            table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAILED[/]", c.detail)
        print_tables(table)
    if not passed(checks):
        raise typer.Exit(1)


task_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Tasks: show one resolved.")


@task_app.command("show")
@user_errors
def task_show_cmd(
    task: str = typer.Argument(..., metavar="NAME|PATH", help="A task name or a .yaml file."),
    T: Optional[int] = typer.Option(None, "--T"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    override: Overrides = [],
    method: Optional[str] = typer.Option(None, "--method", "-m", help="With --protocol "
                                         "paper: whose recipe overlays the task."),
    protocol: str = typer.Option("controlled", "--protocol"),
    json_out: Json = False,
) -> None:
    """The task's fully resolved configuration (includes, overrides, --T, --epochs and, under
    --protocol paper, the method's recipe), as a run would use it."""
    import yaml

    from ..config import config_sha256, resolve_task

    overlay = None
    if method is not None:
        from ..registry import load_method

        overlay = load_method(method).paper_overlay
    cfg = resolve_task(task, T=T, epochs=epochs, overrides=override, protocol=protocol,
                       paper_overlay=overlay)
    if json_out:
        print_json(cfg)
        return
    out.print(f"# {cfg['name']} v{cfg['version']}, config sha256 {config_sha256(cfg)[:12]}",
              highlight=False, markup=False)
    typer.echo(yaml.safe_dump(cfg, sort_keys=False, width=100).rstrip())


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("check-method")(check_method_cmd)
    app.add_typer(task_app, name="task")

"""The command line: one module per command group; each command parses its arguments, makes one
library call and prints the result. Importing this package imports no torch: each command
imports what it needs when it runs."""
from __future__ import annotations

from typing import Optional

import typer

from .. import __version__
from . import bench, methods, reference, results, run, sweep
from .common import DEBUG, out

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="sgbench: benchmark surrogate-gradient methods for spiking neural networks.")


def _version(value: bool) -> None:
    if value:
        out.print(f"sgbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def options(
    debug: bool = typer.Option(False, "--debug", envvar="SGBENCH_DEBUG",
                               help="Show the full traceback of a failure."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version,
                                           is_eager=True, help="Print the version and exit."),
) -> None:
    DEBUG["on"] = debug


for module in (run, results, methods, reference, bench, sweep):
    module.register(app)


def main() -> None:
    from ..alloc import tune_allocator

    tune_allocator()
    app()

"""The command line: one module per command group; each command parses its arguments, makes one
library call and prints the result. Importing this package imports no torch: each command
imports what it needs when it runs."""
from __future__ import annotations

from typing import Optional

import sys

import typer
from typer.core import TyperGroup

from .. import __version__
from . import bench, methods, reference, results, run, sweep
from .common import DEBUG, fail, out


class OneLineErrors(TyperGroup):
    """Typer's own parse errors (an unknown command or option, a value of the wrong type) in
    sgbench's error style: one line with a hint, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        empty = _empty_path_option(sys.argv[1:] if args is None else list(args))
        if empty:
            fail(f"{empty} needs a path, got '' (see `sgbench --help`)", 2)
            sys.exit(2)
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except typer.Abort:
            code = 1
        except typer.TyperException as exc:
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            ctx = getattr(exc, "ctx", None)
            path = ctx.command_path if ctx is not None else "sgbench"
            code = getattr(exc, "exit_code", 2)
            if message.strip():  # (no message: the help was shown, for a command without args)
                fail(f"{message} (see `{path} --help`)", code)
        sys.exit(code if isinstance(code, int) else 0)


PATH_OPTIONS = ("--out", "--runs", "--data-dir", "--record", "--checkpoint", "--published",
                "--reference")


def _empty_path_option(args: list[str]) -> str | None:
    """The first path option given an empty string (`--out ''`, `--out=`): a path of '' would
    silently mean the current folder."""
    for index, arg in enumerate(args):
        if arg in PATH_OPTIONS and index + 1 < len(args) and not args[index + 1].strip():
            return arg
        if arg.endswith("=") and arg[:-1] in PATH_OPTIONS:
            return arg[:-1]
    return None


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]},
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

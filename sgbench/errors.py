"""Errors a user can cause: the CLI prints their message on one line and exits with `code`."""


class UserError(Exception):
    """A mistake in the user's input (names, values, files). Never a bug in sgbench."""

    code = 1


class UsageError(UserError):
    """A wrong name or value on the command line (exit 2, like a usage error)."""

    code = 2


def innermost_frame(exc: BaseException, files: set[str]) -> str | None:
    """``path:line in function`` of the innermost traceback frame in one of ``files`` (a
    plugin's source files), following the exception's causes."""
    import traceback

    found = None
    while exc is not None and found is None:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename in files:
                found = f"{frame.filename}:{frame.lineno} in {frame.name}"
        exc = exc.__cause__ or exc.__context__
    return found


def formatted_traceback(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))

"""Errors a user can cause: the CLI prints their message on one line and exits with `code`."""


class UserError(Exception):
    """A mistake in the user's input (names, values, files). Never a bug in sgbench."""

    code = 1


class UsageError(UserError):
    """A wrong name or value on the command line (exit 2, like a usage error)."""

    code = 2

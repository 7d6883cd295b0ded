"""The command line's two kinds of error, in a module of their own so that every command
module raises the same classes (also when the CLI runs as ``python -m looplm.cli``)."""

from __future__ import annotations


class UsageError(Exception):
    """A wrong command line (exit code 2): the message names the flag."""


class UserError(Exception):
    """An error to report in one line (exit code 1)."""

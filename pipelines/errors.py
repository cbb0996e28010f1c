"""Errors meant for people: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad path, bad URL, bad config). Message is one line, no traceback."""

    exit_code = 2


class SourceError(UserError):
    """A source cannot be opened or read."""


class ModelError(UserError):
    """A model cannot be found or loaded."""


class OutputError(UserError):
    """An output cannot be written."""

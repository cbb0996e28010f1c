"""Errors meant for people: the CLI prints their message as one line and exits non-zero.

Exit codes of ``trackstream``: 0 everything done and delivered (or stopped: a signal, or the reader of a pipe
output went away); 1 a stage failed (``PipelineError``);
2 bad input, config, model or output (``UserError``); 3 the run finished but an output lost data
(``DataLossError``: a file output stopped, e.g. on a full disk, or a network sink dropped entries);
4 the run finished, but files of a folder or glob that cannot be read were skipped (``SKIPPED_EXIT``; the
code of a failure wins over it, the line naming the skipped files is printed either way);
130 interrupted twice (128 + the signal number on a second SIGINT/SIGTERM).
"""

from __future__ import annotations

SKIPPED_EXIT = 4
"""Exit code of a run that processed every readable file of a folder or glob and skipped the others."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none): what a one-line error shows."""
    from pipelines.secrets import redact_text

    text = redact_text(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UserError(Exception):
    """A problem the user can fix (bad path, bad URL, bad config). Message is one line, no traceback."""

    exit_code = 2


class SourceError(UserError):
    """A source cannot be opened or read."""


class ModelError(UserError):
    """A model cannot be found or loaded."""


class OutputError(UserError):
    """An output cannot be written."""


class ReaderGone(OutputError):
    """The reader of a pipe or device output went away (``| head`` has read what it wanted): not a failure, the
    run stops as after Ctrl-C and exits 0."""

    def __init__(self, path: object, what: str) -> None:
        super().__init__(f"the reader of {path} ({what}) went away")


class DataLossError(UserError):
    """The run finished, but some output did not get everything (the summary lists which)."""

    exit_code = 3

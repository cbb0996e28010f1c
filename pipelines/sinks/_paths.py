"""Up-front checks of output file paths, shared by the file sinks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from pipelines.errors import OutputError


def prepare_output(path: "str | os.PathLike[str]", what: str, *, keep: bool = True) -> Path:
    """Create ``path``'s parent folder and check the file can be opened for writing.

    Returns the path. Raises ``OutputError`` (one line naming ``what`` and the path) when the parent
    cannot be created, the path is a folder, or the file cannot be opened. An existing file is not
    changed. A file the check created is left (empty) when ``keep``, for callers that open it straight
    after, and removed otherwise (for writers that create it later, like FFmpeg).
    """
    out = Path(os.fspath(path)).expanduser()
    if str(path) == "":
        raise OutputError(f"{what}: empty output path")
    if out.is_dir():
        raise OutputError(f"cannot write {what} {out}: it is a directory")
    blocker = next((p for p in out.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"cannot create directory {out.parent} for {what}: {blocker} is a file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {out.parent} for {what}: {exc.strerror or exc}") from None
    existed = out.exists()
    try:
        with open(out, "ab"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {what} {out}: {exc.strerror or exc}") from None
    if not keep and not existed:
        out.unlink()
    return out


def close_output(file: "IO[str] | None", what: str, path: Path, already_failed: bool) -> None:
    """Close a text output (flushing it); a failure becomes one ``OutputError`` line, unless a failed write
    was already reported. ``file`` None (already closed) does nothing."""
    if file is None:
        return
    try:
        file.close()  # flushes; the descriptor is released even if that fails
    except OSError as exc:
        if not already_failed:
            raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from None

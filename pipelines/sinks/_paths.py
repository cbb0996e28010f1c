"""Up-front checks of output file paths, shared by the file sinks."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Mapping

from pipelines.errors import OutputError, ReaderGone

IN_FOLDER = "name a file in it; {source} in the name gives each source its own file"   # for a folder given



def is_stream(path: "str | os.PathLike[str]") -> bool:
    """A pipe or device (``/dev/stdout`` piped into ``jq``, ``/dev/null``, a FIFO): written through as it is, never
    probed, cut back, moved or compared, and it cannot seek."""
    try:
        mode = os.stat(Path(os.fspath(path)).expanduser()).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def write_error(exc: OSError, what: str, path: Path) -> OutputError:
    """The error of a failed write of ``what`` to ``path``: ``ReaderGone`` when ``path`` is a pipe or device whose
    reader went away (EPIPE: ``| head`` has read what it wanted), else one ``OutputError`` line (a full disk)."""
    if exc.errno == errno.EPIPE and is_stream(path):
        return ReaderGone(path, what)
    return OutputError(f"cannot write {what} {path}: {exc.strerror or exc}")


def refuse_folder_name(path: "str | os.PathLike[str]", what: str) -> None:
    """``out/`` names a folder: refuse it rather than write a file called ``out`` (``Path`` drops the slash)."""
    name = os.fspath(path)
    if name.endswith(("/", os.sep)) and not Path(name).expanduser().is_dir():
        raise OutputError(f"cannot write {what} {name}: it names a folder (ends with '/'); give a file name, "
                          "with {source} in it for one file per source")


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
    refuse_folder_name(path, what)
    if is_stream(out):   # opening it to probe would block on a FIFO, and its close would end a reader's input
        return out
    if out.is_dir():
        raise OutputError(f"cannot write {what} {out}: it is a directory ({IN_FOLDER})")
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


def abandon_text(file: "IO[str]", path: Path, size: int) -> None:
    """After a failed write (a full disk): close ``file``, dropping what it still buffers, and cut ``path`` back
    to ``size`` bytes, the end of its last complete line, so no torn line is left. Errors are ignored: the write's
    own failure is what gets reported."""
    try:
        file.close()  # the flush may fail again; the descriptor is released anyway
    except OSError:
        pass
    try:
        if path.is_file() and path.stat().st_size > size:
            os.truncate(path, size)
    except OSError:
        pass


def open_text(path: Path, what: str, resume: "Mapping[str, object] | None", encoding: str = "utf-8") -> "IO[str]":
    """Open a line-oriented text output: truncated (a new run), or cut back to the saved size and appended
    to (``resume`` = ``{"path": ..., "bytes": N}`` from ``text_position``), so lines written after the last
    saved state (a run killed with -9) are written once, not twice. A pipe or device is written on as it is."""
    try:
        if resume is None or is_stream(path):
            return open(path, "w", encoding=encoding, newline="\n", buffering=1)
        size = resume.get("bytes")
        if not isinstance(size, int) or size < 0:
            raise OutputError(f"cannot continue {what} {path}: the saved state has no valid size")
        have = path.stat().st_size if path.exists() else -1
        if have < size:
            raise OutputError(f"cannot continue {what} {path}: it has {max(have, 0)} bytes, the saved state "
                              f"expects at least {size} (remove the state to start over)")
        with open(path, "r+b") as raw:
            raw.truncate(size)
        return open(path, "a", encoding=encoding, newline="\n", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def written(file: "IO[str]") -> int:
    """Bytes in ``file`` so far: its position, or 0 for a pipe or device, which cannot tell one."""
    return file.tell() if file.seekable() else 0


def text_position(file: "IO[str] | None", path: Path, what: str) -> "dict[str, object] | None":
    """Flush ``file`` to the OS and return ``{"path": ..., "bytes": size}`` for ``open_text``."""
    if file is None:
        return None
    try:
        file.flush()
        return {"path": str(path), "bytes": written(file)}
    except OSError as exc:
        raise write_error(exc, what, path) from None

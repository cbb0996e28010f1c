"""JSON Lines sink: one schema-v1 frame record per line, flushed as written, optionally rotated.

Each line is ``pipelines.sinks.records.frame_record(result)``: no wall-clock times, so two runs over one file
give byte-identical output. Every line is flushed when written, so ``tail -F out.jsonl`` shows frames
as they are processed.

Rotation (for cameras that run for days): when the next line would take the file past
``rotate_bytes``, or ``rotate_seconds`` of wall-clock time have passed since the file was started, the
live file ``NAME.jsonl`` is closed and renamed to ``NAME.<start>-<n>.jsonl``, where ``<start>`` is the
UTC time the segment was started (``YYYYmmdd-HHMMSS``) and ``<n>`` a 6-digit counter, and a new
``NAME.jsonl`` is started. Rotation happens only between lines (no line is ever split or lost) and never
overwrites a file; sorting the rotated names gives them in time order, and the live file comes last.
With rotation on, a non-empty live file left by an earlier run is first moved aside the same way
(named after its last modification time) instead of being overwritten; without rotation the file is
simply overwritten, so two runs over one video give identical files.
"""

from __future__ import annotations

import json
import logging
from collections import deque
import os
import time
from pathlib import Path
from typing import Deque, IO, Callable, Mapping, Optional

from pipelines.errors import OutputError
from pipelines.frames import BaseSink, FrameResult
from pipelines.sinks.records import frame_record
from pipelines.sinks._paths import (abandon_text, close_output, is_stream, open_text, prepare_output, text_position,
                                    write_error, written)
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry
from pipelines.sinks.rotation import RECENT_SEGMENTS, Retention, rotated_name
from tracker.configutil import ConfigError

log = logging.getLogger(__name__)


def encode_record(record: dict[str, object]) -> str:
    """One JSON line (compact, key order as built, no trailing newline)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


class JsonlSink(BaseSink):
    """Writes one frame record per line to ``path`` (truncated at start).

    Args:
        path: the live file, e.g. ``out/cam1.jsonl``; its folder is created if missing.
        rotate_bytes: start a new file before a line would make this one larger than this many bytes
            (a single longer line still gets a file of its own). None: never by size.
        rotate_seconds: start a new file once this many seconds of wall-clock time have passed since the
            current one was started (checked when a line is written). None: never by time.
        clock: wall-clock source (``time.time``); only tests replace it.

    Raises:
        OutputError: at construction, when the file cannot be created or written.
    """

    def __init__(self, path: "str | os.PathLike[str]", rotate_bytes: Optional[int] = None,
                 rotate_seconds: Optional[float] = None, *, clock: Callable[[], float] = time.time,
                 resume: Optional[Mapping[str, object]] = None, what: str = "JSONL output",
                 retention: Retention = Retention()) -> None:
        if rotate_bytes is not None and (isinstance(rotate_bytes, bool) or rotate_bytes <= 0):
            raise ConfigError("output.jsonl_rotate_bytes", f"must be > 0, got {rotate_bytes}")
        if rotate_seconds is not None and not rotate_seconds > 0:
            raise ConfigError("output.jsonl_rotate_seconds", f"must be > 0, got {rotate_seconds}")
        self.what = what
        if (rotate_bytes or rotate_seconds) and is_stream(path):   # rotating renames it: /dev/stdout moved away
            raise OutputError(f"{what} {path} is a pipe or device: it cannot be rotated (name a file to rotate)")
        self.path = prepare_output(path, what)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.retention = retention
        self._clock = clock
        self._file: Optional[IO[str]] = None
        self._failed = False
        self._size = 0
        self._started = 0.0
        self._sequence = 0
        self.rotated: Deque[Path] = deque(maxlen=RECENT_SEGMENTS)  # the newest finished segments (bounded)
        self.lines_written = 0
        if resume is None and (rotate_bytes or rotate_seconds) and self.path.stat().st_size > 0:
            self._keep_previous_run()
        self._open(resume)

    def _keep_previous_run(self) -> None:
        """With rotation on, a live file left by an earlier run is moved aside, not overwritten."""
        target = self._move_aside(self._rotated_name(self.path.stat().st_mtime),
                                  f"cannot move the earlier JSONL output {self.path} aside")
        log.info("kept the earlier %s as %s", self.path, target.name)

    def _move_aside(self, target: Path, failure: str) -> Path:
        """Rename the live file to ``target`` and remember it; ``failure`` starts the error line."""
        try:
            os.rename(self.path, target)
        except OSError as exc:
            raise OutputError(f"{failure}: {exc.strerror or exc}") from None
        self.rotated.append(target)
        return target

    def _open(self, resume: Optional[Mapping[str, object]] = None) -> IO[str]:
        file = open_text(self.path, self.what, resume)
        self._file = file
        self._size = written(file)
        self._started = self._clock()
        return file

    def write(self, result: FrameResult) -> None:
        """Append the frame record of ``result`` as one line and flush it."""
        self.write_line(encode_record(frame_record(result)))

    def write_line(self, line: str) -> None:
        """Append one already-encoded JSON line (without newline), rotating first if due."""
        file = self._file
        if file is None:
            raise OutputError(f"JSONL output {self.path} is already closed")
        data = line + "\n"
        size = len(data.encode("utf-8"))
        if self._size > 0 and self._rotation_due(size):
            file = self._rotate(file)
        try:
            file.write(data)
            file.flush()
        except OSError as exc:  # e.g. disk full: keep the complete lines, not a torn one
            self._failed, self._file = True, None
            abandon_text(file, self.path, self._size)
            raise write_error(exc, self.what, self.path) from None
        self._size += size
        self.lines_written += 1

    def _rotation_due(self, next_size: int) -> bool:
        if self.rotate_bytes is not None and self._size + next_size > self.rotate_bytes:
            return True
        return self.rotate_seconds is not None and self._clock() - self._started >= self.rotate_seconds

    def _rotated_name(self, started: float) -> Path:
        name, self._sequence = rotated_name(self.path, started, self._sequence)
        return name

    def _rotate(self, file: IO[str]) -> IO[str]:
        """Close the live file, rename it aside (never over an existing file) and start a new one."""
        self._file = None
        try:
            file.close()
        except OSError as exc:
            self._failed = True
            raise OutputError(f"cannot write {self.what} {self.path}: {exc.strerror or exc}") from None
        target = self._rotated_name(self._started)
        self._move_aside(target, f"cannot rotate JSONL output {self.path} to {target.name}")
        log.info("rotated %s -> %s", self.path, target.name)
        self.retention.apply(self.path)
        return self._open()

    def position(self) -> Optional[Mapping[str, object]]:
        """Flush; the live file's path and size (a resumed run continues it there)."""
        return text_position(self._file, self.path, self.what)

    def close(self) -> None:
        """Flush and close the live file; safe to call more than once."""
        file, self._file = self._file, None
        close_output(file, self.what, self.path, self._failed)


def _build(ctx: SinkContext) -> JsonlSink:
    out = ctx.config.output
    assert out.jsonl is not None
    return JsonlSink(ctx.path(out.jsonl), rotate_bytes=out.jsonl_rotate_bytes,
                     rotate_seconds=out.jsonl_rotate_seconds, resume=ctx.resume,
                     retention=Retention(out.retain_seconds, out.retain_bytes))


ENTRY = SinkEntry("jsonl", DropPolicy.BLOCK, lambda config: bool(config.output.jsonl), _build)

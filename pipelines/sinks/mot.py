"""MOTChallenge results sink: ``frame,id,x,y,w,h,conf,-1,-1,-1`` per track per frame.

``frame`` is 1-based and counts every decoded frame of the source (``VideoFrame.index + 1``), so with
``vid_stride`` > 1 the numbers keep matching the source's ground truth. ``x,y`` is the box's top-left
corner and ``w,h`` its size, in pixels of the source frame (not clipped to the frame): the tracker's
estimated box (``Tracks.estimated_xyxy``, the Kalman filter's box after the frame's detection, which jitters
less than the detector's and is what ``trackstream eval`` scores; the JSONL records and the annotated video
keep the detector's own box, to which keypoints and masks belong); ``conf`` is the matched detection's
confidence. The last three columns (world coordinates) are always -1.
"""

from __future__ import annotations

import os
from typing import IO, Mapping, Optional

import numpy as np

from pipelines.errors import OutputError
from pipelines.frames import BaseSink, FrameResult
from pipelines.sinks._paths import (abandon_text, close_output, open_text, prepare_output, text_position,
                                    write_error, written)
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry


def mot_lines(result: FrameResult) -> list[str]:
    """The MOTChallenge lines of one frame, in track order (without newlines)."""
    t = result.tracks
    frame_no = int(result.frame.index) + 1
    xywh = t.best_xyxy.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    return [f"{frame_no},{int(tid)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{float(c):.4f},-1,-1,-1"
            for tid, (x, y, w, h), c in zip(t.track_id.tolist(), xywh.tolist(), t.confidence.tolist())]


class MotSink(BaseSink):
    """Writes tracks of one source as a MOTChallenge ``.txt`` file (truncated at start).

    Raises:
        OutputError: at construction, when the file cannot be created or written.
    """

    def __init__(self, path: "str | os.PathLike[str]", resume: Optional[Mapping[str, object]] = None) -> None:
        self.path = prepare_output(path, "MOT output")
        self._failed = False
        self._file: Optional[IO[str]] = open_text(self.path, "MOT output", resume, encoding="ascii")
        self._size = written(self._file)   # bytes of complete lines (ASCII: one byte per character)

    def write(self, result: FrameResult) -> None:
        """Append one line per track of ``result`` and flush."""
        if self._file is None:
            raise OutputError(f"MOT output {self.path} is already closed")
        lines = mot_lines(result)
        if lines:
            file, data = self._file, "\n".join(lines) + "\n"
            try:
                file.write(data)
                file.flush()
            except OSError as exc:  # e.g. disk full: keep the complete lines, not a torn one
                self._failed, self._file = True, None
                abandon_text(file, self.path, self._size)
                raise write_error(exc, "MOT output", self.path) from None
            self._size += len(data)

    def position(self) -> Optional[Mapping[str, object]]:
        """Flush; the file's path and size (a resumed run continues it there)."""
        return text_position(self._file, self.path, "MOT output")

    def close(self) -> None:
        """Close the file; safe to call more than once."""
        file, self._file = self._file, None
        close_output(file, "MOT output", self.path, self._failed)


def _build(ctx: SinkContext) -> MotSink:
    assert ctx.config.output.mot is not None
    return MotSink(ctx.path(ctx.config.output.mot), resume=ctx.resume)


ENTRY = SinkEntry("mot", DropPolicy.BLOCK, lambda config: bool(config.output.mot), _build)

"""Clips around events, encoded from the frames the pipeline already decoded (never decoded twice).

``ClipRecorder`` keeps a short ring of the source's recent frames, scaled down to ``clip_width`` (a copy:
the ring never holds full-size pictures), with their track boxes. An event of a configured kind opens a
clip from ``before`` s ahead of it (taken from the ring) to ``after`` s past it; further frames are added
until then. An event inside an open clip's window extends that clip (up to ``max_seconds``) and shares its
file. A finished clip is handed to a job that draws the boxes (the event's tracks in red) and encodes an
H.264 mp4 (yuv420p, ``+faststart``: browsers play it as soon as it loads) with each frame at its own
video time, so a clip of a camera that dropped frames still plays at the right speed.

Why frames and not the camera's compressed packets: cutting packets needs a tap in every source type and
starts at a keyframe (often seconds away), and it shows no boxes; the ring costs one downscale per frame
and an encode per clip (``benchmarks/event_store.py`` measures both).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import numpy.typing as npt

from pipelines.frames import FrameResult

TIME_BASE = Fraction(1, 1000)


@dataclass
class ClipFrame:
    pts: float
    image: npt.NDArray[np.uint8]
    boxes: list[tuple[int, list[float]]]     # (track id, scaled xyxy)


@dataclass
class Clip:
    path: str                   # relative to the media folder
    start: float                # pts
    end: float
    frames: list[ClipFrame]
    tracks: set[int] = field(default_factory=set)


class ClipRecorder:
    """The clips of one source. ``add(result)`` every frame; ``mark(pts, track_id, path)`` for each event that
    wants one (returns the clip's path); finished clips go to ``encode`` (called with the clip)."""

    def __init__(self, before: float, after: float, width: int, max_seconds: float,
                 finished: Callable[[Clip], None]) -> None:
        self.before, self.after, self.width, self.max_seconds = before, after, width, max_seconds
        self._finished = finished
        self._ring: deque[ClipFrame] = deque()
        self._open: list[Clip] = []

    def add(self, result: FrameResult) -> None:
        frame = result.frame
        pts = float(frame.pts)
        image = frame.image
        height, width = image.shape[:2]
        scale = min(1.0, self.width / width)
        size = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
        # INTER_LINEAR: about half INTER_AREA's time, and alike at the 2-3x reductions of a clip
        small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), np.uint8) \
            if size != (width, height) else image.copy()
        sx, sy = size[0] / width, size[1] / height
        t = result.tracks
        boxes = [(int(tid), [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy])
                 for tid, b in zip(t.track_id.tolist(), t.xyxy.tolist())]
        item = ClipFrame(pts, small, boxes)
        self._ring.append(item)
        while self._ring and self._ring[0].pts < pts - self.before:
            self._ring.popleft()
        for clip in list(self._open):
            if pts <= clip.end:
                clip.frames.append(item)
            else:
                self._finish(clip)

    def mark(self, pts: float, track_id: Optional[int], path: str) -> str:
        """An event at ``pts`` wants a clip: the open clip it falls into (extended), or a new one at ``path``."""
        for clip in self._open:
            if pts - self.before <= clip.end and pts + self.after - clip.start <= self.max_seconds:
                clip.end = max(clip.end, pts + self.after)
                if track_id is not None:
                    clip.tracks.add(track_id)
                return clip.path
        start = pts - self.before
        clip = Clip(path, start, pts + self.after, [f for f in self._ring if f.pts >= start],
                    {track_id} if track_id is not None else set())
        self._open.append(clip)
        return path

    def close(self) -> None:
        """Finish every open clip with the frames it has (the stream ended or the run stops)."""
        for clip in list(self._open):
            self._finish(clip)
        self._ring.clear()

    def _finish(self, clip: Clip) -> None:
        self._open.remove(clip)
        if clip.frames:
            self._finished(clip)


def encode_clip(clip: Clip, out: Path, crf: int = 26) -> None:
    """Draw the boxes and encode ``clip`` as an H.264 mp4 at ``out`` (written to a temporary name first)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.part")
    try:
        _encode(clip, partial, crf)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)   # a full disk: the half-written clip would keep its space
        raise


def _encode(clip: Clip, partial: Path, crf: int) -> None:
    import av

    height, width = clip.frames[0].image.shape[:2]
    with av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", options={"preset": "veryfast", "crf": str(crf),
                                                          "tune": "zerolatency"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        last = -1
        for item in clip.frames:
            ms = int(round((item.pts - clip.frames[0].pts) * 1000))
            if ms <= last:
                continue
            last = ms
            image = item.image.copy()
            for tid, (x1, y1, x2, y2) in item.boxes:
                wanted = tid in clip.tracks
                cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)),
                              (0, 0, 255) if wanted else (200, 200, 200), 2 if wanted else 1)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = ms, TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)

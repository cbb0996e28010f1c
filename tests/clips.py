"""Real video clips for tests and benchmarks, written and read with PyAV (no project code involved)."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    import av


def write_clip(path: Path, pictures: Sequence[np.ndarray], *, fps: int = 25, codec: str = "libx264",
               options: Optional[Mapping[str, str]] = None, fmt: Optional[str] = None) -> Path:
    """``pictures`` (BGR uint8, (H, W, 3), all one size) encoded as ``codec`` at ``fps``, picture ``i`` at ``i / fps``
    seconds, in yuv420p. ``options``: the encoder's (default for libx264: its fastest preset, ``ultrafast``, at
    its default quality, crf 23; none for another codec); ``fmt``: the container where ``path``'s suffix does not
    say it. Returns ``path``."""
    import av

    height, width = pictures[0].shape[:2]
    frames = (av.VideoFrame.from_ndarray(picture, format="bgr24") for picture in pictures)
    return _encode(path, frames, (width, height), fps, codec, options, fmt)


def cut_clip(path: Path, video: Path, start: int, count: int, *, fps: int = 25,
             options: Optional[Mapping[str, str]] = None) -> Path:
    """Frames ``start`` to ``start + count - 1`` of ``video`` as an H.264 clip at ``fps`` (``options`` as in
    ``write_clip``), re-encoded as they decode, without a trip through BGR (which would blur their colours once
    more). Returns ``path``."""
    import av

    with av.open(str(video)) as inp:
        stream = inp.streams.video[0]
        frames = (frame.reformat(format="yuv420p") for frame in islice(inp.decode(stream), start, start + count))
        return _encode(path, frames, (stream.width, stream.height), fps, "libx264", options, None)


def _encode(path: Path, frames: Iterable[av.VideoFrame], size: tuple[int, int], fps: int, codec: str,
            options: Optional[Mapping[str, str]], fmt: Optional[str]) -> Path:
    """``frames`` ((width, height) ``size``) encoded one after another, frame ``i`` at ``i / fps`` seconds."""
    import av

    if options is None:
        options = {"preset": "ultrafast"} if codec == "libx264" else {}
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps, options=dict(options))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i, frame in enumerate(frames):
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode_frames(path: Path, count: int, start: int = 0) -> list[np.ndarray]:
    """Frames ``start`` to ``start + count - 1`` of a video (fewer where it ends before) as BGR uint8 arrays."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in islice(container.decode(video=0), start, start + count)]

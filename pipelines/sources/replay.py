"""Recognising old video after a reconnect, so a live source never processes the same picture twice.

A live stream can hand back pictures it already sent: an HLS playlist whose producer died still lists its last
segments (every reconnect plays them again), an ended playlist (``#EXT-X-ENDLIST``) plays from its first segment
on each reconnect, an HTTP server re-sends a file. FFmpeg does not expose HLS media sequence numbers or program
date times to PyAV, and a restarted encoder starts its timestamps (and its media sequence) from zero again, so
neither a timestamp nor a position alone tells old from new. A frame is therefore known by its **presentation
time in the stream's own clock together with a fingerprint of its pixels** (a hash of a 32 x 32 grid of bytes
sampled from the decoded frame's first plane -- the luma of the usual YUV formats -- read in place, so a frame
that the newest-frame policy drops costs no conversion, scaling or copy of the picture):
the same picture at the same stream time is a replay; a restarted encoder's first frame has the old timestamps
but new pixels, and a frozen picture (a static scene) at new timestamps is new video.

``SeenFrames`` remembers the keys of the last ``capacity`` frames decoded (processed or dropped by the newest-frame
policy alike: a dropped frame is old video too), each with the number of the connection that decoded it. A frame of
connection ``n`` is a replay when its key was decoded by an earlier connection. Decoding is deterministic, so a
replayed picture has the same pixels to the bit.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from typing import Optional

import av
import numpy as np

FrameKey = tuple[Optional[int], bytes]

DEFAULT_CAPACITY = 9000  # frames (5 min at 30 fps, about 0.5 MB): a replay of older video is not recognised
GRID = 32  # rows and columns of the sampled grid


def frame_key(frame: av.VideoFrame, stream_time: Optional[float]) -> FrameKey:
    """(stream time in ms, or None, and an 8-byte hash of a 32 x 32 grid of the first plane's bytes).

    The grid is read straight from the decoder's buffer (no conversion to BGR, no scaling, no copy of the
    picture): about a thousand bytes of a 1280 x 720 frame, spread evenly over its visible rows and columns
    (the padding at the end of each line is never read: it is not part of the picture).
    """
    plane = frame.planes[0]
    data = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    digest = hashlib.blake2b(data[_grid(plane.height, plane.width)].tobytes(), digest_size=8).digest()
    return (round(stream_time * 1000) if stream_time is not None else None), digest


@functools.lru_cache(maxsize=16)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the sampled grid of a ``height`` x ``width`` plane (``np.ix_`` form)."""
    rows = np.linspace(0, height - 1, GRID).astype(np.intp)
    cols = np.linspace(0, max(width, 1) - 1, GRID).astype(np.intp)
    return np.ix_(rows, cols)  # type: ignore[return-value]


class SeenFrames:
    """Keys of recently decoded frames and the connection that decoded each (thread-safe; see module docstring)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._keys: OrderedDict[FrameKey, int] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: FrameKey, connection: int) -> bool:
        """True when an earlier connection decoded ``key`` (a replay); else remember it for ``connection``."""
        with self._lock:
            seen = self._keys.get(key)
            if seen is not None and seen < connection:
                return True
            if seen is None:
                self._keys[key] = connection
                if len(self._keys) > self._capacity:
                    self._keys.popitem(last=False)
            return False

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

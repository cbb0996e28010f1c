"""Play a recording at the rate it was filmed: ``realtime: true`` on a file makes it behave like a camera."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Optional

from pipelines.frames import VideoFrame


class RealRatePacer:
    """Holds each frame of a file until its presentation time has come, measured from the first frame.

    With the newest-frame policy this rehearses a live deployment on a recording: frames arrive at the video's
    rate and the ones the detector cannot keep up with are dropped (and counted), as with a camera. The frame's
    ``capture_time`` becomes the moment it is released. ``stop`` (an Event) cuts a wait short.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._origin: Optional[float] = None  # monotonic time at which pts 0 is due

    def release(self, frame: VideoFrame) -> VideoFrame:
        """Wait until ``frame`` is due, then return it stamped with the release time."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - frame.pts
        delay = self._origin + frame.pts - now
        if delay > 0:
            self._stop.wait(delay)
        return dataclasses.replace(frame, capture_time=time.time())

"""Play a recording at the rate it was filmed: ``realtime: true`` on a file makes it behave like a camera."""

from __future__ import annotations

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
        return frame.at(capture_time=time.time())


class StreamClockPacer:
    """Spreads frames that arrive in bursts over their own timestamps, for segment-based live streams (HLS).

    An HLS client downloads a whole segment (1-6 s of video) and decodes it in a few milliseconds, then waits for
    the next one. With the newest-frame policy a detector slower than the stream would then process the last
    frames of each segment and nothing for the rest of it. Holding each frame until ``origin + stream_time``
    turns the bursts back into a steady stream, so the frames taken are spread evenly in stream time.

    The origin is set by the first frame. A frame that comes later than its schedule moves the origin later, to
    itself (it is handed on at once, and the frames after it keep their spacing instead of catching up in a
    burst): the delay settles at what the slowest segment download needs -- at the live edge of a playlist the
    last frame of a segment comes only with the next segment -- and from then on every frame is on time.
    Timestamps that jump ahead by more than ``max_ahead`` seconds or go back (a new encoder) restart the schedule.
    ``stop`` (an Event) cuts a wait short.
    """

    def __init__(self, stop: threading.Event, max_ahead: float = 10.0) -> None:
        self._stop = stop
        self._max_ahead = max_ahead
        self._origin: Optional[float] = None  # monotonic time at which stream time 0 is due
        self._last: Optional[float] = None

    def wait(self, stream_time: Optional[float]) -> None:
        """Block until the frame at ``stream_time`` seconds is due (at once when its time is unknown)."""
        if stream_time is None:
            return
        now = time.monotonic()
        due = None if self._origin is None else self._origin + stream_time
        if (due is None or due < now or due - now > self._max_ahead
                or (self._last is not None and stream_time < self._last)):
            self._origin, due = now - stream_time, now
        self._last = stream_time
        if due > now:
            self._stop.wait(due - now)

"""``Readers``: one thread per open source (``trackstream-reader-<id>``) moving its frames and statuses into its
inbox.

A reader skips the frames a resumed file's earlier run processed, stops its source after ``max_frames``, paces a
file played at its own rate (``realtime``) and, for an adaptive detection schedule, measures each frame's motion
on its own thread. A camera that gives up reconnecting ends its own lane only; its error is raised once the run
has ended. When a reader ends, its file is closed and its lane may be retired.
"""

from __future__ import annotations

import logging
from typing import Optional

from pipelines.engine.control import RunControl
from pipelines.engine.lane import Lane
from pipelines.engine.roster import Roster
from pipelines.errors import UserError
from pipelines.frames import StatusKind, VideoFrame
from pipelines.processing.motion import MotionMask, MotionMeter
from pipelines.sources.pacing import RealRatePacer

log = logging.getLogger("pipelines.engine.runner")   # the engine's lines keep the name their readers know


def measure_motion(meter: MotionMeter, frame: VideoFrame) -> MotionMask:
    """``frame``'s changed cells by ``meter`` (whose background then learns the frame)."""
    luma = frame.luma()  # the decoded luma plane, without converting the frame to BGR
    return meter.measure(*luma) if luma is not None else meter.measure(frame.image)


class Readers:
    """Starts and runs the reader thread of each lane.

    Args:
        control: the run's lock, stop and abort flags, threads and the cameras' errors.
        roster: the lanes open now; a lane whose reader ended may be retired.
        max_frames: stop each source after this many frames (None: all).
    """

    def __init__(self, control: RunControl, roster: Roster, max_frames: Optional[int]) -> None:
        self._control, self._roster, self._max_frames = control, roster, max_frames

    def start(self, lane: Lane) -> None:
        """Start ``lane``'s reader thread."""
        self._control.spawn(f"reader-{lane.source.source_id}", self._read, lane)

    def _read(self, lane: Lane) -> None:
        """Reader thread: move one source's frames and statuses into its inbox."""
        control, max_frames = self._control, self._max_frames
        taken = 0
        source_dropped = 0
        # realtime: true on a file: release its frames at the video's own rate, as a camera would
        pacer = RealRatePacer(control.stopped) if lane.inbox.latest and not lane.source.is_live else None
        try:
            for item in lane.source.frames():
                if isinstance(item, VideoFrame):
                    if lane.resume_after is not None and item.index <= lane.resume_after:
                        if lane.meter is not None:   # adaptive: the motion background learns them as before,
                            measure_motion(lane.meter, item)   # so the same frames are detected as unbroken
                        continue  # processed by the run this one resumes
                    if control.stopped.is_set() or (max_frames is not None and taken >= max_frames):
                        lane.source.stop()
                        continue
                    if pacer is not None:
                        item = pacer.release(item)
                    if lane.meter is not None:  # adaptive: the cheap motion measure, on this source's thread
                        mask = measure_motion(lane.meter, item)
                        with control.cond:
                            lane.motion[item.index] = mask
                    taken += 1
                    dropped_now = lane.source.dropped  # frames the camera's own slot replaced
                    lane.stats.add(frames_in=1, dropped=dropped_now - source_dropped)
                    source_dropped = dropped_now
                    if max_frames is not None and taken >= max_frames:
                        lane.source.stop()
                elif item.kind == StatusKind.RESUMED:
                    lane.stats.add(reconnects=1)
                if not lane.inbox.put(item, control.aborted.is_set):
                    break
        except UserError as exc:
            if not lane.source.is_live:
                raise
            # A camera that gave up ends its own lane only: the other sources keep running. The error is
            # raised by run() once everything has ended, so the exit status still says a source failed.
            if len(self._roster.lanes) > 1:
                log.error("%s (the other sources keep running)", exc)
            with control.cond:
                control.source_errors.append(exc)
        finally:
            lane.stats.add(dropped=lane.source.dropped - source_dropped)
            lane.inbox.close()
            try:
                lane.source.close()
            finally:
                lane.reader_done = True
                self._roster.release(lane)


__all__ = ["Readers", "measure_motion"]

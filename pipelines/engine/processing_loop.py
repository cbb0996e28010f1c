"""``ProcessingLoop``: the processing thread (``trackstream-tracker``): each source's ``StreamProcessor`` turns its
detections, in frame order, into output values for its sinks.

Every per-camera state lives in the processor; this thread only feeds it, sends what it returns to the source's
sinks (``Outputs``), and sends a snapshot (``Snapshots.take``) every ``state.interval`` seconds, after a
camera's frame with events (``state.on_events``) and at the source's end. A file's outputs close at its end; every
other source is finished when the run ends. Frames already detected are processed and written even after a
failure.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

from pipelines.config import PipelineConfig
from pipelines.engine.control import RunControl
from pipelines.engine.delivery import Delivery
from pipelines.engine.lane import Lane
from pipelines.engine.outlet import END, End
from pipelines.engine.outputs import Outputs
from pipelines.engine.roster import Roster
from pipelines.engine.snapshots import Snapshots
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.processing.schedule import ScheduleState
from tracker.types import Detections

log = logging.getLogger("pipelines.engine.runner")   # the engine's lines keep the name their readers know


class ProcessingLoop:
    """What the processing thread runs (``run``).

    Args:
        config: the pipeline config (``state.interval``, ``state.on_events``).
        control: the run's lock (a detection plan comes back under it), stop and abort flags.
        roster: the lanes open now; a finished lane may be retired.
        delivery: the detector's results, in each source's order.
        outputs: opens and feeds each source's sinks.
        snapshots: takes each source's snapshot.
    """

    def __init__(self, config: PipelineConfig, control: RunControl, roster: Roster, delivery: Delivery,
                 outputs: Outputs, snapshots: Snapshots) -> None:
        self._config, self._control, self._roster, self._delivery = config, control, roster, delivery
        self._outputs, self._snapshots = outputs, snapshots

    def run(self) -> None:
        """Processing thread: each source's processor turns detections into output values for its sinks."""
        try:
            while True:
                entry = self._delivery.get()
                if isinstance(entry, End):
                    break
                lane, item, dets, schedule = entry  # frames are processed and written even after a failure
                if isinstance(item, StreamStatus):
                    if item.kind is StatusKind.ENDED:   # a file stopped early says so (the summary tells)
                        # stopped by the run (a signal), not by --max-frames, which stops the source as well
                        lane.stats.stop_clock(stopped=bool((item.detail or {}).get("stopped"))
                                              and self._control.stopped.is_set())
                        if (item.detail or {}).get("growing"):
                            self._warn_growing(lane, str(item.detail.get("growth", "")))
                    self._outputs.send(lane, lane.processor.status(item))
                    lane.counts = lane.processor.counts()  # a stream's end empties its zones
                    if item.kind is StatusKind.ENDED and not lane.settings.is_live:
                        self._finish_lane(lane)   # a file's last item: its outputs close now, not at the run's end
                else:
                    self._process(lane, item, dets, schedule)
        finally:
            try:
                self._finish_lanes()
            finally:
                self._delivery.consumer_gone()

    def _warn_growing(self, lane: Lane, growth: str) -> None:
        """One line: the file was still being written when reading reached its end (``growth`` says how it
        showed), how many frames of it were processed, and what becomes of the rest."""
        store = self._snapshots.store
        stats = lane.stats.snapshot()
        done = f"{stats.frames_out} frames" + (f" ({stats.resumed_after + stats.frames_out} in all)"
                                                if stats.resumed_after else "")
        rest = (f"the same command run again once the recording is finished processes the rest (its state "
                f"{store.path(lane.settings.id)} continues after them)" if store is not None else
                "the rest is not processed (with --state DIR the same command run again once the recording is "
                "finished continues after them)")
        log.warning("%s: %s is still being written (%s): processed %s, up to its current end; %s", lane.settings.id,
                    lane.settings.url, growth, done, rest)

    def _process(self, lane: Lane, frame: VideoFrame, dets: Optional[Detections],
                 schedule: Optional[ScheduleState]) -> None:
        """Process one frame of ``lane`` (``dets`` None: the schedule skipped it) and send what it produced."""
        if not lane.outlets_open:
            self._outputs.open(lane, frame.size)
        result = lane.processor.process(frame, dets, schedule)
        if dets is not None and lane.schedule.feedback:  # the plan the next decision waits for
            plan = lane.processor.schedule_state.plan
            with self._control.cond:
                if plan is not None:
                    lane.schedule.observe(plan)
                self._control.cond.notify_all()
        if result.detected:
            lane.stats.add(frames_detected=1)
        self._outputs.send(lane, result)
        lane.counts = result.counts if result.counts is not None else lane.processor.counts()
        lane.stats.processed(result.frame.pts, time.time() - frame.capture_time, lane.counts.tracks_started)
        state = self._config.state
        if self._snapshots.store is not None and (time.monotonic() - lane.last_checkpoint >= state.interval
                                                  or (result.events and lane.settings.is_live and state.on_events)):
            self._checkpoint(lane)

    def _checkpoint(self, lane: Lane) -> None:
        """Send the processor's snapshot behind the frames it covers (``Snapshots.take``)."""
        checkpoint = self._snapshots.take(lane)
        if checkpoint is not None:
            self._outputs.send(lane, checkpoint)

    def _finish_lanes(self) -> None:
        """The run ends: finish every source not finished yet (``_finish_lane``)."""
        for lane in self._roster.lanes:
            self._finish_lane(lane)

    def _finish_lane(self, lane: Lane) -> None:
        """A source ended (a file at its end, every source at the run's end): close its processor (ending its
        tracks, unless suspended), take the last snapshot, and tell each sink its input ended. Processing thread."""
        if lane.finished:
            return
        if not lane.outlets_open and lane.source.size is not None and not self._control.aborted.is_set():
            self._outputs.open(lane, lane.source.size)
        closing = lane.processor.status(StreamStatus(StatusKind.CLOSED, lane.settings.id, time.time()))
        lane.counts = lane.processor.counts()
        if closing.events:
            self._outputs.send(lane, closing)
        if self._snapshots.store is not None and not self._control.aborted.is_set():
            self._checkpoint(lane)
        for outlet in lane.outlets:
            outlet.queue.put_always(END)
        lane.finished = True
        self._roster.release(lane)


__all__ = ["ProcessingLoop"]

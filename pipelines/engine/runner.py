"""Threads and queues joining sources, detector, trackers and sinks (see docs/architecture.md): the ``Runner``
builds the parts, starts their threads, waits for them and raises the first error.

::

    reader thread per source ─▶ Inbox (bounded FIFO for files / latest-frame slot for live)
      ─▶ detector thread per worker (batches; handed on in order) ─▶ queue ─▶ processing thread
      (one StreamProcessor per source: tracker, events, zones, trails, counters)
      ─▶ one bounded SinkQueue + thread per sink, with the sink's drop policy (the video sink draws
         and encodes there)

The parts, each in its own module:

- ``control.py``: ``RunControl``, the lock, the stop and abort flags, the threads and the errors they raised.
- ``roster.py``: every source's ``Slot`` (waiting, open or done) and the lanes open now.
- ``readers.py``: a reader thread per open source, into its ``Inbox``.
- ``batches.py``: which items of which sources the detector takes next, each batch numbered (its ticket).
- ``detector_loop.py``: the detector threads, one model call per batch.
- ``delivery.py``: their results handed to the processing thread in each source's order.
- ``processing_loop.py``: the processing thread.
- ``outputs.py``: each source's sinks, opened, fed through their queues and closed.
- ``snapshots.py``: each source's snapshot (``--state``), loaded at its start and taken as it runs.
- ``opener.py``: the opener thread of an archive's waiting files.

The files of an archive run a few at a time (``waves.py``): a ``WaitingFile`` among the sources is opened by the
opener thread when fewer than ``file_lanes`` plain files are being read (and fewer than twice that hold anything),
and a file's lane is let go of (``Roster.release``) once its reader, the processing thread (at its
``stream_ended``) and its sink threads are done with it.

The runner only schedules: every per-camera state lives in the source's ``StreamProcessor``. With a
``StateStore`` (``--state DIR``) each processor's snapshot travels through its sinks' queues as a
``Checkpoint`` every ``state.interval`` seconds and at the end (and, for a camera, right after a frame
with events: a camera restarted after a crash must neither announce them again nor lose their counts, and
its frames are never replayed), and is loaded at start.

File batches never mix sources and are always full (or the file's tail), so two runs over one file
give identical results.

Each source's detection schedule (``detector.schedule``, ``processing/schedule.py``) is asked, frame by frame
and in order, before the detector: a frame it skips takes no place in a detector call and goes on to
processing in its turn, where the tracker predicts it. A camera's frame that needs no detection leaves the
detector's batch to cameras that do. A file with a schedule other than ``every`` is detected one frame per
call (a batch of frames K apart would hold K times the batch in memory), and its next frame waits until its
last detected frame has been processed and its plan came back, so file outputs never depend on timing; a
camera's frames that come meanwhile are predicted (not dropped) until the plan is back.

An exception in any thread stops the run: every sink is still closed (so what was processed is flushed) and
``run()`` raises it in the caller's thread.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

from pipelines.config import PipelineConfig
from pipelines.detection import FrameDetector, resolve_batch
from pipelines.engine.batches import Batches
from pipelines.engine.control import PipelineError, RunControl
from pipelines.engine.delivery import Delivery
from pipelines.engine.detector_loop import DetectorLoop
from pipelines.engine.inbox import Inbox
from pipelines.engine.lane import Lane, expected_frames
from pipelines.engine.opener import Opener
from pipelines.engine.outputs import Outputs, SinkFactory
from pipelines.engine.processing_loop import ProcessingLoop
from pipelines.engine.readers import Readers
from pipelines.engine.roster import KEPT_PICTURES, Roster
from pipelines.engine.snapshots import Snapshots
from pipelines.engine.state import SnapshotStore
from pipelines.engine.stats import SourceStats, StatsSnapshot
from pipelines.engine.view import SourceState
from pipelines.engine.waves import Slot, WaitingFile, file_lanes, in_waves
from pipelines.processing.processor import StreamProcessor
from pipelines.settings import SourceSettings
from pipelines.sinks import build_sinks
from pipelines.sources.base import Source

log = logging.getLogger(__name__)


def serial_opencv() -> None:
    """Make OpenCV compute on the thread that calls it, process-wide. trackstream's stages (readers, detector
    copies, processing, sinks) already keep every core busy, so OpenCV's own pool of workers adds nothing but
    its workers' spinning after each call: on a still camera checked by the adaptive schedule that spinning was
    0.3 ms of CPU per frame, 40% of the frame's whole cost (``benchmarks/quiet_cost.py``)."""
    import cv2

    cv2.setNumThreads(1)


class Runner:
    """Processes N sources until they end or ``stop()`` is called.

    Args:
        sources: (settings, opened source) pairs; ``settings.latest_frame`` picks the frame policy. A
            ``waves.WaitingFile`` is opened when its turn comes (``launch.open_sources`` makes them).
        detector: the detector (``FrameDetector``: ``detect_counted``, ``class_names``, ``workers``).
        config: the pipeline config (``detector.batch``, outputs, overlays and ``state.interval``).
        max_frames: stop each source after this many frames, counted after the stride picks them (None = all;
            a camera's frames dropped by the newest-frame policy count too).
        sink_factory: builds the sinks of one source (default ``pipelines.sinks.build_sinks``).
        state: where each source's snapshot is loaded from and saved to (None: no snapshots).
        restarted: this run replaces a worker that died (a Ray actor restarted by Ray): a camera resumed
            from its snapshot announces the outage as ``stream_gap`` before ``stream_resumed``.
        fingerprints: the sources' fingerprints already taken (``fingerprint.check_resumes``), by source id; the
            others are taken here (with ``state``), so a file is read once for its fingerprint.
        skippable: the URLs of the files a folder or glob found: such a file that cannot be read when its turn
            comes (removed since the start) is left out with one warning line and ``on_skip(url)``, as an
            unreadable one is at start; any other source that cannot be opened stops the run.
    """

    def __init__(self, sources: Sequence[tuple[SourceSettings, Source]], detector: FrameDetector,
                 config: PipelineConfig, *, max_frames: Optional[int] = None,
                 sink_factory: SinkFactory = build_sinks, state: Optional[SnapshotStore] = None,
                 restarted: bool = False, fingerprints: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 skippable: Collection[str] = (), on_skip: Callable[[str], None] = lambda url: None) -> None:
        serial_opencv()
        self.detector = detector
        self.config = config
        live_streams = sum(1 for settings, _ in sources if settings.latest_frame)
        scheduled = all(settings.schedule.waits_for_plans for settings, _ in sources if settings.latest_frame)
        self.batch, self.live_batch = resolve_batch(config.detector.batch, detector.device, live_streams,
                                                    scheduled)
        self.max_frames = max_frames
        self.state = state
        self._control = RunControl(self.stop)
        self.workers = max(1, int(detector.workers))
        self._snapshots = Snapshots(config, state, detector.class_names, restarted=restarted,
                                    fingerprints=fingerprints)
        self.file_lanes = file_lanes(self.workers)
        self._roster = Roster(self._control.cond, self.file_lanes,
                              on_retire=lambda lane: self._snapshots.closed(lane.settings.id))
        self._outputs = Outputs(config, sink_factory, self._control, self._roster.release)
        self._delivery = Delivery(self._control.cond, self._roster, 2 * max(self.batch, self.live_batch) + 2,
                                  self.workers)
        self._readers = Readers(self._control, self._roster, max_frames)
        self._opener = Opener(self._control, self._roster, self._snapshots, self._outputs, self._add_lane,
                              self._readers.start, skippable=skippable, on_skip=on_skip)
        self._batches = Batches(self._control, self._roster, self._opener.more_to_come, workers=self.workers,
                                batch=self.batch, live_batch=self.live_batch)
        self._detector_loop = DetectorLoop(detector, self._control, self._batches, self._delivery)
        self._processing_loop = ProcessingLoop(config, self._control, self._roster, self._delivery, self._outputs,
                                               self._snapshots)
        for settings, source in sources:
            waiting = source if isinstance(source, WaitingFile) else None
            self._snapshots.fingerprint(settings, source)
            # a waiting file's saved state is checked now (a refused resume stops the run at start), then let go
            saved = self._snapshots.saved(settings)
            processor = self._snapshots.processor(settings, saved, warn=True) \
                if waiting is None or saved is not None else None
            if processor is not None and saved is not None and processor.finished and not settings.is_live:
                self._snapshots.warn_done(settings, saved)
                source.close()
                continue
            skip = processor.frames_processed if processor is not None and saved is not None \
                and not settings.is_live else 0
            stats = SourceStats(settings.id, frame_count=expected_frames(source, settings.options, max_frames, skip),
                                resumed_after=skip, waiting=waiting is not None)
            slot = Slot(settings, stats, waiting)
            self._roster.enter(slot)
            if waiting is None:
                assert processor is not None
                self._add_lane(slot, source, processor, saved)
        self._snapshots.warn_uncompared()

    def _add_lane(self, slot: Slot, source: Source, processor: StreamProcessor,
                  saved: Optional[Mapping[str, Any]]) -> Lane:
        """Open ``slot``'s lane on its opened ``source`` (called before ``run()`` or with the run's lock held)."""
        settings = slot.settings
        self._snapshots.opened(settings)
        inbox = Inbox(self._control.cond, capacity=(self.workers + 1) * self.batch, latest=settings.latest_frame,
                      stats=slot.stats)
        lane = Lane(settings, source, inbox, slot.stats, processor, saved)
        if saved is not None and not settings.is_live:
            lane.resume_after = processor.clock.last_index
        lane.in_waves = in_waves(settings)
        self._roster.add(slot, lane)
        return lane

    @property
    def lanes(self) -> list[Lane]:
        """The sources open now (``Roster.lanes``)."""
        return self._roster.lanes

    @property
    def stats(self) -> list[StatsSnapshot]:
        """Every source's counters now (a file still waiting for its turn too: ``waiting``)."""
        return [slot.stats.snapshot() for slot in self._roster.slots]

    def sources(self) -> list[SourceState]:
        """Every source's state now (``pipelines.engine.view``): what readers of a running engine see."""
        return [slot.state() for slot in self._roster.slots]

    @property
    def outputs(self) -> list[str]:
        """Paths of the files the sinks wrote (network sinks have none). An output that stopped early (a full
        disk) is left out, its ``losses()`` phrase names it, and so is a file never made (no frame written)."""
        return [path for slot in self._roster.slots for path in slot.files() if os.path.exists(path)]

    def close_sources(self) -> None:
        """Close every source without running (for a caller whose start failed before ``run()``)."""
        for lane in self.lanes:
            lane.source.close()
        self._roster.close_waiting()

    def stop(self) -> None:
        """Stop reading; frames already read are processed, every sink is flushed and closed; files still waiting
        for their turn are not started. Thread-safe."""
        self._control.stopped.set()
        for lane in self.lanes:
            try:
                lane.source.stop()
            except Exception:  # noqa: BLE001 - stopping must never fail
                log.debug("stopping %s failed", lane.source.source_id, exc_info=True)
        with self._control.cond:
            self._control.cond.notify_all()

    def run(self, on_progress: Optional[Callable[[list[StatsSnapshot]], None]] = None,
            progress_interval: float = 0.5) -> list[StatsSnapshot]:
        """Process every source to its end (or ``stop()``); return the per-source counters.

        Raises the first error of any stage (``UserError`` as is; anything else as ``PipelineError``)
        after all sinks were closed.
        """
        try:
            for lane in self.lanes:
                if lane.source.size is not None:
                    self._outputs.open(lane, lane.source.size)
        except BaseException:
            self._outputs.close_all(self.lanes)
            self.close_sources()
            raise
        for lane in self.lanes:
            self._readers.start(lane)
        if self._roster.waiting:
            self._control.spawn("opener", self._opener.run)
        for _ in range(self.workers):
            self._control.spawn("detector", self._detector_loop.run)
        self._control.spawn("tracker", self._processing_loop.run)
        last = 0.0
        while True:
            threads = self._control.running()
            if not threads:
                break
            for t in threads:
                t.join(timeout=0.05)
            now = time.monotonic()
            if on_progress is not None and now - last >= progress_interval:
                last = now
                on_progress(self.stats)
        self._roster.close_waiting()   # stopped: the files still waiting are not started
        for slot in self._roster.slots:
            slot.stats.stop_clock(stopped=self._control.stopped.is_set())   # also a source whose end never came
        if on_progress is not None:
            on_progress(self.stats)
        self._control.raise_error()
        return self.stats

    def losses(self) -> list[str]:
        """One phrase per output that lost data (failed, or dropped/undelivered entries), for the summary
        and the exit code; empty when every output got everything."""
        lost = [phrase for slot in self._roster.slots for phrase in slot.output_losses()]
        unsaved = [f"the state of {slot.settings.id} was not saved: {failure}" for slot in self._roster.slots
                   if (failure := slot.state_failure()) is not None]  # the last snapshot failed: a resume repeats
        return lost + unsaved


__all__ = ["KEPT_PICTURES", "PipelineError", "Runner", "SinkFactory"]

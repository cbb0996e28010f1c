"""``Lane``: everything the engine keeps for one source (its per-camera state is in its processor); its
``state()`` is the read-only ``SourceState`` readers see."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Deque, Mapping, Optional

from pipelines.engine.inbox import Inbox
from pipelines.engine.outlet import Outlet
from pipelines.engine.stats import SourceStats
from pipelines.engine.view import OutputState, SourceState
from pipelines.frames import Counts, StreamStatus
from pipelines.processing.motion import MotionMask, MotionMeter
from pipelines.processing.processor import StreamProcessor
from pipelines.processing.schedule import DetectionSchedule
from pipelines.settings import SourceSettings
from pipelines.sinks.base import Buffered
from pipelines.sources.base import Source, SourceConfig


def output_fps(source: Source, options: SourceConfig) -> Optional[float]:
    """Frame rate of the processed frames of ``source``: its fps divided by vid_stride, capped by max_fps."""
    fps = source.fps
    if fps:
        fps = fps / options.vid_stride
        if options.max_fps:
            fps = min(fps, options.max_fps)
    return fps


def expected_frames(source: Source, options: SourceConfig, max_frames: Optional[int] = None,
                    skip: int = 0) -> Optional[int]:
    """How many frames of ``source`` will be processed (for the progress ETA); None when unknown.
    ``skip``: frames already processed by an earlier run (resumed from its state)."""
    count = source.frame_count
    if not count:
        return max_frames if source.is_live else None
    total = -(-count // options.vid_stride)
    if options.max_fps and source.fps:
        total = min(total, int(count / source.fps * options.max_fps) + 1)
    total = max(0, total - skip)
    return min(total, max_frames) if max_frames else total


class Lane:
    """Everything the runner keeps for one source (the per-camera state is in ``processor``)."""

    def __init__(self, settings: SourceSettings, source: Source, inbox: Inbox, stats: SourceStats,
                 processor: StreamProcessor, saved: Optional[Mapping[str, Any]]) -> None:
        self.settings, self.source, self.inbox, self.stats = settings, source, inbox, stats
        self.processor = processor
        self.saved_outputs: Mapping[str, Mapping[str, object]] = (saved or {}).get("outputs", {})
        self.resume_after: Optional[int] = None   # a resumed file: frames up to this index were processed
        self.outlets: list[Outlet] = []
        self.output_files: list[tuple[Outlet, str]] = []   # each file sink and the file it writes
        self.outlets_open = False
        self.counts: Counts = processor.counts()  # after the last processed frame (set by the processing thread)
        self.pending: list[StreamStatus] = []  # statuses that came before the sinks could be opened
        self.last_checkpoint = time.monotonic()
        self.checkpoints_taken = 0
        self.checkpoints_saved = 0
        self.save_lock = threading.Lock()
        self.state_failure: Optional[str] = None  # why the last snapshot could not be saved
        # what still holds the source's resources (``Roster.release`` retires the lane when none does, under the
        # run's lock): its reader (the open file), the processing thread (until it finished the lane) and its
        # outputs' threads
        self.reader_done = False
        self.finished = False
        self.outlets_running = 0
        self.in_waves = False   # a plain file of an archive: it takes one of the runner's file lanes
        # the detection schedule (decided by the detector threads under the runner's lock) and, for an
        # adaptive one, the reader's motion measure of each frame waiting in the inbox, by frame index
        sched = settings.schedule
        self.schedule = DetectionSchedule(sched, processor.schedule_state)
        self.meter = MotionMeter(sched.tuning.motion_width, sched.tuning.motion_threshold) \
            if sched.mode == "adaptive" else None
        self.motion: dict[int, MotionMask] = {}
        # detector tickets holding this source's items, oldest first (appended by ``Batches`` under the run's lock
        # as they are handed out, taken off by ``Delivery`` under its order lock): its results go to the processing
        # thread in this order, whatever other sources' tickets do
        self.tickets: Deque[int] = deque()
        self.parked: dict[int, list[Any]] = {}  # results of later tickets, done before an earlier one

    def state(self) -> SourceState:
        """This source now, as readers of the engine see it (thread-safe: values and queue sizes only)."""
        source = self.source
        outputs = tuple(OutputState(o.name, o.queue.qsize(),
                                    o.sink.buffered() if isinstance(o.sink, Buffered) else None, o.failure, o.sink)
                        for o in list(self.outlets))
        return SourceState(id=self.settings.id, live=self.settings.is_live, connected=bool(source.connected),
                           connect_failures=int(source.connect_failures), pending=int(source.pending),
                           inbox=self.inbox.depth, stats=self.stats.snapshot(), latency=self.stats.latency,
                           counts=self.counts, outputs=outputs)

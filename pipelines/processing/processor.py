"""``StreamProcessor``: one camera, one unit. It owns everything that is per source and stateful.

- the ``Tracker`` (IDs, motion, predicted paths);
- the ``EventGenerator`` (track lifecycle, zone and line events with their hysteresis, counts);
- the overlay ``Trails`` (recent centres per track, handed to whichever sink draws);
- the ``Heatmap`` (where tracks' ground points were, when the source's ``heatmap`` is on);
- the stream clock (timestamps that keep moving forward across a restart);
- per-source counters (frames processed);
- the detection schedule's state as of its last frame (``schedule.py``), and, after a detected frame of an
  ``adaptive`` source, the plan for the frames after it.

It is single-threaded and does no I/O. Its verb: ``process(frame, detections) -> FrameResult``, the output
value every sink consumes; health changes go through ``status(StreamStatus) -> StreamStatus`` (the same
status with the events it causes). ``state_dict()`` / ``load_state_dict()`` save and restore all of it as
one JSON-safe, versioned document, so a camera restarted elsewhere keeps its IDs, zone occupancy and
line counts, and an interrupted video resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

from pipelines.errors import UserError
from pipelines.frames import Counts, FrameResult, StatusKind, StreamStatus, TrackMeasures, VideoFrame
from pipelines.processing.calibration import GroundPlane
from pipelines.processing.classes import check_classes
from pipelines.processing.events import EventGenerator
from pipelines.processing.forecast import anchor_forecast
from pipelines.processing.heatmap import Heatmap
from pipelines.processing.overlays import OverlayConfig, Trails
from pipelines.processing.schedule import Plan, ScheduleState, confirm_plan, plan_after
from pipelines.settings import SourceSettings
from tracker import Tracker
from tracker.types import Detections

STATE_FORMAT = "trackstream.processor"
STATE_VERSION = 1


class StateError(UserError):
    """A saved processor state that cannot be used (malformed, another version, another source)."""


class StreamClock:
    """Keeps a source's timestamps moving forward across a restart.

    A file resumed from its state continues on its own timestamps (offset 0). A live source restarted
    from its state starts a new stream clock at 0; its first frame is placed after the saved last
    timestamp by the wall-clock time that passed, so the tracker sees the outage as the time it took.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.last_pts: Optional[float] = None
        self.last_index: Optional[int] = None
        self.last_wall: Optional[float] = None
        self.epoch: Optional[float] = None  # wall time of the stream's pts 0 (set by the first frame, kept)
        self._rebase_live = False

    def place(self, frame: VideoFrame) -> VideoFrame:
        """``frame`` on this clock (a new value when its timestamp moves)."""
        if self._rebase_live:
            self._rebase_live = False
            elapsed = max(0.0, frame.capture_time - (self.last_wall or frame.capture_time))
            self.offset = (self.last_pts or 0.0) + elapsed - frame.pts
        if self.offset:
            frame = frame.at(pts=round(frame.pts + self.offset, 6))
        if self.epoch is None:
            self.epoch = round(frame.capture_time - frame.pts, 3)
        self.last_pts, self.last_index, self.last_wall = frame.pts, frame.index, frame.capture_time
        return frame

    def stream_time(self, frame: VideoFrame) -> float:
        """``frame`` (placed) on the stream's persistent wall clock: epoch + pts."""
        return round((self.epoch or 0.0) + frame.pts, 3)

    def state_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "last_pts": self.last_pts, "last_index": self.last_index,
                "last_wall": self.last_wall, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any], live: bool) -> None:
        def opt(value: Any, kind: type) -> Any:
            return None if value is None else kind(value)
        self.offset = float(state["offset"])
        self.last_pts, self.last_index = opt(state["last_pts"], float), opt(state["last_index"], int)
        self.last_wall = opt(state["last_wall"], float)
        self.epoch = opt(state.get("epoch"), float)  # absent in snapshots of earlier releases: set anew
        self._rebase_live = live and self.last_pts is not None


class StreamProcessor:
    """Everything one source keeps between frames (see module docstring).

    Args:
        settings: the source's resolved settings (id, tracker, zones, lines, events).
        class_names: the detector's class id -> name.
        overlay: which overlays are on (trails are only kept when they are drawn).
        persistent: the run saves this processor's state (``--state``): a stop that is not the end of
            the source then suspends it (no ``track_ended``/``stream_ended``, so a resumed run continues
            the same tracks) instead of ending it.
        kept_classes: ``detector.classes`` (``--classes``), the only classes tracked (None: all).
    """

    def __init__(self, settings: SourceSettings, class_names: Mapping[int, str], *,
                 overlay: OverlayConfig = OverlayConfig(), persistent: bool = False,
                 kept_classes: Optional[Sequence[int]] = None) -> None:
        self.settings = settings
        self.source_id = settings.id
        self.class_names = dict(class_names)
        self.persistent = persistent
        check_classes(settings.zones, settings.lines, self.class_names, settings.id,   # one line, not a crash
                      kept_classes)
        self._tracker = Tracker(settings.tracker)
        self._events = EventGenerator(settings.id, settings.zones, settings.lines, settings.events)
        self._trails = Trails(overlay.trail_seconds) if overlay.trails and overlay.trail_seconds > 0 else None
        self._has_counts = bool(settings.zones or settings.lines)
        self._heatmap = Heatmap(settings.heatmap, self.class_names, settings.events.anchor) \
            if settings.heatmap.enabled else None
        self._ground = None if settings.calibration is None else GroundPlane(settings.calibration,
                                                                             settings.events.anchor)
        limits = [z.speed_limit_kmh for z in settings.zones] + [ln.speed_limit_kmh for ln in settings.lines]
        if self._ground is None and any(limit is not None for limit in limits):
            raise UserError(f"source {settings.id}: speed_limit_kmh needs the source's calibration "
                            "(calibration: {image_points, ground_points} or {metres_per_pixel}; docs/analytics.md)")
        self.clock = StreamClock()
        self.frames_processed = 0
        self.restored = False      # loaded from a saved state (a continuing stream)
        self.after_outage = False  # restored by a worker restarted after a crash (a camera gets a stream_gap)
        self.finished = False      # the source reached its end (nothing left to resume)
        self.schedule_state = ScheduleState()  # the detection schedule after this source's last frame
        self._no_detections = Detections.empty()  # a skipped frame's (immutable: one value for them all)

    # -- the verbs ----------------------------------------------------------------------------------------
    def process(self, frame: VideoFrame, detections: Optional[Detections],
                schedule: Optional[ScheduleState] = None) -> FrameResult:
        """Track one frame and derive its events, trails and counts: the frame's output value.

        ``detections`` None: the detection schedule skipped this frame; the tracks are the tracker's
        predictions (``Tracker.predict``) and decide no event. ``schedule``: the schedule's state after
        deciding this frame (kept for the snapshot).
        """
        raw_pts = frame.pts
        frame = self.clock.place(frame)
        detected = detections is not None
        if detections is None:
            detections = self._no_detections
            tracks = self._tracker.predict(timestamp=frame.pts)
        else:
            tracks = self._tracker.update(detections, timestamp=frame.pts)
        motion = self._ground.measure(tracks, frame.pts, frame.size) \
            if self._ground is not None else {}   # speed in m/s
        heat = None
        if self._heatmap is not None:
            width, height = frame.size
            self._heatmap.add(tracks, frame.pts, width, height)
            heat = self._heatmap.latest(frame.pts)
        trails = None
        if self._trails is not None:
            self._trails.update(tracks, frame.pts)
            trails = self._trails.points(tracks.track_id.tolist())
        result = FrameResult(frame, detections, tracks, self.class_names, trails=trails, detected=detected,
                             measures=TrackMeasures(motion=motion) if self._ground is not None else None)
        horizons = self._events.horizons                # zones/lines that warn before a predicted crossing
        forecast = anchor_forecast(self._tracker, horizons, self.settings.events.anchor) \
            if horizons and detected else None
        events = tuple(self._events.update(result, forecast))   # speed limits read the motion of result.measures
        self.frames_processed += 1
        counts = self._events.counts() if self._has_counts else None
        measures = TrackMeasures(zones=self._events.dwell_now(), motion=motion) \
            if self.settings.zones or self._ground is not None else None
        if schedule is not None:
            if detected and not self.settings.schedule.every_frame:
                plan = self._plan(result).shifted(frame.pts - raw_pts)  # on the source's own clock
                schedule = dataclasses.replace(schedule, plan=plan, base=None, waiting=False)
            self.schedule_state = schedule
        return dataclasses.replace(result, events=events, counts=counts, stream_time=self.clock.stream_time(frame),
                                   measures=measures, heat=heat)

    def _plan(self, result: FrameResult) -> Plan:
        s = self.settings
        if s.schedule.mode == "interval":
            return confirm_plan(result.frame.pts, self._tracker.pending())
        return plan_after(result.frame.pts, result.tracks, self._tracker.pending(), s.schedule.tuning, s.lines, s.zones,
                          s.events.line_dead_band, s.events.anchor, self._tracker.velocity_spread())

    def status(self, status: StreamStatus) -> StreamStatus:
        """``status`` with the events it causes.

        ``stream_ended`` ends every track, unless the stop was ours or the file is still being written
        (``growing``) and the state is kept (then nothing is announced: the next run continues). A source
        restored from its state announces no second ``stream_started``: a file continues silently; a camera
        reports ``stream_resumed`` (after a ``stream_gap`` when ``after_outage``: its worker died and was
        restarted).
        """
        kind = status.kind
        if kind is StatusKind.CLOSED:
            return self._with_events(status, self.close())
        if kind is StatusKind.STARTED and self.restored:
            if not self.settings.is_live:
                return status
            gap = None if self.clock.last_wall is None else round(max(0.0, status.wall_time - self.clock.last_wall), 3)
            status = dataclasses.replace(status, kind=StatusKind.RESUMED,
                                         detail={**status.detail, "restored": True, "gap_seconds": gap})
            if self.after_outage:  # the worker died: the gap it could not announce comes first
                lost = StreamStatus(StatusKind.GAP, status.source_id, self.clock.last_wall or status.wall_time,
                                    pts=self.clock.last_pts, detail={"reason": "worker restarted"})
                return self._with_events(status, [*self._events.status(lost), *self._events.status(status)])
        if kind is StatusKind.ENDED:
            if self.persistent and (bool(status.detail.get("stopped")) or bool(status.detail.get("growing"))):
                return status  # suspended: the saved state continues it (a file still being written: once grown)
            self.finished = True
        return self._with_events(status, self._events.status(status))

    def _with_events(self, status: StreamStatus, events: list[dict[str, Any]]) -> StreamStatus:
        """``status`` carrying ``events`` and the counts after them (the exits of tracks ended by the end
        of a stream change them; sinks that keep counts, such as MQTT's retained topics, follow)."""
        counts = self._events.counts() if self._has_counts else None
        return dataclasses.replace(status, events=tuple(events), counts=counts)

    def close(self) -> list[dict[str, Any]]:
        """At the end of the lane: ``track_ended`` for tracks still known (none when suspended)."""
        if self.persistent and not self.finished:
            return []
        return self._events.close()

    def counts(self) -> Counts:
        """Zone occupancy and line counts now."""
        return self._events.counts()

    # -- whole-camera snapshot ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tracker, event state (announced tracks, zone membership, line sides, counts, standing predicted
        crossings), trails, the heatmap, the stream clock and counters as one JSON-safe document (``json.dumps``
        accepts it)."""
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION, "source_id": self.source_id,
            "tracker": self._tracker.state_dict(),
            "events": self._events.state_dict(),
            "trails": None if self._trails is None else self._trails.state_dict(),
            "clock": self.clock.state_dict(),
            "frames_processed": self.frames_processed,
            "finished": self.finished,
            "schedule": self.schedule_state.doc(),
            "heatmap": None if self._heatmap is None else self._heatmap.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()`` output. Raises ``StateError`` (one line) when it is not a
        processor state of this version and source, or is malformed; the processor is unchanged then."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise StateError(f"saved state of {self.source_id}: not a trackstream processor state")
        if state.get("version") != STATE_VERSION:
            raise StateError(f"saved state of {self.source_id}: version {state.get('version')!r} is not "
                             f"{STATE_VERSION} (saved by another trackstream release); remove it to start over")
        if state.get("source_id") != self.source_id:
            raise StateError(f"saved state is of source {state.get('source_id')!r}, not {self.source_id!r}")
        tracker = Tracker(self.settings.tracker)
        events = EventGenerator(self.settings.id, self.settings.zones, self.settings.lines, self.settings.events)
        trails = None if self._trails is None else Trails(self._trails.seconds)
        clock = StreamClock()
        heatmap = None if self._heatmap is None else Heatmap(self._heatmap.config, self.class_names,
                                                             self.settings.events.anchor)
        try:
            tracker.load_state_dict(dict(state["tracker"]))
            events.load_state_dict(state["events"])
            if trails is not None and state["trails"] is not None:
                trails.load_state_dict(state["trails"])
            clock.load_state_dict(state["clock"], live=self.settings.is_live)
            frames, finished = int(state["frames_processed"]), bool(state["finished"])
            saved = state.get("schedule")  # absent in snapshots written before schedules existed
            schedule = ScheduleState() if saved is None or self.settings.is_live else ScheduleState.from_doc(saved)
            if heatmap is not None and state.get("heatmap") is not None:   # absent: saved with it off, or
                heatmap.load_state_dict(state["heatmap"])                 # by an earlier release: starts anew
        except KeyError as exc:
            raise StateError(f"saved state of {self.source_id}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            raise StateError(f"saved state of {self.source_id}: malformed ({exc})") from None
        self._tracker, self._events, self._trails, self.clock = tracker, events, trails, clock
        self._heatmap = heatmap
        self.frames_processed, self.finished, self.restored = frames, finished, True
        self.schedule_state = schedule  # a camera starts a new stream clock: its schedule starts over

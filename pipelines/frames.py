"""Values that flow between pipeline stages: frames in, results out (with their zone and line counts), status
as values, and the schema version of the documents made from them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping, Optional, Protocol, Tuple

import numpy as np
import numpy.typing as npt

from tracker.types import Detections, Tracks


Luma = Tuple[npt.NDArray[np.uint8], float]
"""A frame's upright luma plane (H, W) and the span of its values (255 full range, 219 video range)."""


class Deferred:
    """A decoded frame's BGR picture, made on first use.

    Most frames of a scheduled or dropped-to-latest source are never detected nor drawn; converting them to BGR
    (0.7 ms for a 720p frame) is then work for nothing. A source hands the converter instead of the picture;
    ``VideoFrame.image`` calls it once, under a lock (several stages may ask at once), and keeps the result.

    Attributes:
        size: (width, height) of the picture, known without converting it.
    """

    __slots__ = ("size", "_convert", "_luma", "_value", "_lock")

    def __init__(self, convert: Callable[[], npt.NDArray[np.uint8]], size: tuple[int, int],
                 luma: Optional[Callable[[], Luma]] = None) -> None:
        self.size = size
        self._convert: Optional[Callable[[], npt.NDArray[np.uint8]]] = convert
        self._luma = luma
        self._value: Optional[npt.NDArray[np.uint8]] = None
        self._lock = threading.Lock()

    def get(self) -> npt.NDArray[np.uint8]:
        """The picture (converted now if this is the first use)."""
        if self._value is None:
            with self._lock:
                if self._value is None and self._convert is not None:
                    self._value, self._convert = self._convert(), None
        assert self._value is not None
        return self._value

    def luma(self) -> Optional[Luma]:
        """The luma plane without converting anything (None when the frame's format has no such plane)."""
        return self._luma() if self._luma is not None else None


class _Picture:
    """``VideoFrame.image``: the array given, or a ``Deferred`` picture made on first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, objtype: Any = None) -> npt.NDArray[np.uint8]:
        if obj is None:
            raise AttributeError(self.slot)
        value = obj.__dict__[self.slot]
        return value.get() if isinstance(value, Deferred) else value

    def __set__(self, obj: Any, value: "npt.NDArray[np.uint8] | Deferred") -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        image: uint8 (H, W, 3) BGR pixels (a source may pass a ``Deferred`` picture: made on first read).
        index: 0-based index of the frame in its source's decoded sequence (skipped frames count).
        pts: presentation time in seconds from the source's start.
        source_id: configured id of the source (never contains credentials).
        capture_time: wall-clock time (``time.time()``) when the frame was decoded.
    """

    image: npt.NDArray[np.uint8]  # read through _Picture (attached below, after the dataclass is made)
    index: int
    pts: float
    source_id: str
    capture_time: float

    @classmethod
    def deferred(cls, picture: Deferred, index: int, pts: float, source_id: str,
                 capture_time: float) -> "VideoFrame":
        """A frame whose BGR picture is made when first read (``Deferred``)."""
        return cls(picture, index, pts, source_id, capture_time)  # type: ignore[arg-type]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels (without making a deferred picture)."""
        value = self.__dict__["_image"]
        if isinstance(value, Deferred):
            return value.size
        return int(value.shape[1]), int(value.shape[0])

    def luma(self) -> Optional[Luma]:
        """The upright luma plane, when the source can give it without converting the frame; else None."""
        value = self.__dict__["_image"]
        return value.luma() if isinstance(value, Deferred) else None

    def at(self, *, pts: Optional[float] = None, capture_time: Optional[float] = None) -> "VideoFrame":
        """This frame with another ``pts`` and/or ``capture_time``, its picture still unmade if it was."""
        return type(self)(self.__dict__["_image"], self.index, self.pts if pts is None else pts, self.source_id,
                          self.capture_time if capture_time is None else capture_time)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_image": self.image}  # pickled (Ray): the picture itself, made if need be


def _attach_picture() -> None:
    picture = _Picture()
    picture.__set_name__(VideoFrame, "image")
    setattr(VideoFrame, "image", picture)  # noqa: B010 - after @dataclass (a class attribute there is a default)


_attach_picture()


SCHEMA_VERSION = 1
"""Version of the published documents: the frame record (``pipelines/sinks/records.py``), the event document
(``pipelines/processing/events.py``) and the MQTT count documents."""

Event = Mapping[str, Any]
"""An event document (schema v1, JSON-safe; see pipelines/processing/events.py)."""


@dataclass(frozen=True)
class DwellSummary:
    """One zone's dwell times in seconds: finished visits (count, mean, median of the last ``KEPT_VISITS``,
    maximum; None before the first) and the tracks inside now (track id -> seconds inside so far)."""

    visits: int
    mean_s: Optional[float]
    median_s: Optional[float]
    max_s: Optional[float]
    inside_s: Mapping[int, float]

    def doc(self) -> dict[str, Any]:
        """JSON form: ``{"visits", "mean_s", "median_s", "max_s", "inside": [{"id", "seconds"}, ...]}``."""
        return {"visits": self.visits, "mean_s": self.mean_s, "median_s": self.median_s, "max_s": self.max_s,
                "inside": [{"id": tid, "seconds": s} for tid, s in sorted(self.inside_s.items())]}


@dataclass(frozen=True)
class ZoneCount:
    """One zone: tracks inside now, confirmed entries and exits since the start; ``by_class`` the same per
    class name when ``events.count_by_class`` is on (empty until the zone counts a track), None when it is off."""

    occupancy: int
    entries: int
    exits: int
    by_class: Optional[Mapping[str, "ZoneCount"]] = None
    classes: tuple[str, ...] = ()   # the classes the zone counts (its ``classes:``); empty: every class
    dwell: Optional[DwellSummary] = None   # dwell times of finished visits and of the tracks inside now
    predicted: Optional[int] = None   # warned entries standing now (``predict_seconds``); None: it does not warn

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"occupancy": self.occupancy, "entries": self.entries, "exits": self.exits}
        if self.by_class:
            out["by_class"] = {k: v.doc() for k, v in self.by_class.items()}
        if self.classes:
            out["classes"] = list(self.classes)
        if self.dwell is not None:
            out["dwell"] = self.dwell.doc()
        if self.predicted is not None:
            out["predicted_pending"] = self.predicted
        return out


@dataclass(frozen=True)
class LineCount:
    """One counting line: confirmed crossings in each direction since the start; ``by_class`` the same per
    class name when ``events.count_by_class`` is on (empty until the line counts a crossing), None when it is off."""

    left_to_right: int
    right_to_left: int
    by_class: Optional[Mapping[str, "LineCount"]] = None
    classes: tuple[str, ...] = ()   # the classes the line counts (its ``classes:``); empty: every class
    predicted: Optional[int] = None   # warned crossings standing now (``predict_seconds``); None: it does not warn

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"left_to_right": self.left_to_right, "right_to_left": self.right_to_left}
        if self.by_class:
            out["by_class"] = {k: v.doc() for k, v in self.by_class.items()}
        if self.classes:
            out["classes"] = list(self.classes)
        if self.predicted is not None:
            out["predicted_pending"] = self.predicted
        return out


@dataclass(frozen=True)
class PendingWarning:
    """A warning before a predicted crossing that stands (``crossing_predicted`` / ``zone_entry_predicted``,
    neither fulfilled nor cancelled yet): track ``track_id`` is expected to cross ``line`` in ``direction``, or
    to enter ``zone``, in ``seconds`` (from the frame's time; 0 when overdue) with ``probability``."""

    track_id: int
    class_name: str
    seconds: float
    probability: float
    line: Optional[str] = None
    direction: Optional[str] = None   # ``left_to_right`` / ``right_to_left`` (lines)
    zone: Optional[str] = None

    def doc(self) -> dict[str, Any]:
        where = {"line": self.line, "direction": self.direction} if self.line is not None else {"zone": self.zone}
        return {"track_id": self.track_id, "class_name": self.class_name, **where, "seconds": self.seconds,
                "probability": self.probability}


@dataclass(frozen=True)
class Counts:
    """A source's zone and line counts (by name), the number of tracks started and the warnings of predicted
    crossings and entries standing (soonest first), at one frame."""

    zones: Mapping[str, ZoneCount]
    lines: Mapping[str, LineCount]
    tracks_started: int
    predictions: Tuple[PendingWarning, ...] = ()

    def doc(self) -> dict[str, Any]:
        """JSON form: ``{"zones": {name: {occupancy, entries, exits}}, "lines": {name: {...}}, ...,
        "predictions": [{track_id, class_name, line, direction | zone, seconds, probability}]}``."""
        return {"zones": {k: v.doc() for k, v in self.zones.items()},
                "lines": {k: v.doc() for k, v in self.lines.items()},
                "tracks_started": self.tracks_started,
                "predictions": [p.doc() for p in self.predictions]}


@dataclass(frozen=True)
class GroundMotion:
    """A track on the ground plane: ``ground`` (x, y) metres, ``speed_mps`` m/s, ``heading_deg`` the direction
    of motion in degrees clockwise from the ground's +y axis, in [0, 360) (None when standing still)."""

    ground: tuple[float, float]
    speed_mps: float
    heading_deg: float | None

    @property
    def speed_kmh(self) -> float:
        return self.speed_mps * 3.6

    def doc(self) -> dict[str, Any]:
        return {"ground": [round(self.ground[0], 3), round(self.ground[1], 3)],
                "speed_mps": round(self.speed_mps, 3), "speed_kmh": round(self.speed_kmh, 2),
                "heading_deg": None if self.heading_deg is None else round(self.heading_deg, 1)}


@dataclass(frozen=True)
class TrackMeasures:
    """Per-track measures of one frame, by track id (tracks without any are absent)."""

    zones: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    motion: Mapping[int, GroundMotion] = field(default_factory=dict)

    def row(self, track_id: int) -> dict[str, Any]:
        """The keys this adds to a track's frame record (none when nothing was measured)."""
        out: dict[str, Any] = {}
        zones = self.zones.get(track_id)
        if zones:
            out["zones"] = dict(zones)
        motion = self.motion.get(track_id)
        if motion is not None:
            out.update(motion.doc())
        return out


@dataclass(frozen=True)
class HeatSnapshot:
    """A source's heatmap at one frame (``pipelines/processing/heatmap.py``): where tracks' ground points were.

    Attributes:
        total: float32 (rows, cols) heat of every class: track-frames per cell (a track adds 1 to its ground
            point's cell each frame), decayed by ``heatmap.half_life_seconds`` when set. The grid has the
            frame's aspect; cell (r, c) covers pixels ``[c, c + 1) * width / cols`` by
            ``[r, r + 1) * height / rows``.
        by_class: class name -> float32 (rows, cols), the same per class (classes seen so far).
        frames: frames accumulated.
    """

    total: npt.NDArray[np.float32]
    by_class: Mapping[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    frames: int = 0


@dataclass(frozen=True)
class FrameResult:
    """What one processed frame produced: the output value of a source's ``StreamProcessor``.

    Attributes:
        frame: the frame (its ``pts`` on the source's stream clock).
        detections: the detector's rows for this frame.
        tracks: confirmed tracks of this frame (``tracker.Tracks``).
        class_names: class id -> name.
        events: lifecycle, zone and line events this frame caused, in order.
        trails: track id -> (P, 2) float64 recent box centres (oldest first) for drawing; None when
            trails are off or the result was not made by a processor.
        counts: zone occupancy and line counts after this frame (``Counts``);
            None when the source has no zones or lines.
        stream_time: the frame on the stream's persistent wall clock (Unix s): when the stream started
            plus ``frame.pts``; kept across restarts from a snapshot, so a frame processed again gets the
            same value (the basis of Redis entry ids). None when the result was not made by a processor.
        detected: the detector ran on this frame; False when the detection schedule (``detector.schedule``)
            skipped it and every track is at its predicted box (``Tracks.matched`` all False).
        measures: per-track analytics (seconds inside each zone, ground speed and heading with a
            calibration; ``TrackMeasures``); None when the source has neither.
        heat: the source's heatmap after this frame (``HeatSnapshot``); None when its heatmap is off.
    """

    frame: VideoFrame
    detections: Detections
    tracks: Tracks
    class_names: Mapping[int, str]
    events: Tuple[Event, ...] = ()
    trails: Optional[Mapping[int, npt.NDArray[np.float64]]] = None
    counts: Optional[Counts] = None
    stream_time: Optional[float] = None
    detected: bool = True
    measures: Optional[TrackMeasures] = None
    heat: Optional[HeatSnapshot] = None


class StatusKind(str, Enum):
    """Source lifecycle values that sinks may publish."""

    STARTED = "stream_started"
    GAP = "stream_gap"
    RESUMED = "stream_resumed"
    ENDED = "stream_ended"
    CLOSED = "closed"  # the engine's own: a source's lane closed; carries the events ending its tracks


@dataclass(frozen=True)
class StreamStatus:
    """A change in a source's health, delivered to sinks in order with its frames."""

    kind: StatusKind
    source_id: str
    wall_time: float
    pts: Optional[float] = None
    detail: Mapping[str, object] = field(default_factory=dict)
    events: Tuple[Event, ...] = ()  # filled in by the source's processor: what this change means as events
    counts: Optional["Counts"] = None  # the source's counts after those events (None: no zones or lines)


class Sink(Protocol):
    """Consumes the output values of one source in frame order. Called from a single thread.

    ``status`` receives the source's health changes with the events they cause (``StreamStatus.events``).
    """

    def write(self, result: FrameResult) -> None: ...

    def status(self, status: StreamStatus) -> None: ...

    def position(self) -> Optional[Mapping[str, object]]:
        """Flush, and say how far the output got (JSON-safe, saved with the source's state so a resumed
        run continues it exactly there); None when the output cannot be continued."""
        ...

    def close(self) -> None: ...


class BaseSink:
    """Convenience base: no-op status and close."""

    def write(self, result: FrameResult) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def status(self, status: StreamStatus) -> None:
        return None

    def position(self) -> Optional[Mapping[str, object]]:
        return None

    def close(self) -> None:
        return None

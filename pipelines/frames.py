"""Values that flow between pipeline stages: frames in, results out, status as values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol, Tuple

import numpy as np
import numpy.typing as npt

from tracker.types import Detections, Tracks

if TYPE_CHECKING:
    from pipelines.processing.events import Counts
    from pipelines.processing.measures import TrackMeasures


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        image: uint8 (H, W, 3) BGR pixels.
        index: 0-based index of the frame in its source's decoded sequence (skipped frames count).
        pts: presentation time in seconds from the source's start.
        source_id: configured id of the source (never contains credentials).
        capture_time: wall-clock time (``time.time()``) when the frame was decoded.
    """

    image: npt.NDArray[np.uint8]
    index: int
    pts: float
    source_id: str
    capture_time: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


Event = Mapping[str, Any]
"""An event document (schema v1, JSON-safe; see pipelines/processing/events.py)."""


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
        counts: zone occupancy and line counts after this frame (``processing.events.Counts``);
            None when the source has no zones or lines.
        stream_time: the frame on the stream's persistent wall clock (Unix s): when the stream started
            plus ``frame.pts``; kept across restarts from a snapshot, so a frame processed again gets the
            same value (the basis of Redis entry ids). None when the result was not made by a processor.
        measures: per-track analytics (seconds inside each zone, ground speed and heading with a
            calibration; ``processing.measures.TrackMeasures``); None when the source has neither.
    """

    frame: VideoFrame
    detections: Detections
    tracks: Tracks
    class_names: Mapping[int, str]
    events: Tuple[Event, ...] = ()
    trails: Optional[Mapping[int, npt.NDArray[np.float64]]] = None
    counts: Optional["Counts"] = None
    stream_time: Optional[float] = None
    measures: Optional["TrackMeasures"] = None


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

"""Values that flow between pipeline stages: frames in, results out, status as values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Optional, Protocol

import numpy as np
import numpy.typing as npt

from tracker.types import Detections, Tracks


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


@dataclass(frozen=True)
class FrameResult:
    """What one processed frame produced: detections, tracks and the class names to read them."""

    frame: VideoFrame
    detections: Detections
    tracks: Tracks
    class_names: Mapping[int, str]


class StatusKind(str, Enum):
    """Source lifecycle values that sinks may publish."""

    STARTED = "stream_started"
    GAP = "stream_gap"
    RESUMED = "stream_resumed"
    ENDED = "stream_ended"


@dataclass(frozen=True)
class StreamStatus:
    """A change in a source's health, delivered to sinks in order with its frames."""

    kind: StatusKind
    source_id: str
    wall_time: float
    pts: Optional[float] = None
    detail: Mapping[str, object] = field(default_factory=dict)


class Sink(Protocol):
    """Consumes results of one source in frame order. Called from a single thread."""

    def write(self, result: FrameResult) -> None: ...

    def status(self, status: StreamStatus) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """Convenience base: no-op status and close."""

    def write(self, result: FrameResult) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def status(self, status: StreamStatus) -> None:
        return None

    def close(self) -> None:
        return None

"""Detection: a model maps batches of frames to ``Detections`` (``pipelines/detection/detector.py``)."""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

from pipelines.frames import VideoFrame
from tracker.types import Detections


class FrameDetector(Protocol):
    """What the engine needs of a detector.

    Attributes:
        class_names: class id -> name.
        workers: how many threads may call ``detect_counted`` at once (copies of the model).
    """

    class_names: Mapping[int, str]
    workers: int

    def detect_counted(self, frames: Sequence[VideoFrame]) -> tuple[list[Detections], int]:
        """Detections of each frame, in order, and how many invalid rows were dropped. Thread-safe."""
        ...


__all__ = ["FrameDetector"]

"""Detection: a model maps batches of frames to ``Detections`` (``pipelines/detection/detector.py``)."""

from __future__ import annotations

from typing import Mapping, Optional, Protocol, Sequence

from pipelines.frames import VideoFrame
from tracker.types import Detections


class FrameDetector(Protocol):
    """What the engine needs of a detector.

    Attributes:
        class_names: class id -> name.
        workers: how many threads may call ``detect_counted`` at once (copies of the model).
        device: the torch device it computes on (``cpu``, ``cuda:0``, ...); the batch size follows it.
    """

    class_names: Mapping[int, str]
    workers: int
    device: str

    def detect_counted(self, frames: Sequence[VideoFrame]) -> tuple[list[Detections], int]:
        """Detections of each frame, in order, and how many invalid rows were dropped. Thread-safe."""
        ...


CPU_BATCH = 4          # frames per call on a CPU (the default before the choice was automatic)
GPU_FILE_BATCH = 16    # frames of one file per call on CUDA
GPU_LIVE_BATCH = 64    # most live streams in one call on CUDA


def resolve_batch(batch: Optional[int], device: str, live_streams: int,
                  scheduled_live: bool = False) -> tuple[int, int]:
    """(frames of one file per detector call, most live streams per call) for ``detector.batch``.

    An explicit ``batch`` is both. ``None`` (auto): on CUDA a call takes the newest frame of every live
    stream that has one, so the batch follows the number of live streams (up to ``GPU_LIVE_BATCH``), and
    ``GPU_FILE_BATCH`` frames of a file; on other devices ``CPU_BATCH`` for both, except that live streams
    whose detection schedule is not ``every`` (``scheduled_live``: all of them) are detected one per call.
    On a CPU a call's time grows with its frames, and with a schedule every frame a camera shows after a
    detected one waits for that call: four cameras' frames in one call made each wait four inferences
    (``benchmarks/live_capacity.py --batches 4 1``: p95 latency down by a third, more frames per second).
    """
    if batch is not None:
        return batch, batch
    if device.startswith("cuda"):
        return GPU_FILE_BATCH, max(1, min(live_streams, GPU_LIVE_BATCH))
    return CPU_BATCH, 1 if scheduled_live and live_streams else CPU_BATCH


__all__ = ["FrameDetector", "resolve_batch"]

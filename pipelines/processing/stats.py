"""Per-source counters the runner keeps and the progress line, summary and metrics read."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from pipelines.engine.metrics import LatencyHistogram


@dataclass
class SourceStats:
    """Counters of one source. Updated by the runner's threads; read with ``snapshot()`` from any thread.

    Attributes:
        frames_in: frames the source delivered to the runner (after vid_stride / max_fps selection).
        frames_out: frames fully processed (tracked and handed to the sinks).
        frames_detected: of those, frames the detector ran on (the rest the schedule skipped: predicted).
        dropped: frames overwritten in the latest-frame slot before the detector took them (live policy).
        reconnects: times a live source resumed after a gap.
        invalid_detections: detector rows dropped for invalid boxes.
        latency_s: seconds from decode to tracked, for the last frame.
        last_pts: presentation time of the last processed frame, seconds.
        tracks: distinct tracks started so far (from the source's processor; a count, not a set, so a
            camera running for months keeps a constant size).
        latency: histogram of decode -> tracked latency (seconds) for the metrics endpoint and stats line.
    """

    source_id: str
    frame_count: Optional[int] = None
    frames_in: int = 0
    frames_out: int = 0
    frames_detected: int = 0
    dropped: int = 0
    reconnects: int = 0
    invalid_detections: int = 0
    latency_s: float = 0.0
    last_pts: float = 0.0
    ended: bool = False
    started_at: float = field(default_factory=time.monotonic)
    tracks: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to integer counters, e.g. ``add(frames_in=1)``."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def processed(self, pts: float, latency_s: float, tracks: int) -> None:
        """Record one processed frame; ``tracks``: tracks started so far."""
        with self._lock:
            self.frames_out += 1
            self.last_pts = pts
            self.latency_s = latency_s
            self.tracks = tracks
        self.latency.observe(latency_s)

    def snapshot(self) -> dict[str, object]:
        """A consistent JSON-safe copy of the counters."""
        with self._lock:
            elapsed = max(time.monotonic() - self.started_at, 1e-9)
            return {
                "source_id": self.source_id, "frame_count": self.frame_count, "frames_in": self.frames_in,
                "frames_out": self.frames_out, "dropped": self.dropped, "reconnects": self.reconnects,
                "invalid_detections": self.invalid_detections, "latency_s": round(self.latency_s, 4),
                "last_pts": round(self.last_pts, 3), "tracks": self.tracks, "ended": self.ended,
                "elapsed_s": round(elapsed, 3), "fps": round(self.frames_out / elapsed, 2),
                "frames_detected": self.frames_detected,
                "detector_duty": round(self.frames_detected / self.frames_out, 4) if self.frames_out else None,
            }

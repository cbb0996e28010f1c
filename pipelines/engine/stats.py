"""Per-source counters the runner keeps (``SourceStats``) and their frozen values (``StatsSnapshot``), which the
progress line, the summary, the metrics and the Ray engine read; the latency histogram behind them."""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Deque, Optional, Sequence

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)


class LatencyHistogram:
    """Latencies in seconds: cumulative bucket counts for Prometheus and the last values for percentiles.

    Thread-safe; ``observe`` is O(log buckets).
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS, recent: int = 1000) -> None:
        self.bounds = tuple(buckets)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._recent: Deque[float] = deque(maxlen=recent)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
            self._sum += seconds
            self._recent.append(seconds)

    def prometheus_buckets(self) -> tuple[list[tuple[str, float]], float]:
        """([(upper bound, cumulative count), ..., ("+Inf", total)], sum of observations)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts):
            running += count
            out.append((bound, float(running)))
        return out, total

    def quantile(self, q: float) -> Optional[float]:
        """The ``q`` quantile (0..1) of the most recent observations, None before the first."""
        with self._lock:
            values = sorted(self._recent)
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]


@dataclass(frozen=True)
class StatsSnapshot:
    """One source's counters at one instant (see ``SourceStats`` for their meaning); ``elapsed_s`` since the
    source's counters started, ``fps`` frames processed per second over that time. A plain value: it crosses
    threads and processes (Ray) as it is."""

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
    tracks: int = 0
    ended: bool = False
    stopped: bool = False
    resumed_after: int = 0
    waiting: bool = False
    skipped: bool = False
    elapsed_s: float = 0.0
    fps: float = 0.0

    @property
    def detector_duty(self) -> Optional[float]:
        """Share of the processed frames the detector ran on (None before the first frame)."""
        return round(self.frames_detected / self.frames_out, 4) if self.frames_out else None

    def doc(self) -> dict[str, object]:
        """The JSON-safe form (the keys of ``trackstream cluster list --json``): every field and the duty."""
        return {**asdict(self), "detector_duty": self.detector_duty}


# the counters ``SourceStats`` keeps under the same names; the snapshot adds the rates over its lifetime
_COUNTERS = tuple(f.name for f in fields(StatsSnapshot) if f.name not in ("elapsed_s", "fps"))


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
        ended / stopped: the stream ended; it ended because the run was stopped (a signal), not at its end.
        resumed_after: frames of this file an earlier run processed (a resume from ``--state``; the counters
            above are this run's, ``tracks`` the whole video's).
        waiting: a file of an archive that waits for its turn (``pipelines/engine/waves.py``): not opened yet; at
            the end of a stopped run, one that was never started.
        skipped: such a file could not be read when its turn came (removed since the start): left out, as the
            unreadable files of a folder or glob are at start.
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
    stopped: bool = False
    resumed_after: int = 0
    waiting: bool = False
    skipped: bool = False
    started_at: float = field(default_factory=time.monotonic)
    stopped_at: Optional[float] = None  # when the stream ended: its rates stop there, not at the run's end
    tracks: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # the last snapshot of a source that waits or has ended (nothing changes until a counter does): an archive's
    # thousands of files are read every half second by the progress bar
    _kept: Optional[StatsSnapshot] = field(default=None, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to integer counters, e.g. ``add(frames_in=1)``."""
        with self._lock:
            self._kept = None
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def processed(self, pts: float, latency_s: float, tracks: int) -> None:
        """Record one processed frame; ``tracks``: tracks started so far."""
        with self._lock:
            self._kept = None
            self.frames_out += 1
            self.last_pts = pts
            self.latency_s = latency_s
            self.tracks = tracks
        self.latency.observe(latency_s)

    def start(self) -> None:
        """A waiting file's turn came: its clock starts now."""
        with self._lock:
            self._kept = None
            self.waiting = False
            self.started_at = time.monotonic()

    def skip(self) -> None:
        """A waiting file could not be read when its turn came: it is left out (never started)."""
        with self._lock:
            self._kept = None
            self.skipped = True

    def stop_clock(self, stopped: bool = False) -> None:
        """The stream ended (for good): its elapsed time and fps stop now; another source may go on for hours.
        ``stopped``: it ended because the run was stopped (Ctrl-C, a signal), not at its end (the first call
        decides)."""
        with self._lock:
            self._kept = None
            if self.stopped_at is None:
                self.stopped_at = time.monotonic()
                self.stopped = stopped
            self.ended = True

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy of the counters (a frozen value); a file still waiting has spent no time."""
        with self._lock:
            if self._kept is not None:
                return self._kept
            until = self.started_at if self.waiting else self.stopped_at if self.stopped_at is not None \
                else time.monotonic()
            elapsed = max(until - self.started_at, 1e-9)
            values = {name: getattr(self, name) for name in _COUNTERS}
            values.update(latency_s=round(self.latency_s, 4), last_pts=round(self.last_pts, 3),
                          elapsed_s=round(elapsed, 3), fps=round(self.frames_out / elapsed, 2))
            snapshot = StatsSnapshot(**values)
            if self.waiting or self.stopped_at is not None:
                self._kept = snapshot
        return snapshot

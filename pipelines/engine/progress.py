"""A one-line progress display on stderr (frames, fps, ETA) and the end-of-run summary. No dependencies."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, TextIO, cast

from pipelines.processing.stats import SourceStats

if TYPE_CHECKING:
    from pipelines.processing.events import Counts


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


def progress_text(stats: Sequence[SourceStats], width: int = 24) -> str:
    """``[#####.....] 120/250 frames  8.1 fps  ETA 00:16`` (totals over all sources)."""
    snaps = [s.snapshot() for s in stats]
    done = sum(cast(int, s["frames_out"]) for s in snaps)
    fps = sum(cast(float, s["fps"]) for s in snaps)
    totals = [s["frame_count"] for s in snaps]
    if totals and all(isinstance(t, int) and t > 0 for t in totals):
        total = sum(int(t) for t in totals)  # type: ignore[call-overload]
        frac = min(1.0, done / total)
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        eta = _duration((total - done) / fps) if fps > 0 else "--:--"
        return f"[{bar}] {done}/{total} frames {fps:5.1f} fps  ETA {eta}"
    return f"{done} frames {fps:5.1f} fps"


class Progress:
    """Redraws one line on a terminal (carriage return), at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: Optional[bool] = None,
                 interval: float = 0.5) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._last = 0.0
        self._width = 0

    def update(self, stats: Sequence[SourceStats]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        text = progress_text(stats)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def count_lines(source_id: str, counts: "Counts") -> list[str]:
    """``gate: line entry 12 left_to_right, 9 right_to_left`` / ``gate: zone door 4 entries, 2 inside now``."""
    def only(classes: Sequence[str]) -> str:   # a zone or line that counts some classes only says which
        return f" [{', '.join(classes)}]" if classes else ""
    out = [f"{source_id}: line {name}{only(c.classes)} {c.left_to_right} left_to_right, "
           f"{c.right_to_left} right_to_left" for name, c in counts.lines.items()]
    for name, c in counts.zones.items():
        out.append(f"{source_id}: zone {name}{only(c.classes)} {c.entries} entries, {c.exits} exits, "
                   f"{c.occupancy} inside now")
        d = c.dwell
        if d is not None and d.visits:
            out.append(f"{source_id}: zone {name} dwell mean {d.mean_s:.1f} s, median {d.median_s:.1f} s, "
                       f"max {d.max_s:.1f} s over {d.visits} visits")
    return out


def summary_lines(stats: Sequence[SourceStats], outputs: Sequence[str], elapsed_s: float,
                  counts: Optional[Mapping[str, "Counts"]] = None, losses: Sequence[str] = ()) -> list[str]:
    """Human summary: per source frames, tracks, fps, drops, then its line and zone counts; the files
    written; then one line per output that lost data."""
    lines = []
    for s in stats:
        snap = s.snapshot()
        fps = int(snap["frames_out"]) / elapsed_s if elapsed_s > 0 else 0.0  # type: ignore[call-overload]
        extra = []
        if snap["dropped"]:
            extra.append(f"{snap['dropped']} dropped")
        if snap["invalid_detections"]:
            extra.append(f"{snap['invalid_detections']} invalid detections dropped")
        if snap["reconnects"]:
            extra.append(f"{snap['reconnects']} reconnects")
        tail = f" ({', '.join(extra)})" if extra else ""
        lines.append(f"{snap['source_id']}: {snap['frames_out']} frames, {snap['tracks']} tracks, "
                     f"{fps:.1f} fps in {elapsed_s:.1f} s{tail}")
        if counts and s.source_id in counts:
            lines.extend(count_lines(s.source_id, counts[s.source_id]))
    for path in outputs:
        lines.append(f"wrote {path}")
    lines.extend(f"lost: {loss}" for loss in losses)
    return lines

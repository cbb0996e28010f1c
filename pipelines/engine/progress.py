"""A one-line progress display on stderr (frames, fps, ETA) and the end-of-run summary. No dependencies."""

from __future__ import annotations

import sys
import time
from typing import Mapping, Optional, Sequence, TextIO

from pipelines.engine.stats import StatsSnapshot
from pipelines.frames import Counts


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


def progress_text(stats: Sequence[StatsSnapshot], width: int = 24) -> str:
    """``[#####.....] 120/250 frames  8.1 fps  ETA 00:16`` (totals over all sources), and while files of an archive
    wait for their turn, how many files are done and how many wait: ``  files 12/80 done, 64 waiting``."""
    return _frames_text(stats, width) + _files_text(stats)


def _files_text(stats: Sequence[StatsSnapshot]) -> str:
    waiting = sum(1 for s in stats if s.waiting)
    if not waiting:
        return ""
    done = sum(1 for s in stats if s.ended and not s.waiting)
    return f"  files {done}/{len(stats)} done, {waiting} waiting"


def _frames_text(stats: Sequence[StatsSnapshot], width: int) -> str:
    done = sum(s.frames_out for s in stats)
    running = [s for s in stats if not s.ended]
    fps = sum(s.fps for s in running or stats)  # the rate of what is left: sources that ended add nothing
    totals = [s.frame_count for s in stats]
    if totals and all(t is not None and t > 0 for t in totals):
        total = sum(t for t in totals if t is not None)
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

    def update(self, stats: Sequence[StatsSnapshot]) -> None:
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


def count_lines(source_id: str, counts: Counts) -> list[str]:
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
                       f"max {d.max_s:.1f} s over {d.visits} visit{'s' * (d.visits != 1)}")
    return out


def summary_lines(stats: Sequence[StatsSnapshot], outputs: Sequence[str], elapsed_s: float,
                  counts: Optional[Mapping[str, Counts]] = None, losses: Sequence[str] = ()) -> list[str]:
    """Human summary: per source frames, tracks, fps, drops, then its line and zone counts; one line naming the
    files a stopped run never started; the files written; then one line per output that lost data."""
    lines = []
    for s in stats:
        if s.waiting:   # never started: the run was stopped before its turn, or it was skipped (named elsewhere)
            continue
        seconds = s.elapsed_s or elapsed_s  # the source's own time: one that ended early is not slowed by the rest
        fps = s.frames_out / seconds if seconds > 0 else 0.0
        extra = []
        if s.dropped:
            extra.append(f"{s.dropped} dropped")
        if s.invalid_detections:
            extra.append(f"{s.invalid_detections} invalid detections dropped")
        if s.reconnects:
            extra.append(f"{s.reconnects} reconnects")
        if s.resumed_after:   # the frames are this run's, the tracks the whole video's: say which is which
            extra.append(f"resumed after {s.resumed_after} frames: {s.resumed_after + s.frames_out} in all, "
                         "tracks counted from the start")
        if s.stopped and s.frame_count and s.frames_out < s.frame_count:   # stopped early (Ctrl-C, a signal)
            extra.append(f"stopped after {s.frames_out} of the {s.frame_count} frames this run was to process")
        if s.frames_detected < s.frames_out:  # a detection schedule skipped frames: the duty and what it saved
            extra.append(f"detector on {s.frames_detected} ({100 * s.frames_detected / s.frames_out:.0f}%), "
                         f"{s.frames_out - s.frames_detected} frames predicted")
        tail = f" ({', '.join(extra)})" if extra else ""
        lines.append(f"{s.source_id}: {s.frames_out} frames, {s.tracks} tracks, "
                     f"{fps:.1f} fps in {seconds:.1f} s{tail}")
        if counts and s.source_id in counts:
            lines.extend(count_lines(s.source_id, counts[s.source_id]))
    unstarted = [s.source_id for s in stats if s.waiting and not s.skipped]
    if unstarted:
        more = f" and {len(unstarted) - 5} more" if len(unstarted) > 5 else ""
        lines.append(f"not started: {len(unstarted)} file{'s' * (len(unstarted) != 1)} (the run was stopped before "
                     f"their turn; nothing was written for them): {', '.join(unstarted[:5])}{more}")
    for path in outputs:
        lines.append(f"wrote {path}")
    lines.extend(f"lost: {loss}" for loss in losses)
    return lines

"""Dwell time per zone: how long each track stays inside, and the loitering threshold.

A visit starts when a track's entry into the zone is confirmed (``zone_entered``) and ends with its confirmed
exit (``zone_exited``; for a track that ended inside, at the last frame it was seen). Both are confirmed
after the same hysteresis (``events.min_frames_in_zone``), so the delay cancels out of the duration. Times
are seconds of video time (the frames' ``pts``), so a file processed faster than real time gets the same
dwell as a camera.

Memory is bounded: the tracks inside now, plus the last ``KEPT_VISITS`` finished visits for the median (the
count, mean and maximum cover every visit since the start).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping
from typing import Any, Optional

import numpy as np

from pipelines.frames import DwellSummary

__all__ = ["DwellClock", "KEPT_VISITS"]

KEPT_VISITS = 10_000


class DwellClock:
    """Visits of one zone. ``enter``/``leave`` follow its confirmed entries and exits; ``due`` says which
    tracks have just stayed longer than ``threshold`` seconds (once per visit)."""

    def __init__(self, threshold: Optional[float] = None) -> None:
        self.threshold = threshold
        self._since: dict[int, float] = {}      # track id -> pts of its confirmed entry
        self._reported: set[int] = set()        # tracks inside whose zone_dwell was sent this visit
        self._recent: deque[float] = deque(maxlen=KEPT_VISITS)
        self._visits, self._total, self._max = 0, 0.0, 0.0

    def enter(self, tid: int, pts: float) -> None:
        self._since[tid] = pts
        self._reported.discard(tid)

    def leave(self, tid: int, pts: Optional[float]) -> Optional[float]:
        """End ``tid``'s visit at ``pts``: its duration in seconds (None when its entry is unknown)."""
        since = self._since.pop(tid, None)
        self._reported.discard(tid)
        if since is None or pts is None:
            return None
        seconds = round(max(0.0, pts - since), 3)
        self._recent.append(seconds)
        self._visits += 1
        self._total += seconds
        self._max = max(self._max, seconds)
        return seconds

    def due(self, pts: float, seen: Collection[int]) -> list[tuple[int, float]]:
        """(track id, seconds inside) of tracks ``seen`` at ``pts`` that passed the threshold and were not
        reported this visit. A track not seen (lost) is not known to be inside: were it to end unseen, its
        visit ends at the last frame it was seen, so it is reported when seen again, if ever."""
        if self.threshold is None:
            return []
        out = [(tid, round(pts - since, 3)) for tid, since in self._since.items()
               if tid in seen and tid not in self._reported and pts - since >= self.threshold]
        self._reported.update(tid for tid, _ in out)
        return sorted(out)

    def inside(self, pts: Optional[float], last_seen: Optional[Mapping[int, float]] = None) -> dict[int, float]:
        """Track id -> seconds inside so far, for the tracks inside at ``pts``. A track not seen now (lost)
        counts until ``last_seen[id]``, the last frame it was seen: the visit it would have, were it to end
        unseen (``leave`` at that frame), so its seconds do not grow while nobody sees it and then shrink."""
        if pts is None:
            return {}
        until = last_seen or {}
        return {tid: round(max(0.0, min(pts, until.get(tid, pts)) - since), 3) for tid, since in self._since.items()}

    def summary(self, pts: Optional[float], last_seen: Optional[Mapping[int, float]] = None) -> DwellSummary:
        """The finished visits' figures and the tracks inside now (``inside``)."""
        if not self._visits:
            return DwellSummary(0, None, None, None, self.inside(pts, last_seen))
        return DwellSummary(self._visits, round(self._total / self._visits, 3),
                            round(float(np.median(np.fromiter(self._recent, float))), 3), round(self._max, 3),
                            self.inside(pts, last_seen))

    def state_dict(self) -> dict[str, Any]:
        return {"since": [[tid, t] for tid, t in self._since.items()], "reported": sorted(self._reported),
                "recent": list(self._recent), "visits": self._visits, "total": self._total, "max": self._max}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._since = {int(tid): float(t) for tid, t in state["since"]}
        self._reported = {int(tid) for tid in state["reported"]}
        self._recent = deque((float(s) for s in state["recent"]), maxlen=KEPT_VISITS)
        self._visits, self._total, self._max = int(state["visits"]), float(state["total"]), float(state["max"])

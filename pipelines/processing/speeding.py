"""``speed_exceeded``: a track faster than a zone's or line's ``speed_limit_kmh`` (needs a calibration).

- A zone reports each track once per visit, at the first frame it is confirmed inside the zone and faster
  than the limit (a track that leaves and comes back is checked again).
- A line reports a crossing made faster than the limit, right after its ``line_crossed``.

The speed is the track's ground speed from the tracker's Kalman state (``calibration.py``), so one jittery
box does not make a car speed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

from pipelines.frames import GroundMotion

__all__ = ["ZoneSpeedWatch", "too_fast"]


def too_fast(motion: Optional[GroundMotion], limit_kmh: Optional[float]) -> Optional[float]:
    """The track's speed in km/h when it is above ``limit_kmh``; None otherwise (or without a limit)."""
    if limit_kmh is None or motion is None or motion.speed_kmh <= limit_kmh:
        return None
    return round(motion.speed_kmh, 2)


class ZoneSpeedWatch:
    """Which tracks inside one zone were already reported this visit."""

    def __init__(self, limit_kmh: Optional[float]) -> None:
        self.limit_kmh = limit_kmh
        self._reported: set[int] = set()

    def check(self, members: Sequence[int], seen: Sequence[int],
              motion: Mapping[int, GroundMotion]) -> list[tuple[int, float]]:
        """(track id, km/h) of members seen this frame that are newly over the limit."""
        if self.limit_kmh is None:
            return []
        inside = set(members)
        self._reported &= inside          # a track that left is checked again on its next visit
        out = []
        for tid in seen:
            if tid in inside and tid not in self._reported:
                kmh = too_fast(motion.get(tid), self.limit_kmh)
                if kmh is not None:
                    self._reported.add(tid)
                    out.append((tid, kmh))
        return out

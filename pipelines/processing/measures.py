"""``TrackMeasures``: what the analytics measured about each track in one frame, for the frame records.

- ``zones``: for a track inside zones, the seconds it has been inside each (``dwell.py``);
- ``motion``: with a calibration (``calibration.py``), its ground point in metres, speed and heading.

The JSONL and Redis frame records add them to the track's row (``"zones": {"door": 12.4}``,
``"speed_mps"``, ``"speed_kmh"``, ``"heading_deg"``, ``"ground"``); the web view lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GroundMotion", "TrackMeasures"]


@dataclass(frozen=True)
class GroundMotion:
    """A track on the ground plane: ``ground`` (x, y) metres, ``speed_mps`` m/s, ``heading_deg`` the direction
    of motion in degrees clockwise from the ground's +y axis, in [0, 360) (None when standing still)."""

    ground: tuple[float, float]
    speed_mps: float
    heading_deg: float | None

    @property
    def speed_kmh(self) -> float:
        return self.speed_mps * 3.6

    def doc(self) -> dict[str, Any]:
        return {"ground": [round(self.ground[0], 3), round(self.ground[1], 3)],
                "speed_mps": round(self.speed_mps, 3), "speed_kmh": round(self.speed_kmh, 2),
                "heading_deg": None if self.heading_deg is None else round(self.heading_deg, 1)}


@dataclass(frozen=True)
class TrackMeasures:
    """Per-track measures of one frame, by track id (tracks without any are absent)."""

    zones: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    motion: Mapping[int, GroundMotion] = field(default_factory=dict)

    def row(self, track_id: int) -> dict[str, Any]:
        """The keys this adds to a track's frame record (none when nothing was measured)."""
        out: dict[str, Any] = {}
        zones = self.zones.get(track_id)
        if zones:
            out["zones"] = dict(zones)
        motion = self.motion.get(track_id)
        if motion is not None:
            out.update(motion.doc())
        return out

"""Zones and counting lines: typed config and the flicker-proof state machines behind zone/line events.

A track is reduced to one *anchor* point per frame (the bottom centre of its box by default, where a
person's feet or a car's wheels touch the ground; or the box centre). Coordinates are pixels of the
source frame.

Zones use hysteresis: a track's membership changes only after its anchor has been on the other side
of the zone boundary for ``min_frames_in_zone`` consecutive frames in which the track was seen, so a
box that flickers across the boundary for a frame produces no enter/exit pair.

Lines count a crossing when the anchor's side of the line changes and stays changed for
``min_frames_on_side`` frames, positions within ``line_dead_band`` pixels of the line count for
neither side, and the anchor's path between the two confirmed sides actually passes through the
segment (walking round the end of a line is no crossing). A track first seen *on* the line (within the dead
band, e.g. a car detected only as it reaches the line) crosses to the side it then settles on, when that
first point lies along the segment. Direction is relative to the line drawn from
its first point to its second: ``left_to_right`` (``sign`` +1) means the track moved from the
left-hand side to the right-hand side of someone standing on the first point looking at the second,
as seen on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from tracker.configutil import ConfigError

Point = tuple[float, float]


def _points(key: str, value: tuple[tuple[float, ...], ...], min_points: int,
            max_points: Optional[int] = None) -> tuple[Point, ...]:
    pts = []
    for i, p in enumerate(value):
        if len(p) != 2:
            raise ConfigError(f"{key}[{i}]", f"a point is [x, y], got {list(p)}")
        if not all(np.isfinite(p)):
            raise ConfigError(f"{key}[{i}]", f"coordinates must be finite numbers, got {list(p)}")
        pts.append((float(p[0]), float(p[1])))
    if len(pts) < min_points or (max_points is not None and len(pts) > max_points):
        want = f"exactly {min_points}" if max_points == min_points else f"at least {min_points}"
        raise ConfigError(key, f"needs {want} points, got {len(pts)}")
    return tuple(pts)


def _on_one_line(points: Sequence[Point]) -> bool:
    """Whether all ``points`` lie on one straight line (or are one point)."""
    a = points[0]
    b = next((p for p in points if p != a), None)
    return b is None or all((b[0] - a[0]) * (p[1] - a[1]) == (b[1] - a[1]) * (p[0] - a[0]) for p in points)


def _fractions(key: str, points: Sequence[Point]) -> None:
    """Refuse points that all lie within 0..1: fractions of the frame (normalised coordinates, as some tools
    write them), where pixels are meant; such a zone or line would be one pixel across and count nothing."""
    if all(0.0 <= c <= 1.0 for p in points for c in p):
        raise ConfigError(key, f"every point lies within 0..1 ({[list(p) for p in points]}): coordinates are "
                               "pixels of the frame (x from 0 to its width, y from 0 to its height), not fractions")


def _crossing_sides(polygon: Sequence[Point]) -> Optional[tuple[int, int]]:
    """The first two sides (by index ``i``: from point ``i`` to the next) of ``polygon`` that cross each other
    (each passes strictly through the other; sides that touch at a corner do not count); None when none do.

    Only sides whose x ranges overlap can cross: each side is compared, at once with numpy, with the sides
    that start (in x) within its own range, so a zone traced round a mask (thousands of points) is checked
    in milliseconds, not every pair in Python."""
    a = np.asarray(polygon, dtype=np.float64)
    b = np.roll(a, -1, axis=0)
    low, high = np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0])
    order = np.argsort(low, kind="stable")
    starts = low[order]
    first: Optional[tuple[int, int]] = None
    for k, i in enumerate(order.tolist()):
        others = order[k + 1:int(np.searchsorted(starts, high[i], side="right"))]
        if not len(others):
            continue
        c, d = a[others], b[others]
        crossing = (_orientation(a[i], b[i], c) * _orientation(a[i], b[i], d) < 0) & \
                   (_orientation(c, d, a[i]) * _orientation(c, d, b[i]) < 0)
        for j in others[crossing].tolist():
            pair = (min(i, j), max(i, j))
            first = pair if first is None else min(first, pair)
    return first


def _orientation(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64],
                 c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Twice the signed area of the triangles ``a``, ``b``, ``c`` (points (2,) or (N, 2); > 0: anticlockwise)."""
    return np.asarray((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
                      - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))


ClassRef = Union[str, int]
"""A class of the model by name (``car``) or id (``2``)."""


def _classes(value: tuple[ClassRef, ...]) -> tuple[ClassRef, ...]:
    for i, ref in enumerate(value):
        if isinstance(ref, bool) or not isinstance(ref, (str, int)) or ref == "" or \
                (isinstance(ref, int) and ref < 0):
            raise ConfigError(f"classes[{i}]", f"a class is a name or an id >= 0, got {ref!r}")
    if len(set(value)) != len(value):
        raise ConfigError("classes", f"names a class twice: {list(value)}")
    return tuple(value)


DEFAULT_MIN_PROBABILITY = 0.5  # predict_min_probability when not given


def _check_prediction(seconds: Optional[float], probability: Optional[float]) -> None:
    """A ``predict_min_probability`` (within its bounds, which ``check_bounds`` reports) needs the horizon it
    applies to: without ``predict_seconds`` no warning is made, and the setting would silently do nothing."""
    if seconds is None and probability is not None and isinstance(probability, (int, float)) \
            and 0.0 < probability <= 1.0:
        raise ConfigError("predict_min_probability", "needs predict_seconds (the warnings' horizon): without it "
                          "no warning is made")


@dataclass(frozen=True)
class ZoneConfig:
    """A named polygon (pixels of the source frame), e.g. ``{name: door, polygon: [[0,0],[99,0],[99,99]]}``.

    Attributes:
        classes: count only tracks of these classes (names or ids of the model); empty: every class.
        dwell_seconds: a ``zone_dwell`` event when a track has been inside this long (loitering); None: none.
        speed_limit_kmh: a ``speed_exceeded`` event when a track inside is faster (needs the source's
            ``calibration``); None: none.
        predict_seconds: warn up to this many seconds before a predicted entry (``zone_entry_predicted``,
            ``forecast.py``); None: no warnings.
        predict_min_probability: the least probability (0-1] of entering within ``predict_seconds`` for a
            warning, under the tracker's own motion model.
    """

    name: str
    polygon: tuple[tuple[float, ...], ...]
    classes: tuple[ClassRef, ...] = ()
    dwell_seconds: Optional[float] = field(default=None, metadata={"gt": 0.0})
    speed_limit_kmh: Optional[float] = field(default=None, metadata={"gt": 0.0})
    predict_seconds: Optional[float] = field(default=None, metadata={"gt": 0.0, "max": 60.0})
    predict_min_probability: Optional[float] = field(default=None, metadata={"gt": 0.0, "max": 1.0})

    @property
    def min_probability(self) -> float:
        """``predict_min_probability``, 0.5 when not given."""
        return DEFAULT_MIN_PROBABILITY if self.predict_min_probability is None else self.predict_min_probability

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("name", "must not be empty")
        _check_prediction(self.predict_seconds, self.predict_min_probability)
        polygon = _points("polygon", self.polygon, 3)
        if _on_one_line(polygon):   # no anchor can ever be inside: the zone would never count anything
            raise ConfigError("polygon", f"the points lie on one line, enclosing nothing: {[list(p) for p in polygon]}")
        _fractions("polygon", polygon)
        crossing = _crossing_sides(polygon)
        if crossing is not None:   # a bow tie: usually two corners given in the wrong order
            i, j = crossing
            n = len(polygon)
            raise ConfigError("polygon", f"its sides {list(polygon[i])}-{list(polygon[(i + 1) % n])} and "
                                         f"{list(polygon[j])}-{list(polygon[(j + 1) % n])} cross; list the "
                                         "corners in order round the zone")
        object.__setattr__(self, "polygon", polygon)
        object.__setattr__(self, "classes", _classes(self.classes))


@dataclass(frozen=True)
class LineConfig:
    """A named counting line from ``points[0]`` to ``points[1]`` (pixels); its direction names the sides.

    Attributes:
        classes: count only tracks of these classes (names or ids of the model); empty: every class.
        speed_limit_kmh: a ``speed_exceeded`` event when a track crosses faster (needs the source's
            ``calibration``); None: none.
        predict_seconds: warn up to this many seconds before a predicted crossing (``crossing_predicted``,
            ``forecast.py``); None: no warnings.
        predict_min_probability: the least probability (0-1] of crossing within ``predict_seconds`` for a
            warning, under the tracker's own motion model.
    """

    name: str
    points: tuple[tuple[float, ...], ...]
    classes: tuple[ClassRef, ...] = ()
    speed_limit_kmh: Optional[float] = field(default=None, metadata={"gt": 0.0})
    predict_seconds: Optional[float] = field(default=None, metadata={"gt": 0.0, "max": 60.0})
    predict_min_probability: Optional[float] = field(default=None, metadata={"gt": 0.0, "max": 1.0})

    @property
    def min_probability(self) -> float:
        """``predict_min_probability``, 0.5 when not given."""
        return DEFAULT_MIN_PROBABILITY if self.predict_min_probability is None else self.predict_min_probability

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("name", "must not be empty")
        _check_prediction(self.predict_seconds, self.predict_min_probability)
        object.__setattr__(self, "classes", _classes(self.classes))
        pts = _points("points", self.points, 2, 2)
        if pts[0] == pts[1]:
            raise ConfigError("points", "the two points must differ")
        _fractions("points", pts)
        object.__setattr__(self, "points", pts)


@dataclass(frozen=True)
class EventsConfig:
    """How zone and line events are derived from tracks.

    Attributes:
        min_frames_in_zone: consecutive frames (in which the track is seen) a track must be inside or
            outside a zone before ``zone_entered`` / ``zone_exited``; 1 reacts at once, 2+ ignores flicker.
        min_frames_on_side: consecutive frames a track must be on the other side of a line before the
            crossing counts.
        line_dead_band: pixels either side of a line that count for neither side.
        anchor: the track point tested against zones and lines: ``bottom_center`` or ``center`` of the box.
        count_by_class: also keep zone and line counts per class name (``Counts``' ``by_class``; published by
            the MQTT sink and shown in the web view).
    """

    min_frames_in_zone: int = field(default=2, metadata={"min": 1})
    min_frames_on_side: int = field(default=2, metadata={"min": 1})
    line_dead_band: float = field(default=2.0, metadata={"min": 0.0})
    anchor: Literal["bottom_center", "center"] = "bottom_center"
    count_by_class: bool = False


def anchor_points(xyxy: np.ndarray, anchor: str) -> np.ndarray:
    """(N, 2) anchor points of (N, 4) boxes: bottom centre or centre, pixels."""
    x = (xyxy[:, 0] + xyxy[:, 2]) / 2.0
    y = xyxy[:, 3] if anchor == "bottom_center" else (xyxy[:, 1] + xyxy[:, 3]) / 2.0
    return np.stack([x, y], axis=1).astype(np.float64)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean (N,) of which (N, 2) points lie inside ``polygon`` (M, 2) (even-odd rule)."""
    inside = np.zeros(len(points), dtype=bool)
    px, py = points[:, 0], points[:, 1]
    xs, ys = polygon[:, 0], polygon[:, 1]
    for i in range(len(polygon)):
        x1, y1, x2, y2 = xs[i - 1], ys[i - 1], xs[i], ys[i]
        if y1 == y2:
            continue
        crosses = (y1 > py) != (y2 > py)
        x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
    return inside


class ZoneMembership:
    """Hysteresis on one zone's membership for many tracks.

    ``update`` takes the ids and anchors of the tracks seen this frame and returns the ids whose
    confirmed membership changed: (entered, exited).
    """

    def __init__(self, zone: ZoneConfig, min_frames: int) -> None:
        self.name = zone.name
        self._polygon = np.asarray(zone.polygon, dtype=np.float64)
        self._min = min_frames
        self._inside: dict[int, bool] = {}
        self._streak: dict[int, int] = {}
        self.entries = 0  # confirmed entries since the start (restored with the state)
        self.exits = 0

    def update(self, ids: list[int], anchors: np.ndarray) -> tuple[list[int], list[int]]:
        raw = points_in_polygon(anchors, self._polygon) if len(ids) else np.zeros(0, bool)
        entered: list[int] = []
        exited: list[int] = []
        for tid, now_in in zip(ids, raw.tolist()):
            confirmed = self._inside.get(tid, False)
            if now_in == confirmed:
                self._streak[tid] = 0
                continue
            streak = self._streak.get(tid, 0) + 1
            if streak < self._min:
                self._streak[tid] = streak
                continue
            self._inside[tid], self._streak[tid] = now_in, 0
            (entered if now_in else exited).append(tid)
        self.entries += len(entered)
        self.exits += len(exited)
        return entered, exited

    def forget(self, tid: int) -> bool:
        """Drop an ended track; True when it was inside (so a final exit is due)."""
        self._streak.pop(tid, None)
        inside = self._inside.pop(tid, False)
        if inside:
            self.exits += 1
        return inside

    def members(self) -> list[int]:
        """Ids of the tracks confirmed inside the zone now."""
        return [tid for tid, inside in self._inside.items() if inside]

    @property
    def occupancy(self) -> int:
        """Tracks confirmed inside the zone now."""
        return sum(1 for inside in self._inside.values() if inside)

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe membership, streaks and totals (``load_state_dict`` restores them)."""
        return {"inside": [[tid, inside] for tid, inside in self._inside.items()],
                "streak": [[tid, n] for tid, n in self._streak.items()],
                "entries": self.entries, "exits": self.exits}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._inside = {int(t): bool(v) for t, v in state["inside"]}
        self._streak = {int(t): int(n) for t, n in state["streak"]}
        self.entries, self.exits = int(state["entries"]), int(state["exits"])


@dataclass
class _LineState:
    side: int = 0                      # confirmed side: -1 left, +1 right, 0 not yet known
    last_on_side: Optional[np.ndarray] = None   # last anchor seen on the confirmed side
    streak: int = 0
    on_line: Optional[np.ndarray] = None   # first anchor, when the track was first seen on the line itself

    def doc(self) -> list[Any]:
        def point(p: Optional[np.ndarray]) -> Optional[list[float]]:
            return None if p is None else [float(p[0]), float(p[1])]
        return [self.side, point(self.last_on_side), self.streak, point(self.on_line)]

    @classmethod
    def from_doc(cls, doc: Sequence[Any]) -> "_LineState":
        def point(p: Any) -> Optional[np.ndarray]:
            return None if p is None else np.asarray(p, dtype=np.float64).reshape(2)
        return cls(int(doc[0]), point(doc[1]), int(doc[2]), point(doc[3]))


class LineCounter:
    """Counts crossings of one line segment by many tracks; see the module docstring for the rules."""

    def __init__(self, line: LineConfig, min_frames: int, dead_band: float) -> None:
        self.name = line.name
        self._a = np.asarray(line.points[0], dtype=np.float64)
        self._b = np.asarray(line.points[1], dtype=np.float64)
        d = self._b - self._a
        self._len = float(np.hypot(*d))
        self._dir = d / self._len
        self._min = min_frames
        self._band = dead_band
        self._state: dict[int, _LineState] = {}
        self.left_to_right = 0  # confirmed crossings since the start (restored with the state)
        self.right_to_left = 0

    def _signed(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (pixels) of points (N, 2): > 0 on the right-hand side on screen (y down)."""
        rel = p - self._a
        signed: np.ndarray = self._dir[0] * rel[..., 1] - self._dir[1] * rel[..., 0]
        return signed

    def _passes_segment(self, p: np.ndarray, q: np.ndarray) -> bool:
        dp, dq = float(self._signed(p)), float(self._signed(q))
        if dp == dq:
            return False
        hit = p + (q - p) * (dp / (dp - dq))
        t = float(np.dot(hit - self._a, self._dir))
        return -self._band <= t <= self._len + self._band

    def update(self, ids: list[int], anchors: np.ndarray) -> list[tuple[int, int, list[float]]]:
        """Crossings this frame as (track id, sign, anchor [x, y]); sign +1 = left_to_right."""
        if not ids:
            return []
        dist = self._signed(anchors)
        sides = np.where(dist > self._band, 1, np.where(dist < -self._band, -1, 0)).tolist()
        out = []
        for tid, side, point in zip(ids, sides, anchors):
            st = self._state.get(tid)
            if st is None:
                st = self._state[tid] = _LineState()
                if side == 0:  # first seen on the line: the side it settles on is where it crossed to
                    st.on_line = point
            if side == 0:
                continue
            if st.side == 0 and st.on_line is not None:
                st.streak += 1
                if st.streak < self._min:
                    continue
                if self._within_segment(st.on_line):
                    out.append(self._crossing(tid, side, point))
                st.side, st.last_on_side, st.streak, st.on_line = side, point, 0, None
                continue
            if st.side in (0, side):
                st.side, st.last_on_side, st.streak = side, point, 0
                continue
            st.streak += 1
            if st.streak < self._min:
                continue
            if st.last_on_side is not None and self._passes_segment(st.last_on_side, point):
                out.append(self._crossing(tid, side, point))
            st.side, st.last_on_side, st.streak = side, point, 0
        return out

    def _within_segment(self, p: np.ndarray) -> bool:
        t = float(np.dot(p - self._a, self._dir))
        return -self._band <= t <= self._len + self._band

    def _crossing(self, tid: int, side: int, point: np.ndarray) -> tuple[int, int, list[float]]:
        if side > 0:
            self.left_to_right += 1
        else:
            self.right_to_left += 1
        return tid, side, [round(float(point[0]), 2), round(float(point[1]), 2)]

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe per-track sides and the totals (``load_state_dict`` restores them)."""
        return {"tracks": [[tid, st.doc()] for tid, st in self._state.items()],
                "left_to_right": self.left_to_right, "right_to_left": self.right_to_left}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._state = {int(tid): _LineState.from_doc(doc) for tid, doc in state["tracks"]}
        self.left_to_right, self.right_to_left = int(state["left_to_right"]), int(state["right_to_left"])

    def forget(self, tid: int) -> None:
        self._state.pop(tid, None)


def direction_name(sign: int) -> str:
    """``left_to_right`` for +1, ``right_to_left`` for -1 (relative to the line's direction)."""
    return "left_to_right" if sign > 0 else "right_to_left"


def _clip_polygon(points: Sequence[Sequence[float]], width: float, height: float) -> list[Point]:
    """``points`` clipped to the picture ``[0, width] x [0, height]`` (Sutherland-Hodgman)."""
    edges = ((0, 0.0, 1.0), (0, width, -1.0), (1, 0.0, 1.0), (1, height, -1.0))  # axis, bound, inside side
    out: list[Point] = [(float(p[0]), float(p[1])) for p in points]
    for axis, bound, side in edges:
        given, out = out, []
        for i, cur in enumerate(given):
            prev = given[i - 1]
            cur_in, prev_in = (cur[axis] - bound) * side >= 0, (prev[axis] - bound) * side >= 0
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
        if not out:
            break
    return out


def _area(points: Sequence[Point]) -> float:
    return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(points, [*points[1:], *points[:1]]))) / 2.0


def _segment_inside(a: Sequence[float], b: Sequence[float], width: float, height: float) -> bool:
    """Whether the segment ``a``-``b`` reaches into the picture (Liang-Barsky)."""
    lo, hi = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0]), (dx, width - a[0]), (-dy, a[1]), (dy, height - a[1])):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            lo = max(lo, q / p)
        else:
            hi = min(hi, q / p)
    return lo <= hi


def outside_picture(zones: Sequence[ZoneConfig], lines: Sequence[LineConfig],
                    size: tuple[int, int]) -> list[str]:
    """The zones and lines that are not wholly inside a ``(width, height)`` picture, one phrase each
    (``zone 'door' wholly``, ``line 'gate' partly``): a point beyond the picture can never hold an anchor,
    so a zone there never fills and a line there is never crossed, usually a config written for another
    camera or resolution."""
    width, height = float(size[0]), float(size[1])

    def inside(p: Sequence[float]) -> bool:
        return 0.0 <= p[0] <= width and 0.0 <= p[1] <= height

    found: list[str] = []
    for zone in zones:
        if not all(inside(p) for p in zone.polygon):
            clipped = _clip_polygon(zone.polygon, width, height)
            found.append(f"zone {zone.name!r} {'partly' if len(clipped) >= 3 and _area(clipped) > 0 else 'wholly'}")
    for line in lines:
        a, b = line.points[0], line.points[1]
        if not (inside(a) and inside(b)):
            found.append(f"line {line.name!r} {'partly' if _segment_inside(a, b, width, height) else 'wholly'}")
    return found

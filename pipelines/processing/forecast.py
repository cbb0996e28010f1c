"""Warnings before a predicted crossing: ``crossing_predicted`` / ``zone_entry_predicted`` and their
cancellations, from each track's Kalman state (constant velocity).

For a track seen this frame, its anchor ``p`` (the point lines and zones test, ``events.anchor``) moves at
``v`` px/s (the Kalman velocity of the box carried to the anchor). For a line with unit normal ``n`` and
signed distance ``d = n . (p - a)`` (> 0: right-hand side), the mean path reaches the line after
``t* = -d / (n . v)`` seconds. A *prediction* is made when, within the line's ``predict_seconds`` horizon H:

- ``0 < t* <= H``, the anchor is off the line (outside the dead band) and the crossing point ``p + t* v``
  lies on the segment (within the dead band of its ends);
- the **probability** is at least ``predict_min_probability``. It is the probability, under the tracker's own
  Gaussian prediction H seconds ahead (``Tracker.forecast``: the state's covariance propagated with the
  process noise), that the anchor is on the other side of the line at H: ``Phi(-s d_H / sigma_H)`` with ``s``
  the side now, ``d_H`` the predicted signed distance and ``sigma_H^2 = n' Sigma_H n`` the predicted anchor
  covariance projected on the normal. It is the model's belief, not a calibrated frequency:
  ``trackstream eval --predict-horizon`` measures how often it comes true.

One prediction per track, line and direction stands until the track crosses (``line_crossed`` in that
direction fulfils it; no further event) or it is cancelled (``crossing_prediction_cancelled``) with a
``reason``: ``unlikely`` (the probability fell below half of ``predict_min_probability``: hysteresis, so a
track hovering at the threshold does not flicker; a track that stops or turns away lands here),
``misses_line`` (the mean path now passes beside the segment, or the track reached the other side without a
counted crossing); each of these on ``min_frames + 1`` detected frames in a row (the frames a crossing takes to
be confirmed, plus one), so a path that misses for a frame or two and comes back keeps its warning;
``left_picture`` (the track is not seen and its predicted anchor is outside the picture: it walked out of
view, so it crosses nothing here; ``left``), or ``track_ended``.

Hysteresis the other way: once a track's prediction for a line and direction (a zone) has been cancelled as
``unlikely`` or ``misses_line``, a new one for the same track and line and direction (zone) needs the mean path
to reach it within ``REWARN_HORIZON`` (half) of the horizon, until that track crosses (enters) or ends. A walker
moving along a zone's edge, whose mean path keeps turning towards the zone and away, is then announced once and
cancelled once, not every time the path turns; one who really heads for the line again is warned again as they
near it.

Zones work alike for tracks not confirmed inside: the crossing is the first zone edge the mean path enters
through within the horizon (``zone_entry_predicted``, fulfilled by ``zone_entered``, cancelled by
``zone_entry_prediction_cancelled``); the probability is the one above for that edge's line.

While it stands, a prediction is *pending* (``pending(pts)``: what the web view lists and MQTT counts): its
expected crossing time and probability follow the mean path of each detected frame. ``state_dict`` /
``load_state_dict`` keep the pending ones in a ``--state`` snapshot, so a resumed run neither announces them
again nor forgets to cancel them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, TypeVar

import numpy as np

from pipelines.processing.zones import LineConfig, ZoneConfig, points_in_polygon

__all__ = ["REWARN_HORIZON", "AnchorForecast", "LineForecaster", "Pending", "Predicted", "ZoneForecaster",
           "anchor_forecast"]

_SQRT2 = math.sqrt(2.0)
REWARN_HORIZON = 0.5
"""After a cancel (``unlikely``, ``misses_line``), a new warning for that track and line and direction (zone)
needs the crossing within this share of ``predict_seconds``."""


class _Forecasting(Protocol):
    def forecast(self, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class AnchorForecast:
    """The tracks' anchors now and their spread ahead.

    ``track_id`` int64 (M,); ``point`` (M, 2) and ``velocity`` (M, 2) px, px/s; ``spread[h]`` (M, 2, 2) the
    anchor's covariance (px^2) ``h`` seconds ahead, for each horizon asked for.
    """

    track_id: np.ndarray
    point: np.ndarray
    velocity: np.ndarray
    spread: dict[float, np.ndarray]

    def rows(self, ids: Sequence[int]) -> dict[int, int]:
        """Track id -> row, for the ``ids`` this forecast has."""
        index = {int(t): i for i, t in enumerate(self.track_id.tolist())}
        return {tid: index[tid] for tid in ids if tid in index}


def anchor_forecast(tracker: _Forecasting, horizons: Sequence[float], anchor: str) -> AnchorForecast:
    """The confirmed tracks' anchors (``bottom_center`` or ``center``) from ``tracker.forecast``."""
    k = 0.5 if anchor == "bottom_center" else 0.0   # anchor = (cx, cy + k h)
    jac = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, k]])
    ids, mean, _ = tracker.forecast(0.0)
    spread = {}
    for h in sorted(set(horizons)):
        _, _, cov = tracker.forecast(h)
        spread[h] = jac @ cov[:, :4, :4] @ jac.T
    return AnchorForecast(ids, mean[:, :4] @ jac.T, mean[:, 4:8] @ jac.T, spread)


@dataclass(frozen=True)
class Predicted:
    """A prediction made this frame: ``seconds`` to the crossing, ``probability``, ``at`` the crossing point."""

    track: int
    sign: int
    seconds: float
    probability: float
    at: tuple[float, float]

    def doc(self) -> dict[str, Any]:
        return {"seconds_to_cross": round(self.seconds, 3), "probability": round(self.probability, 3),
                "predicted_point": [round(self.at[0], 2), round(self.at[1], 2)]}


@dataclass(frozen=True)
class Pending:
    """A standing prediction: ``track`` will cross in ``sign``'s direction (zones: 1) in ``seconds`` (from the
    frame asked about; 0 when overdue) with ``probability``."""

    track: int
    sign: int
    seconds: float
    probability: float


@dataclass
class _Standing:
    """What a forecaster keeps of one standing prediction: ``eta`` the expected crossing time (s, stream clock),
    ``far`` the frames seen on the far side (lines), as of the last detected frame; ``seen`` the track's last
    sighting: its time, anchor and anchor velocity (``(t, x, y, vx, vy)``; None in snapshots of earlier
    releases until the track is seen again); ``failing`` the detected frames in a row it has failed on."""

    eta: float
    probability: float
    far: int = 0
    seen: Optional[tuple[float, float, float, float, float]] = None
    failing: int = 0          # detected frames in a row on which the prediction failed (cancelled at patience)

    def follow(self, now: float, hit: "_Hit") -> None:
        """The mean path of this frame, when it still heads for the crossing, updates the expectation."""
        if math.isfinite(hit.seconds) and hit.seconds > 0:
            self.eta, self.probability = now + hit.seconds, hit.probability

    def saw(self, now: float, point: np.ndarray, velocity: np.ndarray) -> None:
        self.seen = (now, float(point[0]), float(point[1]), float(velocity[0]), float(velocity[1]))

    def out_of(self, now: float, size: tuple[int, int]) -> bool:
        """Whether the anchor, carried on at its last velocity since it was last seen, is outside the picture."""
        if self.seen is None:
            return False
        t, x, y, vx, vy = self.seen
        x, y = x + vx * (now - t), y + vy * (now - t)
        return not (0.0 <= x <= size[0] and 0.0 <= y <= size[1])

    def doc(self) -> list[float]:
        return [self.eta, self.probability, self.far, *(self.seen or ())]

    @classmethod
    def from_doc(cls, doc: Any) -> "_Standing":
        eta, probability, far, *seen = doc
        last = (float(seen[0]), float(seen[1]), float(seen[2]), float(seen[3]), float(seen[4])) \
            if len(seen) == 5 else None
        return cls(float(eta), float(probability), int(far), last)


_Key = TypeVar("_Key", int, tuple[int, int])


def _withdraw_left(active: dict[_Key, _Standing], seen: Sequence[int], now: float, size: tuple[int, int],
                   track: Callable[[_Key], int]) -> list[_Key]:
    """The keys of ``active`` whose track (``track(key)``) is not ``seen`` and whose anchor, carried on at its last
    velocity, has left the ``size`` picture; removed from ``active``, in order."""
    here = set(seen)
    gone = sorted(key for key, standing in active.items() if track(key) not in here and standing.out_of(now, size))
    for key in gone:
        del active[key]
    return gone


def _pending(items: Mapping[tuple[int, int], _Standing], pts: Optional[float]) -> list[Pending]:
    now = 0.0 if pts is None else pts
    return [Pending(tid, sign, round(max(0.0, s.eta - now), 3), round(s.probability, 3))
            for (tid, sign), s in sorted(items.items())]


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


@dataclass(frozen=True)
class _Hit:
    sign: int
    seconds: float
    probability: float
    at: tuple[float, float]
    on_segment: bool


def _segment_hit(a: np.ndarray, b: np.ndarray, p: np.ndarray, v: np.ndarray, cov: np.ndarray, horizon: float,
                 band: float) -> Optional[_Hit]:
    """The mean path ``p + t v`` against segment a-b: None when ``p`` is within ``band`` of the line."""
    d = b - a
    length = float(np.hypot(*d))
    u = d / length
    n = np.array([-u[1], u[0]])              # n . (p - a) > 0 on the right-hand side on screen (y down)
    dist = float(n @ (p - a))
    if abs(dist) <= band:
        return None
    side = 1 if dist > 0 else -1
    speed = float(n @ v)
    sigma = math.sqrt(max(float(n @ cov @ n), 1e-9))
    prob = _phi(-side * (dist + speed * horizon) / sigma)
    if side * speed >= 0:                    # not moving towards the line
        return _Hit(-side, math.inf, prob, (float(p[0]), float(p[1])), False)
    t = -dist / speed
    at = p + t * v
    along = float(u @ (at - a))
    return _Hit(-side, t, prob, (float(at[0]), float(at[1])), -band <= along <= length + band)


class LineForecaster:
    """Predictions of one line's crossings for many tracks (module docstring). ``update`` returns the new
    predictions and the cancellations ``(track, sign, reason)`` of this frame."""

    def __init__(self, line: LineConfig, dead_band: float, min_frames: int) -> None:
        self.name = line.name
        self.horizon = float(line.predict_seconds or 0.0)
        self.min_probability = line.min_probability
        self._a = np.asarray(line.points[0], np.float64)
        self._b = np.asarray(line.points[1], np.float64)
        self._band = dead_band
        self._patience = min_frames + 1
        self._active: dict[tuple[int, int], _Standing] = {}    # (track, sign) -> the standing prediction
        self._retracted: set[tuple[int, int]] = set()           # (track, sign) cancelled: REWARN_HORIZON

    def update(self, ids: Sequence[int], forecast: AnchorForecast, now: float = 0.0
               ) -> tuple[list[Predicted], list[tuple[int, int, str]]]:
        """The predictions made and cancelled at this detected frame (``now``: its time, s)."""
        made: list[Predicted] = []
        cancelled: list[tuple[int, int, str]] = []
        cov = forecast.spread[self.horizon]
        for tid, row in forecast.rows(ids).items():
            p, v = forecast.point[row], forecast.velocity[row]
            hit = _segment_hit(self._a, self._b, p, v, cov[row], self.horizon, self._band)
            for (track, sign), standing in list(self._active.items()):
                if track != tid:
                    continue
                standing.saw(now, p, v)
                reason = self._verdict(sign, hit, standing.far)
                if reason == "far":
                    standing.far += 1
                    standing.failing = 0
                elif reason:
                    # on the far side the far frames already waited out the patience: cancelled at once
                    far_side = hit is not None and hit.sign != sign
                    standing.failing = self._patience if far_side else standing.failing + 1
                    if standing.failing >= self._patience:
                        del self._active[(track, sign)]
                        self._retracted.add((track, sign))
                        cancelled.append((track, sign, reason))
                else:
                    standing.failing = 0               # kept: failures count only in a row
                    if hit is not None:
                        standing.follow(now, hit)
            if hit is None or (tid, hit.sign) in self._active or not hit.on_segment:
                continue
            within = self.horizon * (REWARN_HORIZON if (tid, hit.sign) in self._retracted else 1.0)
            if hit.seconds <= within and hit.probability >= self.min_probability:
                self._active[(tid, hit.sign)] = _Standing(now + hit.seconds, hit.probability)
                self._active[(tid, hit.sign)].saw(now, p, v)
                made.append(Predicted(tid, hit.sign, hit.seconds, hit.probability, hit.at))
        return made, cancelled

    def pending(self, pts: Optional[float]) -> list[Pending]:
        """The standing predictions, seconds counted from ``pts`` (by track, then direction)."""
        return _pending(self._active, pts)

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe standing predictions (``load_state_dict`` restores them)."""
        return {"standing": [[tid, sign, *s.doc()] for (tid, sign), s in sorted(self._active.items())],
                "failing": [[tid, sign, s.failing] for (tid, sign), s in sorted(self._active.items()) if s.failing],
                "retracted": [list(key) for key in sorted(self._retracted)]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._active = {(int(row[0]), int(row[1])): _Standing.from_doc(row[2:]) for row in state["standing"]}
        for tid, sign, failing in state.get("failing", []):
            self._active[(int(tid), int(sign))].failing = int(failing)
        self._retracted = {(int(tid), int(sign)) for tid, sign in state.get("retracted", [])}

    def _verdict(self, sign: int, hit: Optional[_Hit], far: int) -> str:
        """'' keep, 'far' keep (on the far side, waiting for the counted crossing), else a cancel reason."""
        if hit is None:
            return ""                                  # on the line: the crossing is being decided
        if hit.sign != sign:                           # on the far side already
            return "misses_line" if far + 1 >= self._patience else "far"
        if hit.probability < self.min_probability / 2:
            return "unlikely"
        return "" if hit.on_segment else "misses_line"

    def crossed(self, tid: int, sign: int) -> None:
        """The track crossed in ``sign``'s direction: its prediction, if any, came true."""
        self._active.pop((tid, sign), None)
        self._retracted.discard((tid, sign))

    def left(self, seen: Sequence[int], now: float, size: tuple[int, int]) -> list[tuple[int, int, str]]:
        """The standing predictions of tracks not ``seen`` this frame whose anchor, carried on at its last
        velocity, has left the ``size`` (width, height) picture, cancelled (``left_picture``)."""
        return [(tid, sign, "left_picture")
                for tid, sign in _withdraw_left(self._active, seen, now, size, lambda key: key[0])]

    def forget(self, tid: int) -> list[tuple[int, int, str]]:
        """An ended track: its standing predictions are cancelled (``track_ended``)."""
        gone = sorted(k for k in self._active if k[0] == tid)
        for key in gone:
            del self._active[key]
        self._retracted -= {(tid, -1), (tid, 1)}
        return [(tid, sign, "track_ended") for _, sign in gone]


class ZoneForecaster:
    """Predicted entries into one zone for tracks not confirmed inside (module docstring)."""

    def __init__(self, zone: ZoneConfig, dead_band: float, min_frames: int) -> None:
        self.name = zone.name
        self.horizon = float(zone.predict_seconds or 0.0)
        self.min_probability = zone.min_probability
        self._polygon = np.asarray(zone.polygon, np.float64)
        self._edges = [(self._polygon[i - 1], self._polygon[i]) for i in range(len(self._polygon))]
        self._band = dead_band
        self._patience = min_frames + 1
        self._active: dict[int, _Standing] = {}    # track -> its standing prediction
        self._retracted: set[int] = set()           # tracks whose prediction was cancelled: REWARN_HORIZON

    def _entry(self, p: np.ndarray, v: np.ndarray, cov: np.ndarray) -> Optional[_Hit]:
        """The first edge the mean path enters the zone through (any time ahead), or None."""
        best: Optional[_Hit] = None
        for a, b in self._edges:
            hit = _segment_hit(a, b, p, v, cov, self.horizon, 0.0)
            if hit is None or not hit.on_segment or not math.isfinite(hit.seconds):
                continue
            after = np.asarray(hit.at) + v * 1e-3 / max(float(np.hypot(*v)), 1e-9)
            if points_in_polygon(after[None], self._polygon)[0] and (best is None or hit.seconds < best.seconds):
                best = hit
        return best

    def update(self, ids: Sequence[int], members: Sequence[int], forecast: AnchorForecast, now: float = 0.0
               ) -> tuple[list[Predicted], list[tuple[int, int, str]]]:
        """The predicted entries made and cancelled at this detected frame (``now``: its time, s); ``members``:
        the tracks confirmed inside."""
        made: list[Predicted] = []
        cancelled: list[tuple[int, int, str]] = []
        inside = set(members)
        cov = forecast.spread[self.horizon]
        for tid, row in forecast.rows(ids).items():
            if tid in inside:
                continue
            p, v = forecast.point[row], forecast.velocity[row]
            standing = self._active.get(tid)
            if standing is not None:
                standing.saw(now, p, v)
            if points_in_polygon(p[None], self._polygon)[0]:
                continue                               # inside, not yet confirmed: the entry is being decided
            hit = self._entry(p, v, cov[row])
            if standing is not None:
                reason = "misses_line" if hit is None else \
                    "unlikely" if hit.probability < self.min_probability / 2 else ""
                standing.failing = standing.failing + 1 if reason else 0
                if standing.failing >= self._patience:
                    del self._active[tid]
                    self._retracted.add(tid)
                    cancelled.append((tid, 1, reason))
                elif hit is not None and not reason:
                    standing.follow(now, hit)
            elif hit is not None and hit.probability >= self.min_probability and \
                    hit.seconds <= self.horizon * (REWARN_HORIZON if tid in self._retracted else 1.0):
                self._active[tid] = _Standing(now + hit.seconds, hit.probability)
                self._active[tid].saw(now, p, v)
                made.append(Predicted(tid, 1, hit.seconds, hit.probability, hit.at))
        return made, cancelled

    def entered(self, tid: int) -> None:
        self._active.pop(tid, None)
        self._retracted.discard(tid)

    def left(self, seen: Sequence[int], now: float, size: tuple[int, int]) -> list[tuple[int, int, str]]:
        """As ``LineForecaster.left``: predicted entries of unseen tracks that left the picture, cancelled."""
        return [(tid, 1, "left_picture") for tid in _withdraw_left(self._active, seen, now, size, lambda tid: tid)]

    def forget(self, tid: int) -> list[tuple[int, int, str]]:
        self._retracted.discard(tid)
        if self._active.pop(tid, None) is not None:
            return [(tid, 1, "track_ended")]
        return []

    def pending(self, pts: Optional[float]) -> list[Pending]:
        """The standing predicted entries, seconds counted from ``pts`` (by track)."""
        return _pending({(tid, 1): s for tid, s in self._active.items()}, pts)

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe standing predictions (``load_state_dict`` restores them)."""
        return {"standing": [[tid, *s.doc()] for tid, s in sorted(self._active.items())],
                "failing": [[tid, s.failing] for tid, s in sorted(self._active.items()) if s.failing],
                "retracted": sorted(self._retracted)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._active = {int(row[0]): _Standing.from_doc(row[1:]) for row in state["standing"]}
        for tid, failing in state.get("failing", []):
            self._active[int(tid)].failing = int(failing)
        self._retracted = {int(tid) for tid in state.get("retracted", [])}

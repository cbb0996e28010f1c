"""Ground-plane calibration of one source: image pixels -> metres, and tracks' speed and heading in real units.

Two ways to calibrate (``calibration:`` of a source, see ``docs/analytics.md``):

- ``image_points`` + ``ground_points``: four points of the image and where they lie on the ground, in metres
  (e.g. the corners of a parking bay or lane markings of known spacing, or surveyed coordinates). The
  homography through them (solved in float64 as OpenCV's ``getPerspectiveTransform`` does in float32) is
  exact for points on the ground plane whatever the camera's angle.
- ``metres_per_pixel``: one scale for the whole image, for a camera looking straight down. The ground's +y
  axis then points up the image.

A track's ground point is its anchor (``events.anchor``, the bottom centre of the tracker's Kalman-filtered
box by default: where wheels and feet touch the ground). Its speed comes from a constant-velocity Kalman
filter on the ground plane (``ground_filter.py``), fed with those ground points: not differences of raw
boxes, so detector jitter does not show as speed, and not the image filter's velocity, which lags under
perspective (a car at constant speed slows down on screen as it drives away). Heading is the direction of
that velocity in degrees clockwise from the ground's +y axis (set your ground points so +y is north and it
is a compass bearing); tracks slower than ``still_below_mps`` have none. A track has a speed from its
``SETTLE_FRAMES``-th frame on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import numpy.typing as npt

from pipelines.processing.ground_filter import GroundFilter
from pipelines.frames import GroundMotion
from tracker.configutil import ConfigError
from tracker.types import Tracks

__all__ = ["CalibrationConfig", "GroundPlane", "SETTLE_FRAMES", "cut_by_edge", "points_outside"]

SETTLE_FRAMES = 5
"""A track's speed is reported from its 5th ground point on: before, the filter has not learnt it (a new
track's first speeds would be guesses, and a speed limit would fire on them)."""

Array = npt.NDArray[np.float64]

MAX_COORDINATE = 1e8
"""Largest coordinate of a calibration point (pixels or metres): ten times a UTM northing, far beyond a picture."""


def _four(key: str, value: tuple[tuple[float, ...], ...]) -> Array:
    pts = np.asarray([list(p) for p in value], dtype=np.float64) if value else np.zeros((0, 2))
    if pts.ndim != 2 or pts.shape != (4, 2):
        raise ConfigError(key, f"needs exactly 4 points [x, y], got {[list(p) for p in value]}")
    if not np.isfinite(pts).all():
        raise ConfigError(key, "coordinates must be finite numbers")
    if np.abs(pts).max() > MAX_COORDINATE:   # beyond any picture or surveyed grid; squared, they overflow
        raise ConfigError(key, f"coordinates must lie within +-{MAX_COORDINATE:.0e}, got {[list(p) for p in value]}")
    unit = _normalise(pts) @ np.c_[pts, np.ones(4)].T if np.ptp(pts, axis=0).max() > 0 else None
    # no three on one line (the homography would be degenerate): no triangle of them has an area below 1e-6 of
    # the square they span (sizes in any unit, huge or tiny)
    if unit is None or any(abs(twice) / 2.0 < 1e-6 for twice in _orientations(unit[:2].T)):
        raise ConfigError(key, "three of the four points lie on one line; pick points spread over the ground")
    return pts


def _normalise(pts: Array) -> Array:
    """(3, 3) map of ``pts`` (N, 2) onto the unit square they span: their least corner to 0, the longer side
    of their extent to 1 (homogeneous; apply as ``T @ [x, y, 1]``)."""
    low = pts.min(axis=0)
    size = float(np.ptp(pts, axis=0).max())
    return np.array([[1.0 / size, 0.0, -low[0] / size], [0.0, 1.0 / size, -low[1] / size], [0.0, 0.0, 1.0]])


def _homography(src: Array, dst: Array) -> Array:
    """(3, 3) homography mapping the four points ``src`` (4, 2) exactly onto ``dst`` (4, 2), in float64.

    Both sets are first mapped onto the unit square they span: ground points given as surveyed coordinates
    (UTM or a national grid, millions of metres) keep their millimetres, which OpenCV's float32
    ``getPerspectiveTransform`` rounded to half a metre. The nine entries are the null vector of the eight
    equations (SVD), not eight of them with the last fixed to 1: a map whose last entry is 0 (the horizon
    through the least corner of the points' box) is a camera too, and fixing it to 1 made the system singular."""
    ts, td = _normalise(src), _normalise(dst)
    s = np.c_[src, np.ones(4)] @ ts.T
    d = np.c_[dst, np.ones(4)] @ td.T
    rows = []
    for (x, y, _), (u, v, _) in zip(s, d):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, -u])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, -v])
    h = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)
    out: Array = np.linalg.inv(td) @ h @ ts
    largest = float(np.abs(out).max())
    return out / (out[2, 2] if abs(out[2, 2]) > 1e-9 * largest else largest)


def _orientations(pts: Array) -> list[float]:
    """For each three of the four points (leaving out point 0, 1, 2, 3): twice their signed area (> 0:
    they turn anticlockwise)."""
    out = []
    for i in range(4):
        a, b, c = (pts[j] for j in range(4) if j != i)
        out.append(float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])))
    return out


def _turns(pts: Array) -> list[bool]:
    """For each three of the four points (leaving out point 0, 1, 2, 3): whether they turn anticlockwise."""
    return [twice > 0 for twice in _orientations(pts)]


def _same_order(image: Array, ground: Array) -> bool:
    """Whether some view of the ground plane shows ``ground`` as ``image``, point for point.

    A homography multiplies the orientation of three points by the sign of its determinant and of their
    three ``w``; the four points lie before the camera (one sign of ``w``) exactly when every three of them
    keep, or every three flip, their orientation. Otherwise the map folds the ground over its horizon: two
    of the user's own points would lie behind the camera, and tracks near the fold would get any speed."""
    kept = [a == b for a, b in zip(_turns(image), _turns(ground))]
    return all(kept) or not any(kept)


@dataclass(frozen=True)
class CalibrationConfig:
    """How one source's pixels map to metres on the ground (give either the four point pairs or the scale).

    Attributes:
        image_points: four [x, y] pixels of the source frame, on the ground.
        ground_points: the same four points on the ground, [x, y] metres, in the same order.
        metres_per_pixel: instead of the points: one scale for a camera looking straight down.
        still_below_mps: a track slower than this (m/s) has no heading (standing still; jitter is no direction).
        pixel_noise: how far (pixels) the filtered ground point strays from the truth; carried to metres
            through the homography, so far-away points count as less certain.
        acceleration: how fast tracks change speed (m/s^2, the ground filter's process noise): higher follows
            braking sooner, lower gives a steadier speed.
    """

    image_points: tuple[tuple[float, ...], ...] = ()
    ground_points: tuple[tuple[float, ...], ...] = ()
    metres_per_pixel: Optional[float] = field(default=None, metadata={"gt": 0.0})
    still_below_mps: float = field(default=0.2, metadata={"min": 0.0})
    pixel_noise: float = field(default=2.0, metadata={"gt": 0.0})
    acceleration: float = field(default=2.0, metadata={"gt": 0.0})

    def __post_init__(self) -> None:
        points = bool(self.image_points or self.ground_points)
        if points and self.metres_per_pixel is not None:
            raise ConfigError("metres_per_pixel", "give either metres_per_pixel or image_points + ground_points, "
                                                  "not both")
        if not points and self.metres_per_pixel is None:
            raise ConfigError("image_points", "a calibration needs image_points + ground_points (four each) "
                                              "or metres_per_pixel")
        if points:
            image = _four("image_points", self.image_points)
            if not _same_order(image, _four("ground_points", self.ground_points)):
                raise ConfigError("ground_points", "not in the order of image_points (two swapped?): no camera "
                                                  "sees the ground like that; give the ground points in the "
                                                  "order of their image points")

    def homography(self) -> Array:
        """(3, 3) pixels -> metres."""
        if self.metres_per_pixel is not None:
            m = self.metres_per_pixel
            return np.array([[m, 0.0, 0.0], [0.0, -m, 0.0], [0.0, 0.0, 1.0]])   # +y up the image
        image = _four("image_points", self.image_points)
        h = _homography(image, _four("ground_points", self.ground_points))
        centre = np.append(image.mean(axis=0), 1.0)
        return h if float(h[2] @ centre) > 0 else -h   # the same map, scaled so that w > 0 on the ground side


def points_outside(config: CalibrationConfig, size: tuple[int, int]) -> list[list[float]]:
    """The calibration's ``image_points`` that lie beyond a ``(width, height)`` picture: points picked in
    another picture (another camera or resolution), whose ground map is then wrong for this one."""
    width, height = float(size[0]), float(size[1])
    return [[float(x), float(y)] for x, y in config.image_points if not (0.0 <= x <= width and 0.0 <= y <= height)]


EDGE_MARGIN = 0.02
"""A box side within this share of the picture's width or height from its edge is taken as cut by it."""


def cut_by_edge(box: Array, size: tuple[int, int], anchor: str = "bottom_center") -> npt.NDArray[np.bool_]:
    """(N,) whether the picture's edge cuts boxes (N, 4) xyxy where it moves their anchor: the bottom, left
    or right edge (and the top for a ``center`` anchor). A car driving out of view keeps its box's bottom on
    the border while it goes on, so the ground point of a cut box stands still and would show as braking."""
    width, height = float(size[0]), float(size[1])
    mx, my = EDGE_MARGIN * width, EDGE_MARGIN * height
    cut = (box[:, 0] <= mx) | (box[:, 2] >= width - mx) | (box[:, 3] >= height - my)
    if anchor != "bottom_center":
        cut |= box[:, 1] <= my
    return np.asarray(cut, bool)


class GroundPlane:
    """A source's calibration as a function of tracks: ground points, speed and heading."""

    def __init__(self, config: CalibrationConfig, anchor: str = "bottom_center") -> None:
        self._h = config.homography()
        self._still = config.still_below_mps
        self._anchor = anchor
        self._pixel_noise = config.pixel_noise
        self._filter = GroundFilter(config.acceleration)

    def to_ground(self, points: Array) -> tuple[Array, npt.NDArray[np.bool_]]:
        """(N, 2) pixels -> ((N, 2) metres, (N,) valid: False for points beyond the horizon)."""
        p = np.c_[points.astype(np.float64), np.ones(len(points))] @ self._h.T
        valid = p[:, 2] > 1e-12
        w = np.where(valid, p[:, 2], 1.0)
        return p[:, :2] / w[:, None], valid

    def jacobian(self, points: Array) -> Array:
        """(N, 2, 2) metres per pixel of the map at points (N, 2) px: d(ground) / d(pixel)."""
        h = self._h
        u = np.c_[points.astype(np.float64), np.ones(len(points))] @ h.T            # (N, 3)
        w = u[:, 2:3]
        jac: Array = (h[None, :2, :2] * w[:, :, None] - u[:, :2, None] * h[None, 2:3, :2]) / (w[:, :, None] ** 2)
        return jac

    def measure(self, tracks: Tracks, t: float, size: Optional[tuple[int, int]] = None) -> dict[int, GroundMotion]:
        """Track id -> its ground point, speed and heading at time ``t`` (s); call once per frame, in order
        (tracks beyond the horizon are left out). With the picture's ``size`` (width, height), a box the
        picture's edge cuts (``cut_by_edge``) is carried on by the filter, not measured, for at most
        ``ground_filter.CARRY_SECONDS`` since its last ground point; past it the track is left out until it
        is measured again and its filter has settled anew."""
        box = tracks.best_xyxy.astype(np.float64)
        x = (box[:, 0] + box[:, 2]) / 2.0
        y = box[:, 3] if self._anchor == "bottom_center" else (box[:, 1] + box[:, 3]) / 2.0
        points = np.stack([x, y], axis=1)
        ground, valid = self.to_ground(points)
        jac = self.jacobian(points[valid])
        r = jac @ jac.transpose(0, 2, 1) * self._pixel_noise ** 2 + np.eye(2) * 1e-6
        ids = tracks.track_id[valid]
        measured = None if size is None else ~cut_by_edge(box[valid], size, self._anchor)
        state = self._filter.step(ids, ground[valid], r, t, tracks.removed_ids, measured)
        settled = (self._filter.hits(ids) >= SETTLE_FRAMES) & ~self._filter.stale(ids)   # stale: carried too long
        speed = np.hypot(state[:, 2], state[:, 3])
        heading = np.degrees(np.arctan2(state[:, 2], state[:, 3])) % 360.0
        out = {}
        for i, tid in enumerate(ids.tolist()):
            if settled[i] and np.isfinite(speed[i]):
                still = speed[i] < self._still
                out[int(tid)] = GroundMotion((float(state[i, 0]), float(state[i, 1])), float(speed[i]),
                                             None if still else float(heading[i]))
        return out

"""A constant-velocity Kalman filter per track on the ground plane (metres), for speed and heading.

Why a second filter: the tracker's Kalman filter models constant velocity *in the image*, but under
perspective a car at constant speed slows down on screen as it drives away (and speeds up as it comes
closer), so the image filter's velocity lags by tens of percent. On the ground plane constant velocity is
the right model. The measurement is the ground point of the tracker's filtered box (``Tracks.best_xyxy``),
with the pixel noise carried to metres through the homography's Jacobian (a pixel far away is many
centimetres, near the camera a few millimetres), and the process noise is white acceleration.

A track whose box the picture's edge cuts is not measured, only carried on at its speed, and for at most
``CARRY_SECONDS`` of stream time after its last ground point: a car that queues at the bottom edge, or a
person close to the camera with their feet out of the picture, would otherwise go on moving at the speed
they had for as long as they stand there. Past it the track is stale: its ground point stops, it has no
speed (``GroundFilter.stale``), and its next ground point starts its filter over.

State as arrays, math as functions: ``predict`` and ``update`` are pure and batched over tracks.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

__all__ = ["CARRY_SECONDS", "GroundFilter", "predict", "update"]

Array = npt.NDArray[np.float64]

CARRY_SECONDS = 1.0
"""Longest a track is carried on by its filter without a ground point (s of stream time since its last one):
about as long as a car at speed takes to leave through the picture's edge, far shorter than it stands in a
queue there."""


def predict(mean: Array, cov: Array, dt: Array, accel: float) -> tuple[Array, Array]:
    """States (N, 4) ``x, y, vx, vy`` and covariances (N, 4, 4) moved on by ``dt`` (N,) seconds."""
    f = np.repeat(np.eye(4)[None], len(mean), axis=0)
    f[:, 0, 2] = f[:, 1, 3] = dt
    q1 = np.stack([np.stack([dt ** 3 / 3, dt ** 2 / 2], -1), np.stack([dt ** 2 / 2, dt], -1)], -2)   # (N, 2, 2)
    q = np.zeros_like(cov)
    q[:, 0::2, 0::2] = q1 * accel ** 2
    q[:, 1::2, 1::2] = q1 * accel ** 2
    new_mean: Array = np.einsum("nij,nj->ni", f, mean)
    new_cov: Array = f @ cov @ f.transpose(0, 2, 1) + q
    return new_mean, new_cov


def update(mean: Array, cov: Array, z: Array, r: Array) -> tuple[Array, Array]:
    """States corrected by position measurements ``z`` (N, 2) with covariances ``r`` (N, 2, 2)."""
    s = cov[:, :2, :2] + r
    gain = cov[:, :, :2] @ np.linalg.inv(s)                                  # (N, 4, 2)
    new_mean: Array = mean + np.einsum("nij,nj->ni", gain, z - mean[:, :2])
    new_cov: Array = cov - gain @ cov[:, :2, :]
    return new_mean, new_cov


class GroundFilter:
    """Ground-plane state of every track of one source (rows by track id)."""

    def __init__(self, accel: float, velocity_std: float = 15.0, carry_seconds: float = CARRY_SECONDS) -> None:
        self._accel = accel
        self._v0 = velocity_std                     # m/s: a new track's velocity is unknown
        self._carry = carry_seconds
        self._ids = np.zeros(0, np.int64)
        self._mean = np.zeros((0, 4))
        self._cov = np.zeros((0, 4, 4))
        self._time = np.zeros(0)                    # s: each row's last step
        self._seen = np.zeros(0)                    # s: each row's last ground point (or its start)
        self._hits = np.zeros(0, np.int64)

    def hits(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """(N,) how many ground points each of ``ids`` has been filtered with (0 for unknown ids)."""
        count = dict(zip(self._ids.tolist(), self._hits.tolist()))
        return np.array([count.get(int(tid), 0) for tid in ids.tolist()], np.int64)

    def stale(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """(N,) whether each of ``ids`` was carried on past ``carry_seconds`` without a ground point at its
        last step (False for unknown ids): its speed is not known any more."""
        late = dict(zip(self._ids.tolist(), (self._time - self._seen > self._carry).tolist()))
        return np.array([late.get(int(tid), False) for tid in ids.tolist()], bool)

    def _start(self, z: Array, r: Array) -> tuple[Array, Array]:
        """States (N, 4) and covariances (N, 4, 4) of tracks first seen at ``z`` (N, 2) with noise ``r``."""
        n = len(z)
        cov = np.zeros((n, 4, 4))
        cov[:, :2, :2] = r
        cov[:, 2, 2] = cov[:, 3, 3] = self._v0 ** 2
        return np.c_[z, np.zeros((n, 2))], cov

    def step(self, ids: npt.NDArray[np.int64], z: Array, r: Array, t: float,
             removed: npt.NDArray[np.int64], measured: Optional[npt.NDArray[np.bool_]] = None) -> Array:
        """Filter this frame's ground points ``z`` (N, 2) m of tracks ``ids`` (N,) at time ``t`` s with noise
        ``r`` (N, 2, 2); returns their (N, 4) states. Tracks in ``removed`` are forgotten. A known track whose
        ``measured`` (N,) is False is only predicted to ``t`` (its point is not a true ground point) and gains
        no hit, for at most ``carry_seconds`` since its last ground point; past it, its point stands still
        (it is ``stale``) and its next ground point starts it over. A new one starts at its point, with no hit."""
        measured = np.ones(len(ids), bool) if measured is None else measured
        keep = ~np.isin(self._ids, removed)
        self._ids, self._mean, self._cov, self._time = (self._ids[keep], self._mean[keep], self._cov[keep],
                                                        self._time[keep])
        self._seen, self._hits = self._seen[keep], self._hits[keep]
        known = np.isin(ids, self._ids)
        pos = {int(tid): i for i, tid in enumerate(self._ids.tolist())}
        rows = np.array([pos[int(tid)] for tid in ids[known].tolist()], np.int64)
        out = np.zeros((len(ids), 4))
        if len(rows):
            seen = measured[known]
            until = np.where(seen, t, np.minimum(t, self._seen[rows] + self._carry))   # a carry stops at its limit
            m, c = predict(self._mean[rows], self._cov[rows], np.maximum(until - self._time[rows], 0.0),
                           self._accel)
            if seen.any():
                m[seen], c[seen] = update(m[seen], c[seen], z[known][seen], r[known][seen])
            over = seen & (self._time[rows] - self._seen[rows] > self._carry)   # measured again after going stale
            if over.any():
                m[over], c[over] = self._start(z[known][over], r[known][over])
                self._hits[rows[over]] = 0
            self._mean[rows], self._cov[rows], self._time[rows] = m, c, t
            self._seen[rows] = np.where(seen, t, self._seen[rows])
            self._hits[rows] += seen
            out[known] = m
        fresh = ~known
        if fresh.any():
            n = int(fresh.sum())
            mean, cov = self._start(z[fresh], r[fresh])
            self._ids = np.r_[self._ids, ids[fresh]]
            self._mean, self._cov = np.r_[self._mean, mean], np.r_[self._cov, cov]
            self._time, self._seen = np.r_[self._time, np.full(n, t)], np.r_[self._seen, np.full(n, t)]
            self._hits = np.r_[self._hits, measured[fresh].astype(np.int64)]
            out[fresh] = mean
        return out

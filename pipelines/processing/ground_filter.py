"""A constant-velocity Kalman filter per track on the ground plane (metres), for speed and heading.

Why a second filter: the tracker's Kalman filter models constant velocity *in the image*, but under
perspective a car at constant speed slows down on screen as it drives away (and speeds up as it comes
closer), so the image filter's velocity lags by tens of percent. On the ground plane constant velocity is
the right model. The measurement is the ground point of the tracker's filtered box (``Tracks.best_xyxy``),
with the pixel noise carried to metres through the homography's Jacobian (a pixel far away is many
centimetres, near the camera a few millimetres), and the process noise is white acceleration.

State as arrays, math as functions: ``predict`` and ``update`` are pure and batched over tracks.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

__all__ = ["GroundFilter", "predict", "update"]

Array = npt.NDArray[np.float64]


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

    def __init__(self, accel: float, velocity_std: float = 15.0) -> None:
        self._accel = accel
        self._v0 = velocity_std                     # m/s: a new track's velocity is unknown
        self._ids = np.zeros(0, np.int64)
        self._mean = np.zeros((0, 4))
        self._cov = np.zeros((0, 4, 4))
        self._time = np.zeros(0)
        self._hits = np.zeros(0, np.int64)

    def hits(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """(N,) how many ground points each of ``ids`` has been filtered with (0 for unknown ids)."""
        count = dict(zip(self._ids.tolist(), self._hits.tolist()))
        return np.array([count.get(int(tid), 0) for tid in ids.tolist()], np.int64)

    def step(self, ids: npt.NDArray[np.int64], z: Array, r: Array, t: float,
             removed: npt.NDArray[np.int64], measured: Optional[npt.NDArray[np.bool_]] = None) -> Array:
        """Filter this frame's ground points ``z`` (N, 2) m of tracks ``ids`` (N,) at time ``t`` s with noise
        ``r`` (N, 2, 2); returns their (N, 4) states. Tracks in ``removed`` are forgotten. A known track whose
        ``measured`` (N,) is False is only predicted to ``t`` (its point is not a true ground point) and gains
        no hit; a new one starts at its point, with no hit."""
        measured = np.ones(len(ids), bool) if measured is None else measured
        keep = ~np.isin(self._ids, removed)
        self._ids, self._mean, self._cov, self._time = (self._ids[keep], self._mean[keep], self._cov[keep],
                                                        self._time[keep])
        self._hits = self._hits[keep]
        known = np.isin(ids, self._ids)
        pos = {int(tid): i for i, tid in enumerate(self._ids.tolist())}
        rows = np.array([pos[int(tid)] for tid in ids[known].tolist()], np.int64)
        out = np.zeros((len(ids), 4))
        if len(rows):
            m, c = predict(self._mean[rows], self._cov[rows], np.maximum(t - self._time[rows], 0.0), self._accel)
            seen = measured[known]
            if seen.any():
                m[seen], c[seen] = update(m[seen], c[seen], z[known][seen], r[known][seen])
            self._mean[rows], self._cov[rows], self._time[rows] = m, c, t
            self._hits[rows] += seen
            out[known] = m
        fresh = ~known
        if fresh.any():
            n = int(fresh.sum())
            mean = np.c_[z[fresh], np.zeros((n, 2))]
            cov = np.zeros((n, 4, 4))
            cov[:, :2, :2] = r[fresh]
            cov[:, 2, 2] = cov[:, 3, 3] = self._v0 ** 2
            self._ids = np.r_[self._ids, ids[fresh]]
            self._mean, self._cov = np.r_[self._mean, mean], np.r_[self._cov, cov]
            self._time = np.r_[self._time, np.full(n, t)]
            self._hits = np.r_[self._hits, measured[fresh].astype(np.int64)]
            out[fresh] = mean
        return out

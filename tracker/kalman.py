"""Batched constant-velocity Kalman filter on boxes, as pure functions over parallel arrays.

State per track (8,): ``cx, cy, w, h, vcx, vcy, vw, vh`` -- box centre and size in pixels, their rates in
pixels per **second**. Measurement (4,): ``cx, cy, w, h``. ``mean`` is (N, 8) float64, ``cov`` (N, 8, 8).
``dt`` is in seconds, a scalar or one value per track, so frames may arrive at any rate.

Noise scales with box height (a box 2x as tall is allowed 2x the pixel noise):

* process noise ``Q = diag((q_p h)^2 dt [x4], (q_v h)^2 dt [x4])`` -- a random walk whose variance grows
  linearly with elapsed time, so skipping frames does not change what the filter believes per second;
* measurement noise ``R = diag((r h)^2 [x4])``.

While the four coordinates stay independent (diagonal Q, R and initial P, as here), each covariance only
has three non-zero numbers per coordinate; predict/update then work on those (N, 4) blocks, and fall back
to full matrix algebra for any other covariance. Every function returns new arrays and leaves its inputs
untouched.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

STATE_DIM = 8
MEASURE_DIM = 4
_DIAG = np.arange(STATE_DIM)
# While the coordinates are independent, only four strided runs of the flattened 8x8 covariance are non-zero:
# var(coordinate) at flat index 9i, cov(coordinate, rate) at 9i+4 and 9i+32, var(rate) at 9i+36 (i = 0..3).
_PP, _PV, _VP, _VV = slice(0, 32, 9), slice(4, 32, 9), slice(32, 64, 9), slice(36, 64, 9)


_OFF_BLOCKS = np.ones(STATE_DIM * STATE_DIM, bool)
for _run in (_PP, _PV, _VP, _VV):
    _OFF_BLOCKS[_run] = False
Blocks = tuple[Array, Array, Array]


def _blocks(cov: Array) -> Blocks | None:
    """(pp, pv, vv) each (N, 4) when ``cov`` has the independent-coordinates structure, else None."""
    flat = cov.reshape(cov.shape[0], STATE_DIM * STATE_DIM)
    if np.count_nonzero(flat[:, _OFF_BLOCKS]):
        return None
    return flat[:, _PP], flat[:, _PV], flat[:, _VV]  # covariances are symmetric, so vp == pv


def block_view(cov: Array) -> Blocks:
    """(pp, pv, vv) views, each (N, 4), of (N, 8, 8) covariances *known* to keep coordinates independent,
    without checking (``to_blocks`` checks). Every covariance ``initiate`` makes has that form, and
    ``predict`` / ``update`` keep it, so a tracker that only uses these may skip the check."""
    flat = cov.reshape(cov.shape[0], STATE_DIM * STATE_DIM)
    return flat[:, _PP], flat[:, _PV], flat[:, _VV]


def has_block_form(cov: Array) -> bool:
    """Whether (N, 8, 8) covariances keep coordinates independent (what ``block_view`` assumes)."""
    return _blocks(cov) is not None


def to_blocks(cov: Array) -> Blocks | None:
    """The (pp, pv, vv) form of (N, 8, 8) covariances whose coordinates are independent (None otherwise):
    per coordinate its variance, its covariance with its rate, the rate's variance, each (N, 4) copies."""
    blocks = _blocks(cov)
    return None if blocks is None else (blocks[0].copy(), blocks[1].copy(), blocks[2].copy())


def from_blocks(blocks: Blocks) -> Array:
    """(N, 8, 8) covariances from their (pp, pv, vv) form."""
    return _from_blocks(*blocks)


def predict_blocks(mean: Array, blocks: Blocks, dt: float | Array, position_noise: float,
                   velocity_noise: float) -> tuple[Array, Blocks]:
    """``predict`` on covariances in (pp, pv, vv) form (see ``to_blocks``); same numbers, no 8x8 arrays."""
    dtv = np.asarray(dt, dtype=np.float64)
    d = dtv.reshape(-1, 1) if dtv.ndim else dtv
    new_mean = mean.copy()
    new_mean[:, :4] += d * mean[:, 4:]
    h2dt = (_heights(mean) ** 2 * dtv)[:, None]  # Q is diagonal: added in place of building (N, 8, 8)
    pp, pv, vv = blocks
    return new_mean, (pp + d * (pv + pv) + (d * d) * vv + position_noise ** 2 * h2dt, pv + d * vv,
                      vv + velocity_noise ** 2 * h2dt)


def update_blocks(mean: Array, blocks: Blocks, measurement: Array,
                  noise: float | Array) -> tuple[Array, Blocks]:
    """``update`` on covariances in (pp, pv, vv) form: S is diagonal and every gain is a division."""
    r = ((np.asarray(noise, dtype=np.float64) * _heights(mean)) ** 2)[:, None]
    pp, pv, vv = blocks
    innovation = measurement - mean[:, :4]
    kp, kv = pp / (pp + r), pv / (pp + r)
    new_mean = mean.copy()
    new_mean[:, :4] += kp * innovation
    new_mean[:, 4:] += kv * innovation
    return new_mean, (pp - kp * pp, pv - kp * pv, vv - kv * pv)


def _from_blocks(pp: Array, pv: Array, vv: Array) -> Array:
    flat = np.zeros((pp.shape[0], STATE_DIM * STATE_DIM))
    flat[:, _PP], flat[:, _PV], flat[:, _VP], flat[:, _VV] = pp, pv, pv, vv
    return flat.reshape(-1, STATE_DIM, STATE_DIM)


def xyxy_to_measurement(xyxy: npt.ArrayLike) -> Array:
    """(N, 4) corner boxes -> (N, 4) ``cx, cy, w, h``."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + 0.5 * wh, wh], axis=1)


def state_to_xyxy(mean: Array) -> Array:
    """(N, >=4) states or measurements -> (N, 4) corner boxes."""
    half = 0.5 * mean[:, 2:4]
    return np.concatenate([mean[:, :2] - half, mean[:, :2] + half], axis=1)


def transition_matrix(dt: float) -> Array:
    """(8, 8) constant-velocity transition ``F`` for a step of ``dt`` seconds."""
    f = np.eye(STATE_DIM)
    f[np.arange(4), np.arange(4) + 4] = dt
    return f


def _heights(mean: Array) -> Array:
    return np.maximum(mean[:, 3], 1e-3)


def process_noise(mean: Array, dt: float | Array, position_noise: float, velocity_noise: float) -> Array:
    """(N, 8, 8) process noise ``Q`` for a step of ``dt`` seconds, scaled by each box's height."""
    h2 = _heights(mean) ** 2 * np.broadcast_to(np.asarray(dt, dtype=np.float64), mean.shape[:1])
    q = np.zeros((mean.shape[0], STATE_DIM, STATE_DIM))
    idx = np.arange(STATE_DIM)
    q[:, idx[:4], idx[:4]] = (position_noise ** 2 * h2)[:, None]
    q[:, idx[4:], idx[4:]] = (velocity_noise ** 2 * h2)[:, None]
    return q


def measurement_noise(mean: Array, noise: float) -> Array:
    """(N, 4, 4) measurement noise ``R`` from the (predicted) boxes' heights."""
    r = np.zeros((mean.shape[0], MEASURE_DIM, MEASURE_DIM))
    idx = np.arange(MEASURE_DIM)
    r[:, idx, idx] = ((noise * _heights(mean)) ** 2)[:, None]
    return r


def initiate(measurement: Array, measurement_noise_std: float, velocity_noise: float) -> tuple[Array, Array]:
    """New tracks from (N, 4) measurements: zero velocity, wide velocity uncertainty."""
    n = measurement.shape[0]
    mean = np.zeros((n, STATE_DIM))
    mean[:, :4] = measurement
    h = np.maximum(measurement[:, 3], 1e-3)
    std = np.empty((n, STATE_DIM))
    std[:, :4] = (2.0 * measurement_noise_std * h)[:, None]
    std[:, 4:] = (2.0 * velocity_noise * h)[:, None]
    cov = np.zeros((n, STATE_DIM, STATE_DIM))
    idx = np.arange(STATE_DIM)
    cov[:, idx, idx] = std ** 2
    return mean, cov


def predict(mean: Array, cov: Array, dt: float | Array, position_noise: float,
            velocity_noise: float) -> tuple[Array, Array]:
    """Advance every track by ``dt`` seconds (scalar or (N,)). Returns new ``(mean, cov)``.

    Equivalent to ``x' = F x``, ``P' = F P F^T + Q`` with ``F = transition_matrix(dt)`` and
    ``Q = process_noise(mean, dt, ...)``, written blockwise so a per-track ``dt`` costs nothing extra.
    """
    blocks = _blocks(cov)
    if blocks is not None:  # the usual case: 3 numbers per coordinate instead of 8x8 matrix algebra
        new_mean, new_blocks = predict_blocks(mean, blocks, dt, position_noise, velocity_noise)
        return new_mean, _from_blocks(*new_blocks)
    dtv = np.asarray(dt, dtype=np.float64)
    d = dtv.reshape(-1, 1) if dtv.ndim else dtv
    new_mean = mean.copy()
    new_mean[:, :4] += d * mean[:, 4:]
    h2dt = (_heights(mean) ** 2 * dtv)[:, None]
    d3 = d[:, :, None] if dtv.ndim else d
    a, b = cov[:, :4, :4], cov[:, :4, 4:]
    c, e = cov[:, 4:, :4], cov[:, 4:, 4:]
    new_cov = np.empty_like(cov)
    new_cov[:, :4, :4] = a + d3 * (b + c) + (d3 * d3) * e
    new_cov[:, :4, 4:] = b + d3 * e
    new_cov[:, 4:, :4] = c + d3 * e
    new_cov[:, 4:, 4:] = e
    new_cov[:, _DIAG[:4], _DIAG[:4]] += position_noise ** 2 * h2dt
    new_cov[:, _DIAG[4:], _DIAG[4:]] += velocity_noise ** 2 * h2dt
    return new_mean, new_cov


def update(mean: Array, cov: Array, measurement: Array, noise: float | Array) -> tuple[Array, Array]:
    """Correct (N,) predicted states with (N, 4) measurements ``cx, cy, w, h``. Returns new ``(mean, cov)``.

    ``H`` picks the first four state entries; ``R = measurement_noise(mean, noise)`` uses the predicted
    heights; ``noise`` is one number or one per row (N,). Uses ``K = P H^T S^-1`` and ``P' = P - K S K^T``
    (symmetrised).
    """
    blocks = _blocks(cov)
    if blocks is not None:  # independent coordinates: S is diagonal and every gain is a division
        new_mean, new_blocks = update_blocks(mean, blocks, measurement, noise)
        return new_mean, _from_blocks(*new_blocks)
    r = ((np.asarray(noise, dtype=np.float64) * _heights(mean)) ** 2)[:, None]
    s = cov[:, :4, :4].copy()
    s[:, _DIAG[:4], _DIAG[:4]] += r
    pht = cov[:, :, :4]
    gain = np.linalg.solve(s, np.swapaxes(pht, 1, 2)).swapaxes(1, 2)  # S symmetric: K = (S^-1 H P)^T
    innovation = measurement - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ np.swapaxes(pht, 1, 2)
    new_cov = 0.5 * (new_cov + np.swapaxes(new_cov, 1, 2))
    return new_mean, new_cov


def centre_path(mean: Array, horizon_seconds: float, points: int) -> Array:
    """(N, K, 2) predicted centres at ``horizon * k / K`` seconds ahead, k = 1..K (constant velocity)."""
    if points <= 0 or mean.shape[0] == 0:
        return np.zeros((mean.shape[0], max(points, 0), 2))
    t = horizon_seconds * np.arange(1, points + 1) / points
    return mean[:, None, :2] + t[None, :, None] * mean[:, None, 4:6]

"""The batched Kalman filter agrees with filterpy's reference KalmanFilter, track by track."""

from __future__ import annotations

import numpy as np
from filterpy.kalman import KalmanFilter

from tracker import kalman

POS, VEL, MEAS = 0.27, 1.0, 0.05


def _reference(z0: np.ndarray) -> KalmanFilter:
    mean, cov = kalman.initiate(z0[None], MEAS, VEL)
    kf = KalmanFilter(dim_x=8, dim_z=4)
    kf.x = mean[0].copy()
    kf.P = cov[0].copy()
    kf.H = np.eye(4, 8)
    return kf


def test_batched_filter_matches_filterpy_for_100_steps_with_variable_dt():
    rng = np.random.default_rng(1)
    n = 5
    z = np.column_stack([rng.uniform(50, 500, (n, 2)), rng.uniform(20, 60, n), rng.uniform(60, 160, n)])
    velocity = rng.normal(0, 40, (n, 4)) * [1, 1, 0.05, 0.05]
    mean, cov = kalman.initiate(z, MEAS, VEL)
    refs = [_reference(z[i]) for i in range(n)]
    for step in range(100):
        dt = float(rng.uniform(0.01, 0.2))  # irregular frame timing
        for kf in refs:  # filterpy gets the same F, Q, R that our functions use
            kf.F = kalman.transition_matrix(dt)
            kf.predict(Q=kalman.process_noise(kf.x[None], dt, POS, VEL)[0])
        mean, cov = kalman.predict(mean, cov, dt, POS, VEL)
        z = z + velocity * dt + rng.normal(0, 1.5, z.shape)
        observed = rng.random(n) > 0.2  # some tracks miss a measurement now and then
        rows = np.flatnonzero(observed)
        for i in rows:
            refs[i].update(z[i], R=kalman.measurement_noise(refs[i].x[None], MEAS)[0])
        mean[rows], cov[rows] = kalman.update(mean[rows], cov[rows], z[rows], MEAS)
        for i, kf in enumerate(refs):
            np.testing.assert_allclose(mean[i], kf.x, rtol=1e-6, atol=1e-6 * np.abs(kf.x).max(),
                                       err_msg=f"mean of track {i} at step {step}")
            np.testing.assert_allclose(cov[i], kf.P, rtol=1e-6, atol=1e-6 * np.abs(kf.P).max(),
                                       err_msg=f"covariance of track {i} at step {step}")


def test_full_update_agrees_when_innovation_covariance_is_not_diagonal():
    rng = np.random.default_rng(2)
    mean, cov = kalman.initiate(np.array([[100.0, 100.0, 40.0, 100.0]]), MEAS, VEL)
    a = rng.normal(0, 3, (8, 8))
    cov = cov + (a @ a.T)[None]  # correlated coordinates: the general solve path
    z = np.array([[104.0, 97.0, 42.0, 103.0]])
    kf = KalmanFilter(dim_x=8, dim_z=4)
    kf.x, kf.P, kf.H = mean[0].copy(), cov[0].copy(), np.eye(4, 8)
    kf.update(z[0], R=kalman.measurement_noise(mean, MEAS)[0])
    new_mean, new_cov = kalman.update(mean, cov, z, MEAS)
    np.testing.assert_allclose(new_mean[0], kf.x, rtol=1e-6)
    np.testing.assert_allclose(new_cov[0], kf.P, rtol=1e-6, atol=1e-9)


def test_per_track_dt_equals_separate_scalar_predictions_and_inputs_are_untouched():
    mean, cov = kalman.initiate(np.array([[10.0, 20, 5, 10], [30, 40, 8, 16]]), MEAS, VEL)
    mean[:, 4:] = [[3.0, -1, 0, 0.5], [-2, 2, 0.1, 0]]
    before = mean.copy(), cov.copy()
    dts = np.array([0.1, 0.5])
    m, c = kalman.predict(mean, cov, dts, POS, VEL)
    for i, dt in enumerate(dts):
        mi, ci = kalman.predict(mean[i:i + 1], cov[i:i + 1], float(dt), POS, VEL)
        np.testing.assert_allclose(m[i], mi[0])
        np.testing.assert_allclose(c[i], ci[0])
    np.testing.assert_array_equal(mean, before[0])
    np.testing.assert_array_equal(cov, before[1])


def test_centre_path_follows_velocity_over_the_horizon():
    mean = np.zeros((1, 8))
    mean[0, :4] = [100, 50, 10, 20]
    mean[0, 4:6] = [30, -10]  # px/s
    path = kalman.centre_path(mean, horizon_seconds=2.0, points=4)
    np.testing.assert_allclose(path[0], [[115, 45], [130, 40], [145, 35], [160, 30]])

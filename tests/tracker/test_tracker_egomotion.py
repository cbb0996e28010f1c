"""Camera-motion compensation from the detections (``ego_motion_significance``, 5 by default): when the
whole image jumps, IDs survive; when the camera is still, nothing moves, also with a jittery detector."""

from __future__ import annotations

import numpy as np
import pytest
from tracker_scenes import box, dets

from tracker import Tracker, TrackerConfig
from tracker.egomotion import ShiftEstimate, shift_of

WALKERS = [(150.0 + 120.0 * k, 300.0 + 10.0 * (k % 3)) for k in range(8)]  # 40x100 boxes, 120 px apart


def measure_shift(pred: np.ndarray, seen: np.ndarray, significance: float,
                  prior_scatter: np.ndarray | None = None) -> ShiftEstimate:
    """``shift_of`` for predicted track boxes ``pred`` (T, 4) and detection boxes ``dets`` (D, 4), both
    ``x1, y1, x2, y2``."""
    tracks = np.concatenate([0.5 * (pred[:, :2] + pred[:, 2:]), pred[:, 2:] - pred[:, :2]], axis=1)
    return shift_of(tracks, 0.5 * (seen[:, :2] + seen[:, 2:]), significance, prior_scatter)


def _ids_through_a_pan(config: TrackerConfig, pan_px_per_frame: float) -> tuple[set[int], int]:
    """Eight people standing still while the camera pans for 10 frames after 30 still ones."""
    trk = Tracker(config)
    offset, ids, reported = 0.0, set(), 0
    for i in range(60):
        if 30 <= i < 40:
            offset += pan_px_per_frame
        out = trk.update(dets([box(x + offset, y) for x, y in WALKERS]), timestamp=i / 30)
        if i >= 2:
            ids |= set(out.track_id.tolist())
            reported += len(out)
    return ids, reported


def test_ids_survive_a_fast_camera_pan_with_compensation_and_not_without():
    with_comp, n_with = _ids_through_a_pan(TrackerConfig(ego_motion_significance=3.0), 50.0)
    assert with_comp == set(range(1, 9)) and n_with == 8 * 58  # everyone kept, every frame
    without, _ = _ids_through_a_pan(TrackerConfig(ego_motion_significance=0.0), 50.0)
    assert len(without) > 8  # 50 px per frame past 40 px wide boxes: no overlap, new IDs


def test_compensation_is_on_by_default_and_validated():
    assert TrackerConfig().ego_motion_significance == 5.0
    defaults, _ = _ids_through_a_pan(TrackerConfig(), 50.0)
    assert defaults == set(range(1, 9))
    with pytest.raises(ValueError, match="ego_motion_significance"):
        TrackerConfig.from_dict({"ego_motion_significance": -1})


@pytest.mark.parametrize("shift, expected", [
    ((0.0, 0.0), (0.0, 0.0)),      # still camera: detections scatter around the predictions
    ((25.0, -8.0), (25.0, -8.0)),  # a pan: every object moved alike
])
def test_estimated_shift_is_the_common_motion_and_zero_for_a_still_camera(shift, expected):
    rng = np.random.default_rng(3)
    pred = np.array([box(x, y) for x, y in WALKERS], dtype=np.float64)
    seen = pred + np.tile(shift, 2) + rng.normal(0, 1.5, pred.shape)
    got = measure_shift(pred, seen, significance=3.0).shift
    np.testing.assert_allclose(got, expected, atol=2.0)
    if expected == (0.0, 0.0):
        assert not got.any()  # not significant: nothing is moved at all


def test_a_chance_tight_handful_of_pairs_does_not_pass_for_camera_motion_once_the_usual_scatter_is_known():
    # Five people, detections all about 4 px low: with so few pairs the spread of this frame can be tiny by
    # chance. Alone it looks like a significant 4 px shift; against the usual spread of a detector that
    # jitters by 5 % of a box height (5 px here) it is not.
    pred = np.array([box(x, y) for x, y in WALKERS[:5]], dtype=np.float64)
    seen = pred + np.tile([0.0, 4.0], 2) + np.array([[0, 0.1, 0, 0.1], [0, -0.1, 0, -0.1], [0, 0.05, 0, 0.05],
                                                     [0, -0.05, 0, -0.05], [0, 0.0, 0, 0.0]])
    alone = measure_shift(pred, seen, significance=3.0)
    assert alone.shift[1] == pytest.approx(4.0, abs=0.2) and alone.scatter is not None
    assert alone.scatter[1] < 0.002  # box heights: the chance-tight frame
    assert not measure_shift(pred, seen, significance=3.0, prior_scatter=np.array([0.05, 0.05])).shift.any()


def test_still_people_seen_by_a_jittery_detector_keep_their_ids_and_steadier_boxes():
    rng = np.random.default_rng(8)
    trk = Tracker()
    truth = np.array([box(x, y) for x, y in WALKERS], dtype=np.float64)
    det_err, est_err, ids = [], [], set()
    for i in range(300):
        noise = rng.normal(0, 0.05, (len(WALKERS), 2)) * [40.0, 100.0]  # 5 % of the box size, per box
        seen = truth + np.tile(noise, 2)
        out = trk.update(dets(seen.tolist()), timestamp=i / 30)
        if i >= 30 and len(out):
            ids |= set(out.track_id.tolist())
            assert out.estimated_xyxy is not None
            rows = out.det_index
            det_err.append(np.abs(out.xyxy - truth[rows]).mean())
            est_err.append(np.abs(out.estimated_xyxy - truth[rows]).mean())
    assert ids == set(range(1, 9))
    assert np.mean(est_err) < 0.8 * np.mean(det_err)  # the filter's box is nearer the truth than the detector's

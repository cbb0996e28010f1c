"""Camera-motion compensation from the detections (``ego_motion_significance``, off by default): when the
whole image jumps, IDs survive; when the camera is still, nothing moves."""

from __future__ import annotations

import numpy as np
import pytest
from tracker_scenes import box, dets

from tracker import Tracker, TrackerConfig
from tracker.egomotion import estimate_shift

WALKERS = [(150.0 + 120.0 * k, 300.0 + 10.0 * (k % 3)) for k in range(8)]  # 40x100 boxes, 120 px apart


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
    without, _ = _ids_through_a_pan(TrackerConfig(), 50.0)
    assert len(without) > 8  # 50 px per frame past 40 px wide boxes: no overlap, new IDs


def test_compensation_is_off_by_default_and_validated():
    assert TrackerConfig().ego_motion_significance == 0.0
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
    got = estimate_shift(pred, seen, significance=3.0)
    np.testing.assert_allclose(got, expected, atol=2.0)
    if expected == (0.0, 0.0):
        assert not got.any()  # not significant: nothing is moved at all

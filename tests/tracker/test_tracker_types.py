"""Detections / Tracks validation: bad rows are rejected with a clear message, or dropped and counted."""

from __future__ import annotations

import numpy as np
import pytest

from tracker import Detections, Tracks

GOOD = [[0, 0, 10, 10], [5, 5, 20, 30]]


@pytest.mark.parametrize("xyxy, conf, cls, extra, expected_len, error", [
    (GOOD, [0.9, 0.5], [0, 1], {}, 2, None),
    (np.zeros((0, 4)), [], [], {}, 0, None),
    ([[0, 0, 10, 10]], [0.9], [0], {"det_index": [7]}, 1, None),
    ([[0, 0, 10, 10]], [0.9], [0], {"keypoints": np.zeros((1, 17, 3))}, 1, None),
    ([[0, 0, 10, 10]], [0.9], [0], {"masks": np.zeros((1, 8, 8), bool)}, 1, None),
    ([[0, 0, np.nan, 10]], [0.9], [0], {}, None, "row 0 is not a valid box"),
    ([[0, 0, 10, 10], [0, 0, np.inf, 10]], [0.9, 0.9], [0, 0], {}, None, "row 1 is not a valid box"),
    ([[10, 0, 0, 10]], [0.9], [0], {}, None, "negative size"),
    ([[0, 0, 10]], [0.9], [0], {}, None, "expected shape"),
    (GOOD, [0.9], [0, 0], {}, None, "confidence: has 1 rows"),
    (GOOD, [0.9, 0.8], [0], {}, None, "class_id: has 1 rows"),
    (GOOD, [0.9, np.nan], [0, 0], {}, None, "confidence: contains NaN"),
    (GOOD, [0.9, 0.8], [0, 0], {"det_index": [1]}, None, "det_index: has 1 rows"),
    (GOOD, [0.9, 0.8], [0, 0], {"keypoints": np.zeros((1, 17, 3))}, None, "keypoints: has 1 rows"),
    (GOOD, [0.9, 0.8], [0, 0], {"mask_polygons": (np.zeros((3, 2)),)}, None, "mask_polygons: has 1 rows"),
    (GOOD, "high", [0, 0], {}, None, "confidence: cannot convert"),
])
def test_detections_validation(xyxy, conf, cls, extra, expected_len, error):
    if error is None:
        assert len(Detections(xyxy, conf, cls, **extra)) == expected_len
    else:
        with pytest.raises(ValueError, match=error):
            Detections(xyxy, conf, cls, **extra)


@pytest.mark.parametrize("xyxy, conf, kept_index, dropped", [
    (GOOD, [0.9, 0.5], [0, 1], 0),
    ([[0, 0, np.nan, 1], [0, 0, 1, 1], [3, 3, 1, 1]], [0.9, 0.8, 0.7], [1], 2),
    ([[0, 0, 1, 1], [0, 0, 2, 2]], [np.nan, 0.8], [1], 1),
    (np.zeros((0, 4)), [], [], 0),
])
def test_drop_invalid_keeps_valid_rows_and_counts(xyxy, conf, kept_index, dropped):
    n = len(conf)
    kpts = np.arange(n * 2 * 3, dtype=np.float32).reshape(n, 2, 3)
    result, count = Detections.drop_invalid(xyxy, conf, np.zeros(n, np.int64), keypoints=kpts)
    assert count == dropped
    assert result.det_index.tolist() == kept_index
    np.testing.assert_array_equal(result.keypoints, kpts[kept_index])


def test_detections_do_not_modify_caller_arrays_and_select_rows():
    boxes = np.array(GOOD, np.float32)
    before = boxes.copy()
    d = Detections(boxes, np.array([0.9, 0.5]), np.array([0, 1]))
    sub = d[d.confidence > 0.6]
    np.testing.assert_array_equal(boxes, before)
    assert len(sub) == 1 and sub.det_index.tolist() == [0]


def test_tracks_reject_mismatched_rows():
    with pytest.raises(ValueError, match="track_id: has 2 rows"):
        Tracks([[0, 0, 1, 1]], [0.9], [0], [1, 2], [0], [[0, 0]], np.zeros((1, 3, 2)), [0.0], [1])
    assert len(Tracks.empty(4)) == 0 and Tracks.empty(4).predicted_path.shape == (0, 4, 2)


def test_tracks_check_the_estimated_boxes_against_the_rows():
    with pytest.raises(ValueError, match="estimated_xyxy: has 2 rows"):
        Tracks([[0, 0, 1, 1]], [0.9], [0], [1], [0], [[0, 0]], np.zeros((1, 3, 2)), [0.0], [1],
               estimated_xyxy=[[0, 0, 1, 1], [0, 0, 2, 2]])
    assert Tracks.empty(2).estimated_xyxy is None  # built by hand without it: consumers fall back to xyxy

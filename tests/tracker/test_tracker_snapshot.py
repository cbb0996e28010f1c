"""A tracker restored from a JSON snapshot continues exactly like one that never stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tracker_scenes import box, dets

from tracker import Detections, Tracker, TrackerConfig, Tracks


def _scene(frames: int = 90) -> list[tuple[Detections, float]]:
    rng = np.random.default_rng(11)
    out = []
    t = 0.0
    for i in range(frames):
        t += float(rng.uniform(0.02, 0.05))  # irregular timestamps
        boxes = [box(80 + 4 * i, 100), box(600 - 3 * i, 140, 50, 120)]
        if 30 <= i < 45:
            boxes = boxes[1:]  # the first object is occluded for a while
        if i > 60:
            boxes.append(box(300, 400 + i))  # a newcomer
        conf = rng.uniform(0.2, 1.0, len(boxes)).tolist()
        out.append((dets(boxes, conf=conf, cls=[i % 2] * len(boxes)), t))
    return out


def _same(a: Tracks, b: Tracks) -> None:
    for name in ("track_id", "det_index", "class_id", "state", "removed_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("xyxy", "velocity", "predicted_path", "age"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("split", [1, 35, 70])
@pytest.mark.parametrize("with_timestamps", [True, False])
def test_run_split_by_a_json_snapshot_matches_an_unbroken_run(split, with_timestamps):
    scene = _scene()
    cfg = TrackerConfig(confirmation_hits=3)
    whole = Tracker(cfg)
    expected = [whole.update(d, t if with_timestamps else None) for d, t in scene]

    first = Tracker(cfg)
    got = [first.update(d, t if with_timestamps else None) for d, t in scene[:split]]
    text = json.dumps(first.state_dict())
    second = Tracker(cfg)
    second.load_state_dict(json.loads(text))
    got += [second.update(d, t if with_timestamps else None) for d, t in scene[split:]]
    assert any(len(t) for t in expected[split:])
    for a, b in zip(expected, got):
        _same(a, b)


@pytest.mark.parametrize("state, message", [
    ({}, "not a trackstream.tracker/1 snapshot"),
    ({"format": "trackstream.tracker/1"}, "missing key"),
])
def test_bad_snapshot_is_rejected(state, message):
    with pytest.raises(ValueError, match=message):
        Tracker().load_state_dict(state)


def test_snapshot_from_a_different_direction_lookback_is_rejected():
    trk = Tracker()
    for i in range(3):
        trk.update(dets([box(100 + i, 100)]), timestamp=i / 30)
    other = Tracker(TrackerConfig(direction_lookback_observations=5))
    with pytest.raises(ValueError, match="history"):
        other.load_state_dict(json.loads(json.dumps(trk.state_dict())))

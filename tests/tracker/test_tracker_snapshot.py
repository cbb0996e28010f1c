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
    for name in ("xyxy", "estimated_xyxy", "velocity", "predicted_path", "age"):
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


def _panning_crowd(frames: int = 80) -> list[tuple[Detections, float]]:
    """Eight jittery people in view of a camera that pans from frame 30 on: the camera-shift estimate
    (with its running scatter) is in play, so a snapshot must carry it."""
    rng = np.random.default_rng(5)
    out, offset = [], 0.0
    for i in range(frames):
        offset += 6.0 if i >= 30 else 0.0
        boxes = [box(100 + 110 * k + offset + rng.normal(0, 2), 300 + rng.normal(0, 4)) for k in range(8)]
        out.append((dets(boxes), i / 30))
    return out


@pytest.mark.parametrize("split", [20, 45])
def test_split_run_matches_an_unbroken_one_while_the_camera_pans(split):
    scene = _panning_crowd()
    whole = Tracker()
    expected = [whole.update(d, t) for d, t in scene]
    first = Tracker()
    got = [first.update(d, t) for d, t in scene[:split]]
    second = Tracker()
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    got += [second.update(d, t) for d, t in scene[split:]]
    assert {int(i) for t in expected for i in t.track_id} == set(range(1, 9))  # the pan kept every ID
    for a, b in zip(expected, got):
        _same(a, b)


def test_snapshot_from_before_the_camera_shift_scatter_still_loads():
    scene = _panning_crowd()
    trk = Tracker()
    for d, t in scene[:20]:
        trk.update(d, t)
    state = json.loads(json.dumps(trk.state_dict()))
    del state["ego_scatter"]  # what an earlier version wrote
    again = Tracker()
    again.load_state_dict(state)
    assert len(again.update(*scene[20])) == 8


def test_snapshot_whose_covariances_couple_coordinates_is_rejected_and_leaves_the_tracker_as_it_was():
    trk = Tracker()
    for d, t in _panning_crowd()[:5]:
        trk.update(d, t)
    state = json.loads(json.dumps(trk.state_dict()))
    state["tracks"]["cov"][0][0][1] = 0.5  # x coupled with y: not a covariance this tracker ever makes
    other = Tracker()
    with pytest.raises(ValueError, match="covariances"):
        other.load_state_dict(state)
    assert other.track_count == 0


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

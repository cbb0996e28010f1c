"""``output_unmatched_seconds``: a confirmed track that misses its detection for a moment is still reported,
at its predicted box, marked unmatched (state LOST, det_index -1), with well-defined keypoints, masks and
polygons."""

from __future__ import annotations

import numpy as np
import pytest
from tracker_scenes import box, dets

from tracker import Detections, Tracker, TrackerConfig, TrackState

FPS = 10.0


def walk(trk: Tracker, present: list[bool], **extra_fn: object) -> list:
    """One object walking right at 50 px/s (5 px per frame); ``present[i]`` False: not detected in frame i."""
    out = []
    for i, seen in enumerate(present):
        frame = dets([box(100 + 5 * i, 200)], **extra_fn) if seen else Detections.empty()
        out.append(trk.update(frame, timestamp=i / FPS))
    return out


def test_default_reports_only_matched_rows():
    out = walk(Tracker(), [True] * 10 + [False] * 3)
    assert [len(t) for t in out[10:]] == [0, 0, 0]
    assert all(t.matched.all() for t in out)


def test_a_missed_frame_keeps_the_box_at_the_predicted_place_then_it_stops():
    trk = Tracker(TrackerConfig(output_unmatched_seconds=0.25))
    out = walk(trk, [True] * 20 + [False] * 5 + [True])
    coasting = out[20:25]
    assert [len(t) for t in coasting] == [1, 1, 0, 0, 0]      # 0.1 s and 0.2 s after the last match only
    for k, t in enumerate(coasting[:2], start=1):
        assert t.track_id.tolist() == [1]
        assert t.state.tolist() == [int(TrackState.LOST)]
        assert t.det_index.tolist() == [-1] and not t.matched.any()
        assert t.confidence.tolist() == [0.0]
        np.testing.assert_allclose(t.xyxy[0], box(100 + 5 * (19 + k), 200), atol=2.0)  # kept walking
    back = out[25]
    assert back.track_id.tolist() == [1] and back.matched.all() and back.det_index.tolist() == [0]


def test_short_lived_tracks_coast_at_most_half_their_observed_time():
    trk = Tracker(TrackerConfig(output_unmatched_seconds=1.0))
    out = walk(trk, [True] * 3 + [False] * 4)  # observed 0.2 s -> coasts 0.1 s at most
    assert [len(t) for t in out[3:]] == [1, 0, 0, 0]


def test_coasting_rows_carry_blank_keypoints_masks_and_polygons():
    n_kpt = 17
    extra = {"keypoints": np.full((1, n_kpt, 3), 5.0, np.float32), "masks": np.ones((1, 8, 8), bool),
             "mask_polygons": (np.array([[0, 0], [4, 0], [4, 4]], np.float32),)}
    trk = Tracker(TrackerConfig(output_unmatched_seconds=0.5))
    two = {"keypoints": np.repeat(extra["keypoints"], 2, axis=0), "masks": np.repeat(extra["masks"], 2, axis=0),
           "mask_polygons": extra["mask_polygons"] * 2}
    frames = [dets([box(100 + 5 * i, 200), box(400, 200 + 5 * i)], **two) for i in range(10)]
    frames.append(dets([box(400, 250)], **extra))  # the first object is missed
    out = [trk.update(f, timestamp=i / FPS) for i, f in enumerate(frames)]
    last = out[-1]
    assert last.track_id.tolist() == [1, 2] and last.matched.tolist() == [False, True]
    assert np.isfinite(last.keypoints).all()
    assert (last.keypoints[0] == 0).all() and (last.keypoints[1] == 5.0).all()
    assert not last.masks[0].any() and last.masks[1].all()
    assert last.mask_polygons[0].shape == (0, 2) and last.mask_polygons[1].shape == (3, 2)


@pytest.mark.parametrize("value", [-0.1, "0.5"])
def test_bad_output_unmatched_seconds_is_rejected(value):
    from tracker.configutil import ConfigError

    with pytest.raises(ConfigError, match="output_unmatched_seconds"):
        TrackerConfig.from_dict({"output_unmatched_seconds": value})

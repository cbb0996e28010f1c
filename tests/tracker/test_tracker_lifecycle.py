"""What a user of Tracker.update notices: IDs appear after the confirmation delay, stay stable along paths
and through short occlusions, end after the lost buffer (in seconds), and map back to the input rows."""

from __future__ import annotations

import numpy as np
import pytest
from tracker_scenes import box, dets

from tracker import Detections, Tracker, TrackerConfig, TrackState


def run(tracker: Tracker, frames: list[Detections], fps: float = 30.0, t0: float = 0.0) -> list:
    return [tracker.update(d, timestamp=t0 + i / fps) for i, d in enumerate(frames)]


@pytest.mark.parametrize("hits", [1, 2, 3, 5])
def test_track_is_reported_after_the_configured_number_of_hits(hits):
    trk = Tracker(TrackerConfig(confirmation_hits=hits))
    out = run(trk, [dets([box(100 + 3 * i, 200)]) for i in range(8)])
    first = next(i for i, t in enumerate(out) if len(t))
    assert first == hits - 1
    assert all(t.track_id.tolist() == [1] for t in out[first:])
    assert all(t.state.tolist() == [int(TrackState.CONFIRMED)] for t in out[first:])


def test_single_frame_false_positive_never_becomes_a_track():
    trk = Tracker()
    frames = [dets([box(100, 100)])] + [Detections.empty()] * 5
    assert all(len(t) == 0 for t in run(trk, frames))
    assert trk.track_count == 0


def test_id_is_stable_along_a_straight_path_and_velocity_is_in_pixels_per_second():
    trk = Tracker()
    out = run(trk, [dets([box(50 + 4 * i, 300 - 2 * i)]) for i in range(60)])
    ids = {int(t.track_id[0]) for t in out if len(t)}
    assert ids == {1}
    np.testing.assert_allclose(out[-1].velocity[0], [120.0, -60.0], rtol=0.05)
    path = out[-1].predicted_path[0]
    assert path.shape == (TrackerConfig().path_points, 2)
    centre = out[-1].xyxy[0].reshape(2, 2).mean(axis=0)
    np.testing.assert_allclose(path[-1], centre + [120.0, -60.0], atol=6.0)  # 1 s horizon


def test_id_survives_a_one_second_occlusion():
    trk = Tracker()
    frames = []
    for i in range(120):
        hidden = 40 <= i < 70  # 30 frames = 1 s at 30 fps
        frames.append(Detections.empty() if hidden else dets([box(100 + 3 * i, 240)]))
    out = run(trk, frames)
    assert [len(t) for t in out[40:70]] == [0] * 30
    assert {int(t.track_id[0]) for t in out if len(t)} == {1}


def test_two_crossing_objects_keep_their_ids():
    trk = Tracker()
    frames = [dets([box(100 + 5 * i, 200), box(500 - 5 * i, 215)]) for i in range(80)]
    out = run(trk, frames)
    for t in out[5:]:
        by_det = dict(zip(t.det_index.tolist(), t.track_id.tolist()))
        assert by_det == {0: 1, 1: 2}


def test_lost_track_is_removed_after_the_buffer_in_seconds_whatever_the_frame_rate():
    for fps in (5.0, 30.0, 60.0):
        trk = Tracker(TrackerConfig(lost_track_buffer_seconds=2.0))
        run(trk, [dets([box(100, 100)]) for _ in range(5)], fps=fps)
        last_seen = 4 / fps
        assert len(trk.update(Detections.empty(), timestamp=last_seen + 1.9).removed_ids) == 0
        assert trk.track_count == 1
        removed = trk.update(Detections.empty(), timestamp=last_seen + 2.1).removed_ids
        assert removed.tolist() == [1] and trk.track_count == 0


def test_frame_rate_is_the_clock_when_no_timestamp_is_given():
    trk = Tracker(TrackerConfig(frame_rate=10.0, lost_track_buffer_seconds=1.0))
    for _ in range(3):
        trk.update(dets([box(100, 100)]))
    removed_at = next(i for i in range(1, 30) if len(trk.update(Detections.empty()).removed_ids))
    assert removed_at == 11  # > 1.0 s after the last detection at 10 frames per second


def test_empty_frames_before_during_and_after_tracking():
    trk = Tracker()
    assert len(trk.update(Detections.empty())) == 0
    out = run(trk, [Detections.empty(), dets([box(50, 50)]), dets([box(52, 50)]), Detections.empty()])
    assert [len(t) for t in out] == [0, 0, 1, 0]
    assert out[-1].predicted_path.shape == (0, TrackerConfig().path_points, 2)


def test_det_index_maps_each_track_to_its_input_row_whatever_the_order():
    rng = np.random.default_rng(3)
    centres = [(100, 100), (300, 100), (500, 100), (100, 400), (300, 400)]
    trk = Tracker()
    for i in range(20):
        order = rng.permutation(len(centres))
        boxes = [box(centres[k][0] + 2 * i, centres[k][1]) for k in order]
        d = dets(boxes, det_index=(order * 10 + 7).tolist())
        out = trk.update(d, timestamp=i / 30)
    for row in range(len(out)):
        original = (int(out.det_index[row]) - 7) // 10
        centre = out.xyxy[row].reshape(2, 2).mean(axis=0)
        np.testing.assert_allclose(centre, [centres[original][0] + 38, centres[original][1]], atol=1e-3)
    assert sorted(out.det_index.tolist()) == sorted((np.arange(5) * 10 + 7).tolist())


def test_class_is_the_majority_vote_and_per_class_matching_keeps_classes_apart():
    for classes, majority in (([3, 3, 3, 7, 3, 7, 3, 3], 3), ([7, 7, 3, 3, 7, 1, 7, 7], 7)):
        trk = Tracker()
        out = [trk.update(dets([box(100 + i, 100)], cls=c), timestamp=i / 30) for i, c in enumerate(classes)]
        assert [t.class_id.tolist() for t in out[2:]] == [[majority]] * 6
    strict = Tracker(TrackerConfig(per_class_matching=True))
    ids = [strict.update(dets([box(100, 100)], cls=c), timestamp=i / 30).track_id.tolist()
           for i, c in enumerate([1, 1, 1, 2, 2, 2])]
    assert ids[2] == [1] and ids[5] == [2]


def test_keypoints_and_masks_of_the_matched_detection_are_carried():
    trk = Tracker()
    for i in range(3):
        kpts = np.full((2, 17, 3), i, np.float32)
        kpts[1] += 100
        masks = np.zeros((2, 16, 16), bool)
        masks[1, :4] = True
        polys = (np.zeros((3, 2)), np.full((4, 2), float(i)))
        d = dets([box(100, 100), box(300, 100)], conf=[0.9, 0.9], keypoints=kpts, masks=masks,
                 mask_polygons=polys)
        out = trk.update(d[np.array([1, 0])], timestamp=i / 30)  # reordered input rows
    row = out.det_index.tolist().index(1)
    np.testing.assert_array_equal(out.keypoints[row], kpts[1])
    np.testing.assert_array_equal(out.masks[row], masks[1])
    np.testing.assert_array_equal(out.mask_polygons[row], polys[1])


def test_each_tracker_counts_its_own_ids():
    a, b = Tracker(), Tracker()
    for i in range(3):
        a.update(dets([box(100, 100), box(300, 300)]), timestamp=i / 30)
    out_b = [b.update(dets([box(50, 50)]), timestamp=i / 30) for i in range(3)]
    assert out_b[-1].track_id.tolist() == [1]


def test_low_confidence_detections_continue_but_never_start_tracks():
    trk = Tracker()
    assert all(len(trk.update(dets([box(100, 100)], conf=0.3), timestamp=i / 30)) == 0 for i in range(5))
    run(trk, [dets([box(300, 100)], conf=0.9) for _ in range(3)], t0=1.0)
    cont = trk.update(dets([box(300, 100)], conf=0.3), timestamp=1.2)
    assert cont.track_id.tolist() == [1] and cont.confidence.tolist() == pytest.approx([0.3])


@pytest.mark.parametrize("detections, timestamp, error, message", [
    ([[0, 0, 1, 1]], None, TypeError, "detections must be tracker.Detections"),
    (None, float("nan"), ValueError, "timestamp must be finite"),
    (None, "soon", ValueError, "timestamp must be a number"),
])
def test_bad_update_arguments_are_rejected(detections, timestamp, error, message):
    trk = Tracker()
    with pytest.raises(error, match=message):
        trk.update(Detections.empty() if detections is None else detections, timestamp=timestamp)


def test_memory_stays_bounded_over_many_frames_with_churn():
    rng = np.random.default_rng(5)
    cfg = TrackerConfig(lost_track_buffer_seconds=1.0)
    trk = Tracker(cfg)
    objects: dict[int, list[float]] = {}
    sizes = []
    next_key = 0
    for i in range(1200):
        if rng.random() < 0.5:  # an object enters
            objects[next_key] = [*rng.uniform(0, 2000, 2), *rng.normal(0, 60, 2)]
            next_key += 1
        for key in [k for k in objects if rng.random() < 0.02]:  # objects leave
            del objects[key]
        for o in objects.values():
            o[0] += o[2] / 30
            o[1] += o[3] / 30
        boxes = [box(o[0], o[1]) for o in objects.values() if rng.random() > 0.1]
        trk.update(dets(boxes), timestamp=i / 30)
        sizes.append(trk.track_count)
    assert next_key > 500  # plenty of tracks were born and died
    # live tracks = visible objects + those that left within the last second: flat, not growing with time
    assert max(sizes[400:]) <= 80
    assert np.mean(sizes[800:]) <= 1.5 * np.mean(sizes[400:800])


@pytest.mark.parametrize("recovery_gate, keeps_id", [(0.0, True), (0.9, False)])
def test_fast_object_that_jumps_past_its_predicted_box_keeps_its_id(recovery_gate, keeps_id):
    """At 5 fps a car speeds up so much that its next box no longer overlaps the prediction."""
    trk = Tracker(TrackerConfig(recovery_minimum_giou=recovery_gate))
    x, frames = 100.0, []
    for i in range(16):
        x += 15.0 if i < 10 else 80.0  # px per frame; the box is 40 px wide
        frames.append(dets([box(x, 200)]))
    out = run(trk, frames, fps=5.0)
    followed = [t.track_id.tolist() for t in out[1:]] == [[1]] * 15
    assert followed == keeps_id


def test_timestamps_that_go_backwards_count_as_no_time_passing():
    trk = Tracker(TrackerConfig(lost_track_buffer_seconds=1.0))
    for i in range(3):
        trk.update(dets([box(100, 100)]), timestamp=100.0 + i / 30)
    trk.update(Detections.empty(), timestamp=5.0)  # e.g. a camera whose clock was reset
    assert trk.track_count == 1
    assert trk.update(dets([box(100, 100)]), timestamp=5.5).track_id.tolist() == [1]
    trk.update(Detections.empty(), timestamp=6.0)
    assert trk.update(Detections.empty(), timestamp=6.6).removed_ids.tolist() == [1]


def test_after_an_occlusion_the_id_goes_to_the_object_of_its_size_not_a_smaller_one_in_its_place():
    trk = Tracker()
    frames = [dets([box(200, 200)])] * 10 + [Detections.empty()] * 10
    # back: the same person a little to the right (IoU 0.54 with the hidden track), and a smaller object
    # right where the track was (IoU 0.6) -- overlap alone would give the ID to the smaller one
    frames.append(dets([box(200, 200, 40, 60), box(212, 200)]))
    out = run(trk, frames)
    back = out[-1]
    assert dict(zip(back.track_id.tolist(), back.det_index.tolist())).get(1) == 1


@pytest.mark.parametrize("gate, handed_over", [(0.0, True), (0.6, False)])
def test_a_person_leaving_at_the_edge_does_not_hand_the_id_to_a_shorter_one_behind(gate, handed_over):
    # people-walking at 25 fps (frames 130-144): a person close to the camera walks out at the right edge of
    # the 1280x720 picture (a box 140 px wide, cut by the top and bottom edges); as the detector stops finding
    # them, someone further back, half their height and inside their box, is found (IoU 0.4 with their track)
    trk = Tracker(TrackerConfig(minimum_height_ratio=gate))
    near = [dets([[1100.0 + 2 * i, 0, 1240 + 2 * i, 718]]) for i in range(15)]
    behind = [dets([[1159.0, 245, 1273, 616]])] * 5
    out = run(trk, near + behind, fps=25.0)
    assert out[14].track_id.tolist() == [1]
    assert (1 in out[-1].track_id.tolist()) == handed_over
    if not handed_over:  # the one behind gets an id of its own, once confirmed
        assert out[-1].track_id.tolist() == [2]
        assert out[-1].xyxy[0].tolist() == pytest.approx([1159, 245, 1273, 616])


def test_the_height_gate_is_on_by_default():
    assert TrackerConfig().minimum_height_ratio == 0.6

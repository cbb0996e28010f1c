"""``Tracker.predict``: a frame the detector skipped (``detector.schedule``) moves every track by its motion
model; it is not a miss, so IDs, hits and states survive the gap, while ``update`` with no detections (the
detector looked and found nothing) loses them."""

from __future__ import annotations

import numpy as np
import pytest
from tracker_scenes import box, dets

from tracker import Detections, Tracker, TrackerConfig, TrackState

FPS = 25.0


def two_walkers(i: int) -> Detections:
    """Two people 150 px apart, one walking right at 100 px/s, one left at 75 px/s."""
    return dets([box(100 + 4 * i, 200), box(600 - 3 * i, 200)])


def run(trk: Tracker, frames: int, detected: list[bool]) -> list:
    out = []
    for i in range(frames):
        stamp = i / FPS
        out.append(trk.update(two_walkers(i), stamp) if detected[i] else trk.predict(stamp))
    return out


def test_tracks_predicted_between_every_fifth_detection_keep_their_ids_and_follow_the_walkers():
    out = run(Tracker(), 100, [i % 5 == 0 for i in range(100)])
    ids = {tuple(t.track_id.tolist()) for t in out[10:]}
    assert ids == {(1, 2)}  # both reported on every frame, detected or not, with the same two IDs
    for i, t in enumerate(out[30:], start=30):  # once the velocity has settled
        detected = i % 5 == 0
        assert t.matched.all() == detected and (t.det_index >= 0).all() == detected
        assert t.state.tolist() == [int(TrackState.CONFIRMED)] * 2
        truth = np.array([box(100 + 4 * i, 200), box(600 - 3 * i, 200)])
        np.testing.assert_allclose(t.xyxy, truth, atol=3.0)  # predicted boxes stay on the walkers
        if not detected:
            assert t.confidence.tolist() == [0.0, 0.0]


def test_a_skipped_frame_is_not_a_miss_but_an_empty_detection_is():
    skipped, empty = Tracker(), Tracker()
    seen = [True] * 10 + [False] * 10
    for trk, step in ((skipped, "predict"), (empty, "update")):
        for i in range(20):
            if seen[i]:
                trk.update(two_walkers(i), i / FPS)
            elif step == "predict":
                last = trk.predict(i / FPS)
            else:
                last = trk.update(Detections.empty(), i / FPS)
    assert last.track_id.tolist() == []  # the detector saw nothing: both lost, nothing reported
    assert empty.pending() == (0, 2)
    predicted = skipped.predict(20 / FPS)
    assert predicted.track_id.tolist() == [1, 2] and skipped.pending() == (0, 0)
    back = skipped.update(two_walkers(21), 21 / FPS)
    assert back.track_id.tolist() == [1, 2] and back.matched.all()


def test_lost_tracks_still_expire_in_time_while_frames_are_skipped():
    trk = Tracker(TrackerConfig(lost_track_buffer_seconds=1.0))
    for i in range(10):
        trk.update(two_walkers(i), i / FPS)
    trk.update(Detections.empty(), 10 / FPS)  # the detector looked: both lost
    removed: list[int] = []
    for i in range(11, 11 + 30):
        removed += trk.predict(i / FPS).removed_ids.tolist()
    assert sorted(removed) == [1, 2] and trk.track_count == 0


def test_predict_on_an_empty_tracker_and_the_snapshot_round_trip_of_a_predicted_state():
    trk = Tracker()
    assert len(trk.predict(0.0)) == 0
    for i in range(1, 8):
        trk.update(two_walkers(i), i / FPS)
    trk.predict(8 / FPS)
    copy = Tracker()
    copy.load_state_dict(trk.state_dict())
    a, b = trk.predict(9 / FPS), copy.predict(9 / FPS)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    assert a.track_id.tolist() == b.track_id.tolist() == [1, 2]


def test_velocity_spread_is_large_for_a_young_track_and_shrinks_as_it_is_followed():
    trk = Tracker(TrackerConfig(confirmation_hits=1))
    spreads = []
    for i in range(30):
        trk.update(two_walkers(i), i / FPS)
        ids, spread = trk.velocity_spread()
        assert ids.tolist() == [1, 2]
        spreads.append(float(spread.max()))
    assert spreads[0] > 2 * spreads[-1] and all(a >= b - 1e-9 for a, b in zip(spreads, spreads[1:]))
    trk.predict(30 / FPS)  # without a detection it grows again
    assert float(trk.velocity_spread()[1].max()) > spreads[-1]


def test_forecast_looks_ahead_along_the_walk_without_moving_the_tracker():
    trk = Tracker(TrackerConfig(confirmation_hits=1))
    for i in range(30):
        trk.update(two_walkers(i), i / FPS)
    before = trk.state_dict()
    ids, now, now_cov = trk.forecast(0.0)
    ids_ahead, ahead, cov = trk.forecast(1.0)
    assert ids.tolist() == ids_ahead.tolist() == [1, 2]
    np.testing.assert_allclose(now[:, 4], [100.0, -75.0], rtol=0.05)          # px/s, as they walk
    np.testing.assert_allclose(ahead[:, 0], now[:, 0] + now[:, 4], atol=1e-9)  # one second further
    assert np.all(cov[:, 0, 0] > now_cov[:, 0, 0])                            # less sure further ahead
    assert trk.state_dict() == before                                         # nothing moved
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        trk.forecast(-1.0)

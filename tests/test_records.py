"""The per-frame record says which boxes were detected and which the tracker only predicted."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from pipelines.frames import FrameResult, VideoFrame
from pipelines.sinks.records import frame_record, frame_schema
from tracker import Detections, Tracker, TrackerConfig


def _records(output_unmatched_seconds: float, keypoints: bool) -> list[dict]:
    """A person walks right for 10 frames, is missed for 3 frames, then seen again (25 fps)."""
    tracker = Tracker(TrackerConfig(output_unmatched_seconds=output_unmatched_seconds))
    image = np.zeros((240, 320, 3), np.uint8)
    out = []
    for i in range(16):
        seen = not 10 <= i < 13
        box = np.array([[20 + 4 * i, 60, 60 + 4 * i, 180]], np.float32)
        kpts = np.tile(np.array([[40 + 4 * i, 100, 0.9]], np.float32), (1, 17, 1)) if keypoints else None
        dets = Detections(box, [0.9], [0], keypoints=kpts) if seen else Detections.empty()
        tracks = tracker.update(dets, timestamp=i / 25)
        frame = VideoFrame(image, i, i / 25, "walk", 0.0)
        out.append(frame_record(FrameResult(frame, dets, tracks, {0: "person"})))
    return out


@pytest.mark.parametrize("keypoints", [False, True])
def test_coasting_rows_are_marked_predicted_and_validate(keypoints):
    records = _records(0.5, keypoints)
    validator = jsonschema.Draft202012Validator(frame_schema())
    for rec in records:
        validator.validate(rec)
    missed = [rec["tracks"] for rec in records[10:13]]
    assert all(len(t) == 1 and t[0].get("predicted") is True and t[0]["confidence"] == 0 for t in missed)
    ids = {t["id"] for rec in records for t in rec["tracks"]}
    assert len(ids) == 1, "the person keeps one id through the short miss"
    detected = [t for rec in records[:10] + records[13:] for t in rec["tracks"]]
    assert detected and all("predicted" not in t for t in detected)


def test_default_config_reports_only_detected_rows():
    records = _records(0.0, False)
    assert all(rec["tracks"] == [] for rec in records[10:13])
    assert all("predicted" not in t for rec in records for t in rec["tracks"])


def test_events_treat_predicted_rows_as_lost_and_recovered():
    from pipelines.processing.events import EventGenerator

    tracker = Tracker(TrackerConfig(output_unmatched_seconds=0.5))
    events = EventGenerator("walk")
    names = []
    image = np.zeros((240, 320, 3), np.uint8)
    for i in range(16):
        box = np.array([[20 + 4 * i, 60, 60 + 4 * i, 180]], np.float32)
        dets = Detections(box, [0.9], [0]) if not 10 <= i < 13 else Detections.empty()
        tracks = tracker.update(dets, timestamp=i / 25)
        result = FrameResult(VideoFrame(image, i, i / 25, "walk", 0.0), dets, tracks, {0: "person"})
        names += [(i, e["event"]) for e in events.update(result)]
    names += [(16, e["event"]) for e in events.close()]
    assert names == [(1, "track_started"), (10, "track_lost"), (13, "track_recovered"), (16, "track_ended")]


def test_numpy_valued_record_writes_the_same_json_as_the_plain_one():
    """The Redis sink builds records with numpy rows for speed; the published JSON must not change."""
    import json

    from pipelines.sinks.redis_publisher import _dumps

    tracker = Tracker(TrackerConfig(output_unmatched_seconds=0.5))
    image = np.zeros((240, 320, 3), np.uint8)
    checked = 0
    for i in range(14):
        box = np.array([[20 + 4.123 * i, 60.456, 60 + 4 * i, 180.789]], np.float32)
        kpts = np.tile(np.array([[40.111 + 4 * i, 100.999, 0.87654]], np.float32), (1, 17, 1))
        polygon = (np.array([[21.26, 61.0], [59.94, 61.5], [40.05, 179.33]], np.float32),)
        dets = Detections(box, [0.91234], [0], keypoints=kpts, mask_polygons=polygon) if i < 11 \
            else Detections.empty()
        tracks = tracker.update(dets, timestamp=i / 25)
        result = FrameResult(VideoFrame(image, i, i / 25, "walk", 1.5), dets, tracks, {0: "person"})
        plain = frame_record(result, with_times=True)
        fast = _dumps(frame_record(result, with_times=True, numpy_values=True))
        assert json.loads(fast) == plain
        assert fast == json.dumps(plain, separators=(",", ":")).encode()
        checked += len(plain["tracks"])
    assert checked >= 10

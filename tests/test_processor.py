"""The per-camera StreamProcessor: one output value per frame, and a whole-camera snapshot that continues
exactly where it stopped (same IDs, no second track_started, same zone and line counts)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.processing.processor import StateError, StreamProcessor
from pipelines.processing.zones import LineConfig, LineCounter, ZoneConfig
from pipelines.settings import SourceSettings
from tracker.types import Detections

CLASSES = {0: "person", 2: "car"}
IMAGE = np.zeros((240, 320, 3), np.uint8)
LINE = LineConfig("gate", ((160.0, 0.0), (160.0, 240.0)))
ZONE = ZoneConfig("right", ((170.0, 0.0), (320.0, 0.0), (320.0, 240.0), (170.0, 240.0)))


def settings(url: str = "clip.mp4") -> SourceSettings:
    return SourceSettings(url, zones=(ZONE,), lines=(LINE,))


def scene(n: int = 60) -> list[tuple[VideoFrame, Detections]]:
    """Two objects walking right across the line at x=160, 25 fps; the second appears at frame 10."""
    out = []
    for i in range(n):
        boxes = [[20 + 4 * i, 100, 50 + 4 * i, 160]]
        if i >= 10:
            boxes.append([10 + 3 * (i - 10), 20, 40 + 3 * (i - 10), 80])
        xyxy = np.asarray(boxes, np.float32)
        dets = Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.zeros(len(xyxy), np.int64))
        out.append((VideoFrame(IMAGE, i, i / 25.0, "clip", 1000.0 + i / 25.0), dets))
    return out


def run(proc: StreamProcessor, frames) -> list[dict]:  # type: ignore[no-untyped-def]
    events: list[dict] = []
    for frame, dets in frames:
        events.extend(proc.process(frame, dets).events)
    return events


def strip_time(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "time"} for e in events]


def test_one_output_value_carries_tracks_events_trails_and_counts():
    proc = StreamProcessor(settings(), CLASSES)
    outputs = [proc.process(f, d) for f, d in scene(60)]
    started = [e for o in outputs for e in o.events if e["event"] == "track_started"]
    crossed = [e for o in outputs for e in o.events if e["event"] == "line_crossed"]
    assert len(started) == 2 and len(crossed) == 2
    assert all(e["direction"] == "right_to_left" for e in crossed)  # the line points down the screen
    last = outputs[-1]
    assert last.counts is not None and last.counts.lines["gate"].right_to_left == 2
    assert last.counts.zones["right"].entries >= 1
    assert last.trails and all(p.shape[1] == 2 and len(p) >= 2 for p in last.trails.values())


@pytest.mark.parametrize("split", [1, 17, 30, 45])
def test_snapshot_through_json_continues_as_if_never_stopped(split):
    frames = scene(60)
    unbroken = StreamProcessor(settings(), CLASSES, persistent=True)
    expected = run(unbroken, frames)

    first = StreamProcessor(settings(), CLASSES, persistent=True)
    before = run(first, frames[:split])
    state = json.loads(json.dumps(first.state_dict()))
    second = StreamProcessor(settings(), CLASSES, persistent=True)
    second.load_state_dict(state)
    after = run(second, frames[split:])
    assert strip_time(before + after) == strip_time(expected)
    assert second.counts() == unbroken.counts()


def test_restored_file_announces_no_second_start_and_a_user_stop_ends_no_track():
    proc = StreamProcessor(settings(), CLASSES, persistent=True)
    run(proc, scene(20))
    stopped = proc.status(StreamStatus(StatusKind.ENDED, "clip", time.time(), detail={"stopped": True}))
    assert stopped.events == () and proc.close() == []      # suspended: the next run continues the tracks
    again = StreamProcessor(settings(), CLASSES, persistent=True)
    again.load_state_dict(json.loads(json.dumps(proc.state_dict())))
    assert again.status(StreamStatus(StatusKind.STARTED, "clip", time.time())).events == ()
    ended = again.status(StreamStatus(StatusKind.ENDED, "clip", time.time(), detail={"stopped": False}))
    names = [e["event"] for e in ended.events]
    assert names.count("track_ended") == 2 and names[-1] == "stream_ended"


def test_restored_camera_reports_resumed_and_its_clock_counts_the_outage():
    live = SourceSettings("rtsp://127.0.0.1:1/cam", id="cam", zones=(ZONE,), lines=(LINE,))
    proc = StreamProcessor(live, CLASSES, persistent=True)
    frames = [(VideoFrame(f.image, f.index, f.pts, "cam", f.capture_time), d) for f, d in scene(30)]
    run(proc, frames[:20])
    state = json.loads(json.dumps(proc.state_dict()))
    restarted = StreamProcessor(live, CLASSES, persistent=True)
    restarted.load_state_dict(state)
    status = restarted.status(StreamStatus(StatusKind.STARTED, "cam", 1000.0 + 19 / 25 + 1.5))
    assert [e["event"] for e in status.events] == ["stream_resumed"]
    assert status.events[0]["detail"]["gap_seconds"] == pytest.approx(1.5, abs=0.01)
    # the new connection's clock starts at 0 again; the processor places it after the outage
    frame, dets = frames[20]
    out = restarted.process(VideoFrame(frame.image, 0, 0.0, "cam", 1000.0 + 19 / 25 + 1.6), dets)
    assert out.frame.pts == pytest.approx(19 / 25 + 1.6, abs=1e-3)
    assert not [e for e in out.events if e["event"] == "track_started"]  # same ids continue


@pytest.mark.parametrize("mutate, message", [
    (lambda s: {**s, "format": "other"}, "not a trackstream processor state"),
    (lambda s: {**s, "version": 99}, "version 99"),
    (lambda s: {**s, "source_id": "elsewhere"}, "of source 'elsewhere'"),
    (lambda s: {k: v for k, v in s.items() if k != "events"}, "missing key 'events'"),
    (lambda s: {**s, "events": {**s["events"], "known": [["x", {}]]}}, "malformed"),
    (lambda s: {**s, "tracker": {"format": "nope"}}, "malformed"),
])
def test_malformed_state_is_rejected_with_one_line_and_changes_nothing(mutate, message):
    proc = StreamProcessor(settings(), CLASSES)
    run(proc, scene(15))
    good = json.loads(json.dumps(proc.state_dict()))
    fresh = StreamProcessor(settings(), CLASSES)
    with pytest.raises(StateError) as info:
        fresh.load_state_dict(mutate(good))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert fresh.frames_processed == 0 and not fresh.restored


def test_a_car_first_seen_on_the_line_and_driving_off_is_counted():
    """Found on a highway clip: a car detected first inside the line's 2 px dead band was never counted."""
    counter = LineCounter(LineConfig("road", ((0.0, 100.0), (200.0, 100.0))), min_frames=2, dead_band=2.0)
    crossings = []
    for y in (100.5, 104.0, 110.0, 118.0):          # first observed on the line, then drives down (right side)
        crossings += counter.update([7], np.array([[50.0, y]]))
    assert [(tid, sign) for tid, sign, _ in crossings] == [(7, 1)]
    assert counter.left_to_right == 1 and counter.right_to_left == 0
    beside = LineCounter(LineConfig("road", ((0.0, 100.0), (200.0, 100.0))), min_frames=2, dead_band=2.0)
    for y in (100.5, 104.0, 110.0):                  # on the line's extension, past its end: no crossing
        assert beside.update([8], np.array([[260.0, y]])) == []


def test_counts_per_class_when_asked_and_kept_by_the_snapshot():
    """events.count_by_class: a car and a person crossing the same line are counted apart."""
    import dataclasses

    from pipelines.processing.zones import EventsConfig

    per_class = dataclasses.replace(settings(), events=EventsConfig(count_by_class=True))
    frames = []
    for frame, dets in scene(60):   # the second object is a car
        cls = np.array([0, 2][: len(dets)], np.int64)
        frames.append((frame, Detections(dets.xyxy, dets.confidence, cls)))
    proc = StreamProcessor(per_class, CLASSES, persistent=True)
    run(proc, frames[:30])
    restored = StreamProcessor(per_class, CLASSES, persistent=True)
    restored.load_state_dict(json.loads(json.dumps(proc.state_dict())))
    run(restored, frames[30:])
    gate = restored.counts().lines["gate"]
    assert gate.right_to_left == 2
    assert {k: v.right_to_left for k, v in gate.by_class.items()} == {"car": 1, "person": 1}
    zone = restored.counts().zones["right"]
    assert sum(c.entries for c in zone.by_class.values()) == zone.entries
    assert StreamProcessor(settings(), CLASSES).counts().lines["gate"].by_class is None   # off by default


def test_mqtt_payloads_with_counts_per_class_match_their_schemas():
    import jsonschema

    from pipelines.frames import LineCount, ZoneCount
    from pipelines.sinks.mqtt_topics import line_doc, zone_doc
    from tests.conftest import REPO

    frame, dets = scene(1)[0]
    result = StreamProcessor(settings(), CLASSES).process(frame, dets)
    zone = zone_doc("clip", "right", ZoneCount(1, 2, 1, {"car": ZoneCount(1, 1, 0), "person": ZoneCount(0, 1, 1)}),
                    result)
    line = line_doc("clip", "gate", LineCount(3, 1, {"car": LineCount(3, 1)}), result)
    for doc, name in ((zone, "mqtt_zone"), (line, "mqtt_line")):
        schema = json.loads((REPO / "pipelines" / "schemas" / f"{name}.schema.json").read_text())
        jsonschema.validate(doc, schema)
    assert line["by_class"]["car"]["total"] == 4 and zone["by_class"]["person"]["exits"] == 1

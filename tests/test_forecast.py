"""Warnings before a predicted crossing: a person walking at constant speed towards a line gets a
``crossing_predicted`` before the ``line_crossed``; one who turns away gets it cancelled. Real tracker, real
``StreamProcessor``; detections are synthetic boxes (a detector's, with jitter)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import build_config
from pipelines.frames import VideoFrame
from pipelines.processing.processor import StreamProcessor
from pipelines.processing.zones import LineConfig, ZoneConfig
from pipelines.settings import SourceSettings
from tests.analytics_scenes import validator
from tracker.types import Detections

FPS = 10.0
IMAGE = np.zeros((480, 640, 3), np.uint8)
GATE = LineConfig("gate", ((300.0, 480.0), (300.0, 0.0)), predict_seconds=2.0, predict_min_probability=0.6)
SHOP = ZoneConfig("shop", ((300.0, 0.0), (640.0, 0.0), (640.0, 480.0), (300.0, 480.0)), predict_seconds=2.0)


def _walk(feet: list[tuple[float, float]], seed: int = 0) -> list[tuple[VideoFrame, Detections]]:
    """A 40 x 80 px person whose feet (box bottom centre) follow ``feet``, one point per frame, with 1 px
    detector jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (x, y) in enumerate(feet):
        box = np.array([[x - 20, y - 80, x + 20, y]]) + rng.normal(0, 1.0, (1, 4))
        out.append((VideoFrame(IMAGE, i, i / FPS, "cam", 1000.0 + i / FPS),
                    Detections(box.astype(np.float32), np.full(1, 0.9, np.float32), np.zeros(1, np.int64))))
    return out


def _events(frames: list[tuple[VideoFrame, Detections]], **settings) -> list[dict]:  # type: ignore[no-untyped-def]
    proc = StreamProcessor(SourceSettings("cam.mp4", **settings), {0: "person"})
    events: list[dict] = []  # type: ignore[type-arg]
    for frame, dets in frames:
        events += proc.process(frame, dets).events
    return events


def _first(events: list[dict], name: str) -> dict:  # type: ignore[type-arg]
    return next(e for e in events if e["event"] == name)


def test_a_walker_is_announced_before_the_crossing_with_the_time_it_takes():
    # 60 px/s to the right, from x = 100: the feet reach the gate (x = 300) after 3.33 s (frame 33)
    frames = _walk([(100.0 + 6.0 * i, 400.0) for i in range(50)])
    events = _events(frames, lines=(GATE,))
    warned, crossed = _first(events, "crossing_predicted"), _first(events, "line_crossed")
    assert warned["direction"] == crossed["direction"] == "left_to_right"
    lead = crossed["pts"] - warned["pts"]
    assert 1.0 <= lead <= 2.4, (warned, crossed)                      # within the 2 s horizon (+ hysteresis)
    expected = (300.0 - warned["point"][0]) / 60.0                    # what constant speed says
    assert warned["seconds_to_cross"] == pytest.approx(expected, abs=0.25)
    assert 0.6 <= warned["probability"] <= 1.0 and warned["horizon_seconds"] == 2.0
    assert warned["predicted_point"][0] == pytest.approx(300.0, abs=1.0)
    assert sum(e["event"] == "crossing_predicted" for e in events) == 1            # once per track and line
    assert not any(e["event"] == "crossing_prediction_cancelled" for e in events)  # it came true


def test_a_walker_who_turns_away_gets_the_warning_cancelled():
    towards = [(100.0 + 6.0 * i, 400.0) for i in range(25)]              # x = 244 at frame 24: warned
    x = towards[-1][0]
    away = [(x - 6.0 * i, 400.0) for i in range(1, 30)]                  # back the way they came
    events = _events(_walk(towards + away), lines=(GATE,))
    warned, cancelled = _first(events, "crossing_predicted"), _first(events, "crossing_prediction_cancelled")
    assert warned["pts"] < 2.5 < cancelled["pts"] < 3.5                   # soon after turning at 2.4 s
    assert cancelled["reason"] == "unlikely" and cancelled["direction"] == "left_to_right"
    assert cancelled["track"]["id"] == warned["track"]["id"]
    assert not any(e["event"] == "line_crossed" for e in events)
    assert sum(e["event"] == "crossing_predicted" for e in events) == 1


def test_a_walker_who_stops_short_is_cancelled_and_one_walking_along_is_never_warned():
    stop = [(100.0 + 6.0 * i, 400.0) for i in range(25)] + [(244.0, 400.0)] * 30
    events = _events(_walk(stop), lines=(GATE,))
    assert _first(events, "crossing_prediction_cancelled")["reason"] == "unlikely"
    along = [(200.0, 50.0 + 6.0 * i) for i in range(60)]                 # parallel to the gate
    assert not any(e["event"].startswith("crossing_") for e in _events(_walk(along), lines=(GATE,)))


def test_zone_entry_is_predicted_then_entered_and_ending_cancels():
    frames = _walk([(100.0 + 6.0 * i, 400.0) for i in range(50)])
    events = _events(frames, zones=(SHOP,))
    warned, entered = _first(events, "zone_entry_predicted"), _first(events, "zone_entered")
    assert 1.0 <= entered["pts"] - warned["pts"] <= 2.4
    assert warned["zone"] == "shop" and 0.5 <= warned["probability"] <= 1.0
    # a stream that ends while a warning stands cancels it with the track
    proc = StreamProcessor(SourceSettings("cam.mp4", zones=(SHOP,)), {0: "person"})
    for frame, dets in frames[:25]:
        proc.process(frame, dets)
    ending = list(proc.close()) if hasattr(proc, "close") else []
    assert any(e["event"] == "zone_entry_prediction_cancelled" and e["reason"] == "track_ended" for e in ending)


def test_a_warned_walker_who_leaves_the_picture_unseen_is_cancelled_then_not_when_the_track_ends():
    # down the picture towards a kerb near its bottom edge at 60 px/s, unseen from y = 430 (frame 22) on:
    # carried on, the feet pass the picture's edge (y = 480) 0.8 s later; the tracker keeps the track for longer
    kerb = LineConfig("kerb", ((0.0, 460.0), (640.0, 460.0)), predict_seconds=2.0, predict_min_probability=0.6)
    seen = _walk([(320.0, 300.0 + 6.0 * i) for i in range(23)])
    empty = Detections.empty()
    unseen = [(VideoFrame(IMAGE, i, i / FPS, "cam", 1000.0 + i / FPS), empty) for i in range(23, 70)]
    events = _events(seen + unseen, lines=(kerb,))
    warned = _first(events, "crossing_predicted")
    cancelled = _first(events, "crossing_prediction_cancelled")
    assert warned["pts"] < 2.2 and cancelled["reason"] == "left_picture" and cancelled["point"] is None
    assert 2.2 + 0.8 <= cancelled["pts"] <= 2.2 + 1.2                  # as the carried-on feet leave the picture
    assert cancelled["track"]["id"] == warned["track"]["id"] and cancelled["direction"] == warned["direction"]
    ended = [e for e in events if e["event"] == "track_ended"]
    assert not ended or ended[0]["pts"] > cancelled["pts"]               # before the track ends, not with it
    assert sum(e["event"] == "crossing_prediction_cancelled" for e in events) == 1
    assert not any(e["event"] == "line_crossed" for e in events)       # no detected box crossed


def test_prediction_events_validate_against_the_event_schema():
    check = validator("event.schema.json")
    towards = [(100.0 + 6.0 * i, 400.0) for i in range(25)]
    away = [(244.0 - 6.0 * i, 400.0) for i in range(1, 30)]
    events = _events(_walk(towards + away), lines=(GATE,), zones=(SHOP,))
    names = {e["event"] for e in events}
    assert {"crossing_predicted", "crossing_prediction_cancelled", "zone_entry_predicted",
            "zone_entry_prediction_cancelled"} <= names
    for event in events:
        errors = sorted(check.iter_errors(event), key=str)
        assert not errors, (event, [e.message for e in errors])


@pytest.mark.parametrize("key, value, message", [
    ("predict_seconds", 0, "must be > 0"),
    ("predict_min_probability", 1.5, "must be <= 1.0"),
    ("predict_min_probability", 0, "must be > 0"),
])
def test_bad_prediction_settings_are_refused_naming_the_key(key, value, message):  # type: ignore[no-untyped-def]
    from tracker.configutil import ConfigError

    line = {"name": "gate", "points": [[0, 0], [10, 10]], key: value}
    with pytest.raises(ConfigError, match=f"lines\\[0\\]\\.{key}.*{message}"):
        build_config({"lines": [line]})


@pytest.mark.parametrize("section, item", [
    ("lines", {"name": "gate", "points": [[0, 0], [10, 10]]}),
    ("zones", {"name": "door", "polygon": [[0, 0], [10, 0], [10, 10]]}),
])
def test_a_minimum_probability_without_a_horizon_is_refused(section, item):  # type: ignore[no-untyped-def]
    """It was silently ignored: without predict_seconds no warning is ever made."""
    from tracker.configutil import ConfigError

    with pytest.raises(ConfigError, match=f"{section}\\[0\\]\\.predict_min_probability.*needs predict_seconds"):
        build_config({section: [{**item, "predict_min_probability": 0.7}]})
    config = build_config({section: [{**item, "predict_seconds": 2.0}]})
    assert getattr(config, section)[0].min_probability == 0.5        # the documented default


def test_the_documented_examples_validate_against_the_event_schema():
    import json
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "analytics.md").read_text()
    section = text[text.index("## Warnings before a predicted crossing"):]
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", section, re.S)]
    assert {e["event"] for e in examples} == {"crossing_predicted", "crossing_prediction_cancelled"}
    check = validator("event.schema.json")
    for example in examples:
        assert not list(check.iter_errors(example)), example


def test_prediction_events_reach_the_events_file(tmp_path):  # type: ignore[no-untyped-def]
    import json

    from pipelines.sinks.events_file import EventsFileSink

    proc = StreamProcessor(SourceSettings("cam.mp4", lines=(GATE,)), {0: "person"})
    sink = EventsFileSink(tmp_path / "events.jsonl")
    for frame, dets in _walk([(100.0 + 6.0 * i, 400.0) for i in range(50)]):
        sink.write(proc.process(frame, dets))
    sink.close()
    written = [json.loads(line)["event"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert written.index("crossing_predicted") < written.index("line_crossed")


def test_a_walker_along_the_zone_edge_is_announced_once_and_cancelled_once():
    # feet 492 +- 4 px (the zone's bottom edge is y = 480) walking left along it at 50 px/s: the mean path turns
    # towards the zone and away with each sway; an automation on zone_entry_predicted fired three times
    feet = [(620.0 - 5.0 * i, 492.0 + 4.0 * np.sin(2 * np.pi * i / 16)) for i in range(60)]
    events = _events(_walk(feet), zones=(SHOP,))
    warned = [e for e in events if e["event"] == "zone_entry_predicted"]
    cancelled = [e for e in events if e["event"] == "zone_entry_prediction_cancelled"]
    assert len(warned) == 1 and len(cancelled) == 1, [(e["event"], e["frame_index"]) for e in warned + cancelled]
    assert cancelled[0]["reason"] == "misses_line" and cancelled[0]["pts"] > warned[0]["pts"]
    # after a cancel, a walker who then heads for the gate is warned again as the crossing nears
    towards = [(100.0 + 6.0 * i, 400.0) for i in range(25)]              # warned, then cancelled turning back
    away = [(244.0 - 6.0 * i, 400.0) for i in range(1, 16)]
    again = [(154.0 + 6.0 * i, 400.0) for i in range(1, 40)]             # crosses x = 300 at frame 64
    events = _events(_walk(towards + away + again), lines=(GATE,))
    names = [e["event"] for e in events if e["event"].startswith(("crossing_", "line_"))]
    assert names == ["crossing_predicted", "crossing_prediction_cancelled", "crossing_predicted", "line_crossed"]
    second = [e for e in events if e["event"] == "crossing_predicted"][1]
    crossed = _first(events, "line_crossed")
    assert second["seconds_to_cross"] <= 1.0 <= crossed["pts"] - second["pts"] + 0.5   # half the 2 s horizon


@pytest.mark.slow
def test_walkers_along_the_docs_zone_on_the_street_video_are_not_warned_and_cancelled_again_and_again(tmp_path):  # type: ignore[no-untyped-def]
    """The user-testing report: on people-walking_1280x720.mp4 with analytics.md's example zone, one walker along
    its bottom edge got zone_entry_predicted four times with three misses_line cancels between."""
    import json
    from collections import Counter

    from tests.conftest import run_cli, shared_data

    config = tmp_path / "zones.yaml"
    config.write_text("zones:\n  - {name: shop, polygon: [[300, 0], [640, 0], [640, 480], [300, 480]], "
                      "predict_seconds: 2.0}\n")
    events = tmp_path / "events.jsonl"
    run = run_cli("run", str(shared_data("videos/people-walking_1280x720.mp4")), "--config", str(config),
                  "--model", str(shared_data("weights/yolov8n_int8_640.onnx")), "--imgsz", "320",
                  "--max-frames", "100", "--events", str(events), "--quiet", timeout=300)
    assert run.returncode == 0, run.stderr
    docs = [json.loads(line) for line in events.read_text().splitlines()]
    warned = Counter(e["track"]["id"] for e in docs if e["event"] == "zone_entry_predicted")
    withdrawn = Counter(e["track"]["id"] for e in docs if e["event"] == "zone_entry_prediction_cancelled"
                        and e["reason"] in ("misses_line", "unlikely"))
    assert withdrawn and max(withdrawn.values()) == 1, (warned, withdrawn)    # was 3 for one walker

"""The detection schedule (``detector.schedule``): which frames the detector runs on, how it is configured, and
that counts stay exact when frames are skipped (a crossing on a skipped frame is counted once, at a
detection). The runs with the real detector are in test_schedule_run.py."""

from __future__ import annotations

import json
import math
from typing import Optional

import numpy as np
import pytest

from pipelines.config import ConfigError, build_config
from pipelines.frames import FrameResult, VideoFrame
from pipelines.processing.motion import MotionMask, MotionMeter
from pipelines.processing.processor import StreamProcessor
from pipelines.processing.schedule import DetectionSchedule, Plan, Schedule, ScheduleState, ScheduleTuning
from pipelines.processing.zones import LineConfig, ZoneConfig
from pipelines.settings import SourceSettings
from pipelines.sinks.records import frame_record, frame_schema
from tracker.types import Detections

FPS = 25.0
IMAGE = np.zeros((240, 800, 3), np.uint8)
LINE = LineConfig("gate", ((400.0, 0.0), (400.0, 240.0)))


@pytest.mark.parametrize("spec, mode, frames, seconds", [
    ("every", "every", None, None),
    ("interval:5", "interval", 5, None),
    ("interval:1", "interval", 1, None),
    ("interval:0.5s", "interval", None, 0.5),
    ("interval:2s", "interval", None, 2.0),
    ("adaptive", "adaptive", None, None),
])
def test_schedule_specs_parse(spec, mode, frames, seconds):
    parsed = Schedule.parse(spec)
    assert (parsed.mode, parsed.frames, parsed.seconds) == (mode, frames, seconds)
    assert parsed.spec == spec


@pytest.mark.parametrize("data, key", [
    ({"detector": {"schedule": "sometimes"}}, "detector.schedule"),
    ({"detector": {"schedule": "interval:0"}}, "detector.schedule"),
    ({"detector": {"schedule": "interval:-1s"}}, "detector.schedule"),
    ({"detector": {"schedule": 5}}, "detector.schedule"),
    ({"sources": [{"url": "a.mp4", "schedule": "interval"}]}, "sources[0].schedule"),
    ({"schedule": {"max_gap": 0}}, "schedule.max_gap"),
    ({"schedule": {"motion_share": 2}}, "schedule.motion_share"),
    ({"schedule": {"quiet": 1}}, "schedule.quiet"),
])
def test_bad_schedules_are_rejected_naming_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        build_config(data)
    assert str(err.value).startswith(key + ":")


def test_each_source_may_override_the_schedule_and_shares_the_tuning():
    cfg = build_config({"detector": {"schedule": "adaptive"}, "schedule": {"quiet_check": 5.0},
                        "sources": [{"url": "rtsp://cam/1", "id": "door"},
                                    {"url": "archive.mp4", "schedule": "interval:0.5s"}]})
    door, archive = cfg.sources
    assert door.schedule.mode == "adaptive" and door.schedule.tuning.quiet_check == 5.0
    assert archive.schedule.spec == "interval:0.5s" and archive.schedule.tuning.quiet_check == 5.0
    assert build_config({}).sources == () and Schedule().mode == "every"  # every stays the default


def frames(n: int, fps: float = FPS) -> list[VideoFrame]:
    return [VideoFrame(IMAGE, i, i / fps, "cam", 1000.0 + i / fps) for i in range(n)]


def decide(schedule: DetectionSchedule, pts: float) -> bool:
    """One decision, with the plan of a detection that started no track coming back at once."""
    detect = schedule.decide(pts)
    if detect and schedule.feedback:
        schedule.observe(Plan(math.inf))
    return detect


def decisions(spec: str, n: int, fps: float = FPS) -> list[int]:
    schedule = DetectionSchedule(Schedule.parse(spec))
    return [i for i, f in enumerate(frames(n, fps)) if decide(schedule, f.pts)]


def test_a_cameras_frames_while_a_plan_is_on_its_way_are_predicted():
    schedule = DetectionSchedule(Schedule.parse("adaptive"))
    clip = frames(5)
    assert schedule.decide(clip[0].pts) and schedule.waiting
    assert not schedule.decide(clip[1].pts) and not schedule.decide(clip[2].pts)  # no plan yet: predicted
    schedule.observe(Plan(clip[3].pts))
    assert not schedule.waiting and schedule.decide(clip[3].pts)


def test_interval_detects_every_kth_frame_or_every_s_seconds_of_video():
    assert decisions("every", 6) == [0, 1, 2, 3, 4, 5]
    assert decisions("interval:5", 16) == [0, 5, 10, 15]
    assert decisions("interval:0.2s", 21) == [0, 5, 10, 15, 20]  # 25 fps
    assert decisions("interval:0.2s", 9, fps=10) == [0, 2, 4, 6, 8]


def test_a_schedule_restored_from_its_state_decides_as_the_one_that_went_on():
    going = DetectionSchedule(Schedule.parse("interval:4"))
    clip = frames(20)
    for f in clip[:7]:
        decide(going, f.pts)
    restored = DetectionSchedule(Schedule.parse("interval:4"),
                                 ScheduleState.from_doc(json.loads(json.dumps(going.state.doc()))))
    assert [decide(going, f.pts) for f in clip[7:]] == [decide(restored, f.pts) for f in clip[7:]]


def walker(i: int, speed: float = 4.0) -> Detections:
    """One person walking right at ``speed`` px per frame; bottom centre at x = 112 + speed * i."""
    x = 100.0 + speed * i
    return Detections(np.array([[x, 100, x + 24, 180]], np.float32), np.array([0.9], np.float32),
                      np.zeros(1, np.int64))


def take(schedule: DetectionSchedule, processor: StreamProcessor, frame: VideoFrame, detections: Detections,
         motion: Optional[MotionMask] = None) -> tuple[bool, FrameResult]:
    """One frame as the engine takes it: ``schedule`` decides (on ``motion``, where measured); ``processor`` gets
    ``detections`` on a detected frame and predicts on another; a detected frame's plan goes back to the schedule.
    Whether the frame was detected, and its result."""
    detect = schedule.decide(frame.pts, motion)
    result = processor.process(frame, detections if detect else None, schedule.state)
    if detect and schedule.feedback:
        plan = processor.schedule_state.plan
        assert plan is not None
        schedule.observe(plan)
    return detect, result


def run_processor(spec: str, n: int = 120) -> tuple[list[FrameResult], int]:
    """The walker crossing the line at x=400 (around frame 72), processed under ``spec``, with decisions as
    the engine makes them (the plan of an adaptive schedule fed back after each detected frame)."""
    settings = SourceSettings("cam.mp4", lines=(LINE,), schedule=Schedule.parse(spec))
    processor = StreamProcessor(settings, {0: "person"})
    schedule = DetectionSchedule(settings.schedule)
    meter = MotionMeter()
    out, detected = [], 0
    for i, frame in enumerate(frames(n)):
        detect, result = take(schedule, processor, frame, walker(i), meter.measure(frame.image))
        detected += detect
        out.append(result)
    return out, detected


@pytest.mark.parametrize("spec", ["interval:3", "interval:5", "interval:0.2s", "adaptive"])
def test_a_crossing_between_detections_is_counted_once_at_a_detected_frame(spec):
    every, _ = run_processor("every")
    scheduled, detected = run_processor(spec)
    assert detected < 0.6 * len(scheduled)
    crossings = [(r.frame.index, r.detected, e["direction"]) for r in scheduled for e in r.events
                 if e["event"] == "line_crossed"]
    reference = [(r.frame.index, e["direction"]) for r in every for e in r.events if e["event"] == "line_crossed"]
    assert len(reference) == 1 and len(crossings) == 1
    assert crossings[0][1] and crossings[0][2] == reference[0][1]  # on a detected frame, the same way
    assert scheduled[-1].counts == every[-1].counts  # the same totals as detecting every frame
    if spec == "adaptive":  # it detects more often near the line: the crossing is seen close to where every sees it
        assert 0 <= crossings[0][0] - reference[0][0] <= 3
    # every frame came out, the track is reported on each with one id, marked predicted where not detected
    assert {tuple(r.tracks.track_id.tolist()) for r in scheduled[5:]} == {(1,)}
    for r in scheduled:
        record = frame_record(r)
        assert record["detected"] == r.detected
        assert all(t.get("predicted", False) == (not r.detected) for t in record["tracks"])
    assert sum(e["event"] == "track_lost" for r in scheduled for e in r.events) == 0  # a skip is no miss


def test_predicted_frames_fit_the_frame_schema():
    jsonschema = pytest.importorskip("jsonschema")
    scheduled, _ = run_processor("interval:3", 12)
    for r in scheduled:
        jsonschema.validate(frame_record(r), frame_schema())


def test_adaptive_costs_almost_nothing_on_a_still_empty_scene_and_detects_when_motion_starts():
    # quiet_max = quiet_check: the unchanged picture is looked at on every quiet check (the rule before
    # quiet_max; the wait for an unchanged picture is the next test's)
    settings = SourceSettings("cam.mp4", zones=(ZoneConfig("all", ((0, 0), (800, 0), (800, 240), (0, 240))),),
                              schedule=Schedule.parse("adaptive", ScheduleTuning(quiet_max=2.0)))
    processor = StreamProcessor(settings, {0: "person"})
    schedule = DetectionSchedule(settings.schedule)
    meter = MotionMeter()
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (240, 800, 3), dtype=np.uint8)
    moved = still.copy()
    moved[60:200, 300:360] = 255 - moved[60:200, 300:360]  # something appears
    detected = []
    for i in range(300):
        image = still if i < 250 else moved
        frame = VideoFrame(image, i, i / FPS, "cam", 1000.0 + i / FPS)
        if take(schedule, processor, frame, Detections.empty(), meter.measure(image))[0]:
            detected.append(i)
    quiet = [i for i in detected if i < 250]
    assert quiet == [0, 50, 100, 150, 200]  # one look per quiet_check (2 s) of a still, empty scene
    assert detected[len(quiet)] == 250  # the first frame that changes is detected


def test_an_unchanged_still_empty_picture_waits_for_quiet_max_and_one_that_changed_without_motion_does_not():
    # 30 s of one still, empty picture; from frame 400 (16 s) a patch brightens by 1 grey level a frame (too
    # slowly for the motion measure, whose background follows it) until it is 60 levels brighter
    schedule = DetectionSchedule(Schedule.parse("adaptive"))
    processor = StreamProcessor(SourceSettings("cam.mp4", schedule=schedule.schedule), {0: "person"})
    meter = MotionMeter()
    rng = np.random.default_rng(2)
    still = rng.integers(0, 180, (240, 800, 3), dtype=np.uint8)
    detected = []
    for i in range(750):
        image = still.copy()
        image[60:200, 300:380] += np.uint8(min(max(i - 400, 0), 60))
        mask = meter.measure(image)
        if i > 400:
            assert mask.share_outside(np.zeros((0, 4))) < settings_motion_share()  # no motion to call it
        if take(schedule, processor, VideoFrame(image, i, i / FPS, "cam", 1000.0 + i / FPS), Detections.empty(),
                mask)[0]:
            detected.append(i)
    # unchanged: once per quiet_max (10 s), not per quiet_check (2 s); the check overdue since frame 300 comes
    # on the first frame that differs by more than motion_threshold (20 levels, frame 421) from the last look;
    # the next check (2 s on) sees it changed again (+60 since frame 460), the one after it unchanged: 10 s
    assert detected == [0, 250, 421, 471, 721]


def test_a_still_scene_restored_from_its_state_waits_for_the_same_picture_as_the_one_that_went_on():
    # the picture the last detection saw is part of the state: restored while the quiet check is overdue (an
    # unchanged picture), the schedule still waits, and detects where the unbroken one does
    going = DetectionSchedule(Schedule.parse("adaptive"))
    processor = StreamProcessor(SourceSettings("cam.mp4", schedule=going.schedule), {0: "person"})
    meter = MotionMeter()
    still = np.random.default_rng(3).integers(0, 180, (240, 800, 3), dtype=np.uint8)
    restored, decisions = None, ([], [])
    for i in range(400):
        image = still if i < 320 else still + np.uint8(40)
        mask = meter.measure(image)
        if i == 100:
            restored = DetectionSchedule(going.schedule,
                                         ScheduleState.from_doc(json.loads(json.dumps(going.state.doc()))))
        for schedule, out in zip((going, restored), decisions):
            if schedule is None:
                continue
            if schedule.decide(i / FPS, mask):
                out.append(i)
                if schedule is going:
                    processor.process(VideoFrame(image, i, i / FPS, "cam", 1000.0 + i / FPS), Detections.empty(),
                                      schedule.state)
                plan = processor.schedule_state.plan
                assert plan is not None and plan.quiet
                schedule.observe(plan)
    assert decisions[0][:3] == [0, 250, 320]  # unchanged: quiet_max; then the first changed frame
    assert decisions[1] == [i for i in decisions[0] if i > 100]


def settings_motion_share() -> float:
    return ScheduleTuning().motion_share


def test_people_standing_where_nothing_changes_near_them_are_looked_at_once_per_max_gap():
    # a person stands at x 100..124 (walker at speed 0); far from them a few pixels change on every frame (a
    # camera's clock: 2 motion cells, below motion_share); from frame 120 the person's own place changes
    settings = SourceSettings("cam.mp4", schedule=Schedule.parse("adaptive"))
    processor = StreamProcessor(settings, {0: "person"})
    schedule = DetectionSchedule(settings.schedule)
    meter = MotionMeter()
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 255, (240, 800, 3), dtype=np.uint8)
    detected = []
    for i in range(200):
        image = picture.copy()
        image[224:232, 772:780] = 255 * (i % 2)           # the clock
        if i >= 120:
            image[100:180, 100:124] = rng.integers(0, 255, (80, 24, 3), dtype=np.uint8)  # they move
        frame = VideoFrame(image, i, i / FPS, "cam", 1000.0 + i / FPS)
        if take(schedule, processor, frame, walker(i, speed=0.0), meter.measure(image))[0]:
            detected.append(i)
    settled = [i for i in detected if 40 <= i < 120]
    assert [b - a for a, b in zip(settled, settled[1:])] == [25] * (len(settled) - 1) and len(settled) >= 3
    moving = [i for i in detected if i >= 125]
    assert len(moving) > 2 * (200 - 125) / 25  # their place changes: looked at as usual again


def test_the_mqtt_tracks_summary_marks_predicted_boxes_within_its_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    from pipelines.sinks.mqtt_topics import tracks_doc

    schema = json.loads((Path(__file__).parents[1] / "pipelines/schemas/mqtt_tracks.schema.json").read_text())
    scheduled, _ = run_processor("interval:3", 12)
    docs = [tracks_doc("cam", r) for r in scheduled if len(r.tracks)]
    assert {d["detected"] for d in docs} == {True, False}
    for doc in docs:
        jsonschema.validate(doc, schema)
        assert all(t.get("predicted", False) == (not doc["detected"]) for t in doc["tracks"])


def test_a_bad_schedule_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("run", str(tmp_path / "x.mp4"), "--schedule", "interval:0", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "trackstream: error: detector.schedule: interval:K needs K >= 1, got 'interval:0'"]


@pytest.mark.parametrize("confirm_check, second", [(0.0, 1), (0.06, 2)])
def test_a_new_track_is_confirmed_within_confirm_check_and_then_reported(confirm_check, second):
    tuning = ScheduleTuning(confirm_check=confirm_check)  # 0: the very next frame (25 fps: 0.04 s apart)
    settings = SourceSettings("cam.mp4", schedule=Schedule("adaptive", tuning=tuning))
    processor = StreamProcessor(settings, {0: "person"})
    schedule = DetectionSchedule(settings.schedule)
    detected, shown = [], []
    for i, frame in enumerate(frames(12)):
        detect, result = take(schedule, processor, frame, walker(i))
        if detect:
            detected.append(i)
        shown.append(len(result.tracks))
    assert detected[:2] == [0, second]  # the frame that started the track, then its confirmation
    assert shown[:second] == [0] * second and all(n == 1 for n in shown[second:])  # followed from then on
    assert len(detected) < 12

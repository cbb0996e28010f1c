"""Dwell time per zone: how long each visit lasted (zone_exited), a zone_dwell (loitering) event past the
zone's threshold, the seconds inside in each track's live record, and mean/median/max in the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.engine.progress import count_lines
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.processing.dwell import DwellClock
from pipelines.processing.events import EventGenerator
from pipelines.processing.processor import StreamProcessor
from pipelines.processing.zones import ZoneConfig
from pipelines.settings import SourceSettings
from pipelines.sinks.records import frame_record
from tests.analytics_scenes import result, validator
from tracker.types import Detections

COUNTER = ZoneConfig("counter", ((50, 0), (150, 0), (150, 100), (50, 100)), dwell_seconds=3.0)


def _box(x: float) -> list[float]:
    return [x - 5, 20, x + 5, 40]


def _queue() -> list:  # type: ignore[type-arg]
    """10 fps. Track 1 walks in (its x passes 50 at frame 3), waits at x 100 until frame 65, walks out (x
    passes 150 at frame 74);
    track 2 passes straight through in 1 s; track 3 is still inside when the stream ends (frame 79)."""
    out = []
    for f in range(80):
        rows = {}
        x1 = 40 + 4 * min(f, 15) + 6 * max(0, f - 65)
        if x1 < 200:
            rows[1] = (_box(x1), 0)
        if 20 <= f < 40:
            rows[2] = (_box(20 + 10 * (f - 20)), 0)
        if f >= 60:
            rows[3] = (_box(100), 0)
        out.append(result(f, rows, fps=10.0))
    return out


def test_exits_carry_the_visit_and_loitering_is_reported_once_past_the_threshold():
    gen = EventGenerator("cam", (COUNTER,))
    events = [e for res in _queue() for e in gen.update(res)]
    events += gen.status(StreamStatus(StatusKind.ENDED, "cam", 0.0))
    exits = {e["track"]["id"]: e for e in events if e["event"] == "zone_exited"}
    entries = {e["track"]["id"]: e for e in events if e["event"] == "zone_entered"}
    for tid in (1, 2, 3):   # dwell = exit time - entry time (both confirmed after the same 2 frames)
        want = (exits[tid]["pts"] if exits[tid]["reason"] == "moved_out" else 7.9) - entries[tid]["pts"]
        assert exits[tid]["dwell_seconds"] == pytest.approx(want, abs=1e-6), tid
    assert exits[1]["dwell_seconds"] == pytest.approx(7.1, abs=0.15)   # in at x 50 (0.3 s), out at x 150 (7.4 s)
    assert exits[2]["dwell_seconds"] == pytest.approx(1.0, abs=0.25)
    assert exits[3]["reason"] == "track_ended" and exits[3]["dwell_seconds"] == pytest.approx(1.8, abs=0.15)
    loiter = [e for e in events if e["event"] == "zone_dwell"]
    assert [e["track"]["id"] for e in loiter] == [1]                        # once, only the one that waited
    assert loiter[0]["threshold_seconds"] == 3.0 and loiter[0]["dwell_seconds"] == pytest.approx(3.0, abs=0.05)
    assert loiter[0]["pts"] == pytest.approx(entries[1]["pts"] + 3.0, abs=0.05)
    check = validator("event.schema.json")
    for event in events:
        check.validate(json.loads(json.dumps(event)))

    dwell = gen.counts().zones["counter"].dwell
    assert dwell is not None and dwell.visits == 3 and dwell.inside_s == {}
    seconds = sorted(e["dwell_seconds"] for e in exits.values())
    assert dwell.max_s == pytest.approx(seconds[-1]) and dwell.median_s == pytest.approx(seconds[1])
    assert dwell.mean_s == pytest.approx(sum(seconds) / 3, abs=1e-3)
    summary = count_lines("cam", gen.counts())
    assert summary[-1] == (f"cam: zone counter dwell mean {dwell.mean_s:.1f} s, median {dwell.median_s:.1f} s, "
                           f"max {dwell.max_s:.1f} s over 3 visits")


def test_the_live_record_says_how_long_a_track_has_been_inside():
    proc = StreamProcessor(SourceSettings("cam.mp4", zones=(COUNTER,)), {0: "person"})
    image = np.zeros((100, 200, 3), np.uint8)
    check = validator("frame.schema.json")
    seen = []
    for f in range(40):   # one person walks in (x 20 -> 100 by frame 20) and stays
        box = np.array([_box(min(20 + 4 * f, 100))], np.float32)
        out = proc.process(VideoFrame(image, f, f / 10.0, "cam", 1000.0 + f / 10.0),
                           Detections(box, np.full(1, 0.9, np.float32), np.zeros(1, np.int64)))
        record = json.loads(json.dumps(frame_record(out)))
        check.validate(record)
        seen.append(record["tracks"][0].get("zones", {}).get("counter") if record["tracks"] else None)
        zone = out.counts.zones["counter"] if out.counts else None
    entered = next(i for i, s in enumerate(seen) if s is not None)
    assert seen[entered] == 0.0 and seen[-1] == pytest.approx((39 - entered) / 10.0)   # grows with the video
    assert zone is not None and zone.dwell is not None and \
        list(zone.dwell.inside_s.values()) == [pytest.approx(seen[-1])]
    assert zone.doc()["dwell"]["inside"] == [{"id": 1, "seconds": seen[-1]}]


def test_a_lost_track_inside_is_not_timed_past_the_visit_its_exit_reports():
    """A person walks in and the camera loses them (they left unseen, or stand hidden); the tracker ends the
    track 3 s later. The counts the MQTT zone topic, the web view and the Redis counts stream show meanwhile
    said it had been inside ever longer (1.8 s at the end on bikes.mp4), then its zone_exited said 0.56 s:
    the seconds inside now stop at the last frame it was seen, the visit its exit reports."""
    gen = EventGenerator("cam", (COUNTER,))
    shown, events = [], []
    for f in range(60):   # track 1 inside from frame 0, seen until frame 19; track 9 keeps frames coming
        rows = {9: (_box(180), 0)}
        if f < 20:
            rows[1] = (_box(100), 0)
        events += gen.update(result(f, rows, removed=[1] if f == 50 else []))
        dwell = gen.counts().zones["counter"].dwell
        if dwell is not None and 1 in dwell.inside_s:
            shown.append(dwell.inside_s[1])
    exit_ = next(e for e in events if e["event"] == "zone_exited")
    assert exit_["reason"] == "track_ended" and exit_["dwell_seconds"] == pytest.approx(1.8)
    assert max(shown) == pytest.approx(exit_["dwell_seconds"])   # was 4.8 s (frame 49 - entry) just before


def test_memory_is_bounded_and_the_state_continues():
    clock = DwellClock(2.0)
    for i in range(12_000):
        clock.enter(i, float(i))
        clock.leave(i, float(i) + (i % 7))
    summary = clock.summary(0.0)
    assert summary.visits == 12_000 and summary.max_s == 6.0 and len(clock.state_dict()["recent"]) == 10_000
    again = DwellClock(2.0)
    again.load_state_dict(json.loads(json.dumps(clock.state_dict())))
    assert again.summary(0.0) == summary


@pytest.mark.parametrize("value, message", [(0, "must be > 0.0"), (-3, "must be > 0.0"), ("long", "must be a number")])
def test_bad_dwell_threshold_is_refused_naming_the_key(value, message):  # type: ignore[no-untyped-def]
    from pipelines.config import build_config
    from tracker.configutil import ConfigError

    with pytest.raises(ConfigError, match=rf"^zones\[0\]\.dwell_seconds: {message}"):
        build_config({"zones": [{"name": "q", "polygon": [[0, 0], [9, 0], [9, 9]], "dwell_seconds": value}]})


@pytest.mark.slow
def test_a_lost_track_is_not_reported_loitering_longer_than_its_visit(bikes_video, pose_weights, tmp_path):  # type: ignore[no-untyped-def]
    """bikes.mp4: the cyclist comes back into the right half at frame 46 and is lost at 48; the stream ends at
    59. Its visit ends at the last frame it was seen (0.04 s), so a 0.5 s zone_dwell, which the lost track
    used to get at frame 59 (``point`` null, ``dwell_seconds`` 0.52), would contradict its zone_exited."""
    from tests.conftest import run_cli

    config = tmp_path / "z.yaml"
    config.write_text("zones: [{name: right, polygon: [[320, 0], [639, 0], [639, 271], [320, 271]], "
                      "dwell_seconds: 0.5}]\n")
    events_path = tmp_path / "events.jsonl"
    run = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "320", "--max-frames", "60",
                  "--quiet", "--config", str(config), "--events", str(events_path), timeout=300)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    loitered: dict[int, dict] = {}  # type: ignore[type-arg]
    visits = []   # (dwell_seconds at the exit, the zone_dwell of that visit or None)
    for event in events:
        if event["event"] == "zone_dwell":
            loitered[event["track"]["id"]] = event
        elif event["event"] == "zone_exited":
            visits.append((event["dwell_seconds"], loitered.pop(event["track"]["id"], None)))
    assert [e["reason"] for e in events if e["event"] == "zone_exited"][-1] == "track_ended"   # the scene holds
    for seconds, loiter in visits:
        assert (loiter is not None) == (seconds >= 0.5), (seconds, loiter)
        if loiter is not None:
            assert loiter["point"] is not None and loiter["dwell_seconds"] <= seconds


def test_the_summary_says_one_visit_not_one_visits():
    from pipelines.frames import Counts, DwellSummary, ZoneCount

    one = ZoneCount(0, 1, 1, dwell=DwellSummary(1, 2.0, 2.0, 2.0, {}))
    assert count_lines("cam", Counts({"door": one}, {}, 1))[-1].endswith("max 2.0 s over 1 visit")

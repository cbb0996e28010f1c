"""Lifecycle, zone and line events from successive Tracks (pure logic, no Redis)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from pipelines.processing.events import EventGenerator, EventsConfig, LineConfig, ZoneConfig
from pipelines.frames import StatusKind, StreamStatus
from tracker.configutil import ConfigError, from_mapping


def _run(gen: EventGenerator, results) -> list[dict]:  # type: ignore[no-untyped-def]
    events = []
    for r in results:
        events.extend(gen.update(r))
    return events + gen.close()


def _names(events: list[dict], track: int | None = None) -> list[str]:
    return [e["event"] for e in events if track is None or e.get("track", {}).get("id") == track]


def test_lifecycle_started_lost_recovered_ended(synth, validators):  # type: ignore[no-untyped-def]
    events = _run(EventGenerator("cam"), synth.scenario())
    assert _names(events, 2) == ["track_started", "track_lost", "track_recovered", "track_lost", "track_ended"]
    for k in (1, 3, 4, 5):   # lost after their last frame, removed by the tracker 3 frames later
        assert _names(events, k) == ["track_started", "track_lost", "track_ended"], k
    assert _names(events, 6) == ["track_started", "track_ended"]    # still alive when the stream ends
    lost = next(e for e in events if e["event"] == "track_lost")
    assert (lost["frame_index"], lost["last_seen"]["frame_index"]) == (12, 11)
    rec = next(e for e in events if e["event"] == "track_recovered")
    assert rec["frame_index"] == 15 and rec["lost_seconds"] == pytest.approx(4 / 25)
    for e in events:
        assert not list(validators["events"].iter_errors(e)), e


def test_ended_summary_and_reasons(synth):  # type: ignore[no-untyped-def]
    events = _run(EventGenerator("cam"), synth.scenario())
    ended = {e["track"]["id"]: e for e in events if e["event"] == "track_ended"}
    # track 1 lives frames 0..30 and is removed by the tracker at frame 33; track 6 outlives the stream
    s1 = ended[1]["summary"]
    assert ended[1]["reason"] == "removed" and ended[1]["frame_index"] == 33
    assert (s1["first_seen"]["frame_index"], s1["last_seen"]["frame_index"]) == (0, 30)
    assert s1["duration"] == pytest.approx(30 / 25) and s1["frames_seen"] == 31
    assert s1["distance"] == pytest.approx(60.0)          # moved 2 px per frame for 30 frames
    assert s1["mean_confidence"] == pytest.approx(0.8) and s1["class_name"] == "person"
    assert s1["last_box"] == [60.0, 10.0, 70.0, 30.0]
    assert ended[6]["reason"] == "stream_ended" and ended[6]["frame_index"] == 55
    assert ended[2]["summary"]["frames_seen"] == 31 - 3


def test_stream_ended_status_ends_tracks_first_and_close_adds_nothing(synth):  # type: ignore[no-untyped-def]
    gen = EventGenerator("cam")
    events = gen.status(StreamStatus(StatusKind.STARTED, "cam", time.time()))
    for r in synth.scenario(n_frames=20):
        events += gen.update(r)
    events += gen.status(StreamStatus(StatusKind.ENDED, "cam", time.time(), pts=0.8, detail={"reason": "eof"}))
    assert gen.close() == []
    assert events[0]["event"] == "stream_started" and events[-1]["event"] == "stream_ended"
    assert events[-1]["detail"] == {"reason": "eof"}
    counts = Counter(_names(events))
    assert counts["track_started"] == counts["track_ended"] == 4


def test_status_detail_never_carries_a_password():  # type: ignore[no-untyped-def]
    gen = EventGenerator("cam")
    [ev] = gen.status(StreamStatus(StatusKind.GAP, "cam", time.time(),
                                   detail={"error": "cannot open rtsp://admin:hunter2@cam/stream"}))
    assert "hunter2" not in str(ev) and ev["event"] == "stream_gap"


def test_unknown_removed_id_is_ignored(synth):  # type: ignore[no-untyped-def]
    gen = EventGenerator("cam")
    assert gen.update(synth.make_result(0, {}, removed=[42])) == []


ZONE = ZoneConfig("door", ((50, 0), (100, 0), (100, 100), (50, 100)))


def _walk(synth, xs: list[float], y: float = 40.0) -> list:  # type: ignore[no-untyped-def]
    """One track whose bottom-centre x follows ``xs`` (box 10 wide, bottom at y)."""
    return [synth.make_result(i, {1: [x - 5, y - 20, x + 5, y]}) for i, x in enumerate(xs)]


def test_flicker_at_zone_boundary_gives_no_phantom_events(synth):  # type: ignore[no-untyped-def]
    xs = [40, 45, 51, 48, 49, 52, 47, 49, 48]   # outside, with single frames just inside the boundary
    events = _run(EventGenerator("cam", zones=[ZONE]), _walk(synth, xs))
    assert [e for e in events if e["event"].startswith("zone")] == []


def test_entering_and_leaving_a_zone_gives_one_event_each(synth):  # type: ignore[no-untyped-def]
    xs = [40, 45, 52, 49, 55, 60, 70, 101, 80, 90, 105, 110, 120]   # flickers on the way in and out
    events = _run(EventGenerator("cam", zones=[ZONE]), _walk(synth, xs))
    zone = [(e["event"], e["frame_index"], e.get("reason")) for e in events if e["event"].startswith("zone")]
    assert zone == [("zone_entered", 5, None), ("zone_exited", 11, "moved_out")]


def test_track_ending_inside_a_zone_exits_with_reason(synth):  # type: ignore[no-untyped-def]
    events = _run(EventGenerator("cam", zones=[ZONE]), _walk(synth, [60, 61, 62, 63]))
    assert [(e["event"], e.get("reason")) for e in events if e["event"].startswith("zone")] == [
        ("zone_entered", None), ("zone_exited", "track_ended")]
    assert _names(events)[-1] == "track_ended"


LINE = LineConfig("gate", ((100, 0), (100, 200)))   # drawn downwards: screen-left of x=100 is its right side


@pytest.mark.parametrize("xs, direction, sign", [
    ([80, 85, 90, 95, 105, 110, 115], "right_to_left", -1),     # moving right across a downward line
    ([115, 110, 105, 95, 90, 85], "left_to_right", 1),
])
def test_line_crossed_once_with_direction(synth, xs, direction, sign):  # type: ignore[no-untyped-def]
    events = _run(EventGenerator("cam", lines=[LINE]), _walk(synth, xs))
    crossed = [e for e in events if e["event"] == "line_crossed"]
    assert [(e["line"], e["direction"], e["sign"], e["track"]["id"]) for e in crossed] == [
        ("gate", direction, sign, 1)]


def test_jitter_at_a_line_counts_one_crossing(synth):  # type: ignore[no-untyped-def]
    xs = [90, 95, 99, 101, 99.5, 101, 98, 103, 97, 104, 106, 108, 110, 112]
    events = _run(EventGenerator("cam", lines=[LINE]), _walk(synth, xs))
    assert len([e for e in events if e["event"] == "line_crossed"]) == 1


def test_back_and_forth_counts_each_real_crossing(synth):  # type: ignore[no-untyped-def]
    xs = [80, 90, 110, 120, 120, 110, 90, 80, 80]
    events = _run(EventGenerator("cam", lines=[LINE]), _walk(synth, xs))
    assert [e["direction"] for e in events if e["event"] == "line_crossed"] == ["right_to_left", "left_to_right"]


def test_passing_beside_the_line_end_is_no_crossing(synth):  # type: ignore[no-untyped-def]
    short = LineConfig("short", ((100, 0), (100, 20)))   # ends well above the track's path (y = 40)
    events = _run(EventGenerator("cam", lines=[short]), _walk(synth, [80, 90, 110, 120, 130]))
    assert [e for e in events if e["event"] == "line_crossed"] == []


def test_centre_anchor_config(synth):  # type: ignore[no-untyped-def]
    line = LineConfig("h", ((0, 30), (200, 30)))      # horizontal at y=30: box centre crosses, bottom does not
    frames = [synth.make_result(i, {1: [50, y, 60, y + 20]}) for i, y in enumerate([0, 5, 25, 30, 35])]
    bottom = _run(EventGenerator("cam", lines=[line]), frames)
    centre = _run(EventGenerator("cam", lines=[line], config=EventsConfig(anchor="center")), frames)
    assert [e["event"] for e in bottom].count("line_crossed") == 1   # bottom edge crosses 30 early on
    assert [e["direction"] for e in centre if e["event"] == "line_crossed"] == ["left_to_right"]


@pytest.mark.parametrize("cls, data, key", [
    (ZoneConfig, {"name": "z", "polygon": [[0, 0], [1, 1]]}, "zones[0].polygon"),
    (ZoneConfig, {"name": "z", "polygon": [[0, 0], [1, 1], [2]]}, "zones[0].polygon[2]"),
    (ZoneConfig, {"name": "", "polygon": [[0, 0], [1, 1], [2, 0]]}, "zones[0].name"),
    (LineConfig, {"name": "l", "points": [[0, 0], [1, 1], [2, 2]]}, "zones[0].points"),
    (LineConfig, {"name": "l", "points": [[0, 0], [0, 0]]}, "zones[0].points"),
    (ZoneConfig, {"name": "z", "polygon": [[0, 0], [1, 1], [2, 0]], "colour": "red"}, "zones[0].colour"),
    (EventsConfig, {"min_frames_in_zone": 0}, "zones[0].min_frames_in_zone"),
])
def test_config_errors_name_the_key(cls, data, key):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        from_mapping(cls, data, "zones[0]")
    assert str(err.value).startswith(key + ":")


def test_config_from_yaml_like_mapping():  # type: ignore[no-untyped-def]
    zone = from_mapping(ZoneConfig, {"name": "door", "polygon": [[0, 0], [10, 0], [10, 10]]}, "zones[0]")
    assert zone.polygon == ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0))
    assert from_mapping(EventsConfig, {"min_frames_in_zone": 3}).min_frames_in_zone == 3


@pytest.mark.parametrize("kind, doc, complaint", [
    ("events", {"schema_version": 1, "event": "track_started", "source_id": "c", "frame_index": 0, "pts": 0.0,
                "time": 1.0}, "'track' is a required property"),
    ("events", {"schema_version": 1, "event": "track_teleported", "source_id": "c", "frame_index": 0,
                "pts": 0.0, "time": 1.0}, "is not one of"),
    ("frames", {"schema_version": 1, "source_id": "c", "frame_index": 0, "pts": 0.0, "width": 2, "height": 2,
                "capture_time": 1.0, "tracks": []}, "'publish_time' is a required property"),
    ("frames", {"schema_version": 1, "source_id": "c", "frame_index": 0, "pts": 0.0, "width": 2, "height": 2,
                "capture_time": 1.0, "publish_time": 1.0, "tracks": [{"id": 1}]}, "'class_id' is a required"),
])
def test_schemas_reject_malformed_documents(validators, kind, doc, complaint):  # type: ignore[no-untyped-def]
    messages = [e.message for e in validators[kind].iter_errors(doc)]
    assert any(complaint in m for m in messages), messages

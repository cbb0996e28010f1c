"""A real run (bikes.mp4, YOLO11n-pose) publishing to a real Redis, read by `trackstream subscribe`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_run_with_redis_matches_jsonl_and_every_track_starts_and_ends_once(
        redis_server, cli_processes, bikes_video, pose_weights, tmp_path, validators):  # type: ignore[no-untyped-def]
    sub = cli_processes("subscribe", "--redis", redis_server.url, "--source", "bikes", "--frames", "--from", "0",
                        "--until-ended", "--idle-exit", "300")
    jsonl = tmp_path / "tracks.jsonl"
    config = tmp_path / "zones.yaml"     # bikes.mp4 is 640x272: a zone on the left half, a line down the middle
    config.write_text("zones: [{name: left, polygon: [[0, 0], [320, 0], [320, 272], [0, 272]]}]\n"
                      "lines: [{name: middle, points: [[320, 0], [320, 272]]}]\n")
    run = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--max-frames", "40", "--imgsz", "320",
                  "--config", str(config), "--redis", redis_server.url, "--jsonl", str(jsonl),
                  "--events", str(tmp_path / "events.jsonl"), "--quiet")
    assert run.returncode == 0, run.stderr
    assert sub.finish(120) == 0, sub.stderr
    docs = sub.docs()
    frames = [d["data"] for d in docs if d["kind"] == "frames"]
    events = [d["data"] for d in docs if d["kind"] == "events"]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 40
    # one frames entry per processed frame, holding the JSONL record plus wall-clock times
    assert [{k: v for k, v in f.items() if k not in ("capture_time", "publish_time")} for f in frames] == records
    ids = {t["id"] for r in records for t in r["tracks"]}
    assert ids, "the bikes clip has people in it"
    for name in ("track_started", "track_ended"):
        assert Counter(e["track"]["id"] for e in events if e["event"] == name) == Counter(dict.fromkeys(ids, 1))
    assert events[0]["event"] == "stream_started" and events[-1]["event"] == "stream_ended"
    # the events file holds the same documents as the Redis events stream (which adds publish_time)
    in_file = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in e.items() if k != "publish_time"} for e in events] == in_file
    for d in docs:
        assert not [e.message for e in validators[d["kind"]].iter_errors(d["data"])], d
    # zone membership alternates entered/exited per track and is balanced once every track has ended
    for tid in ids:
        zone = [e["event"] for e in events if e["event"].startswith("zone") and e["track"]["id"] == tid]
        assert zone == ["zone_entered", "zone_exited"] * (len(zone) // 2), (tid, zone)
    assert any(e["event"] == "zone_entered" for e in events), Counter(e["event"] for e in events)
    assert all(e["line"] == "middle" for e in events if e["event"] == "line_crossed")
    # the counts stream: one entry per change, the last one what the events add up to once the stream ended
    import redis

    client = redis.Redis.from_url(redis_server.url)
    counts = [json.loads(fields[b"data"]) for _, fields in client.xrange("trackstream:bikes:counts")]
    client.close()
    for doc in counts:
        assert not [e.message for e in validators["counts"].iter_errors(doc)], doc
    assert all(a != b for a, b in zip(counts, counts[1:]))  # a new entry only when something changed
    assert len(counts) < len(records)
    entered = sum(e["event"] == "zone_entered" for e in events)
    crossed = Counter(e["direction"] for e in events if e["event"] == "line_crossed")
    left = counts[-1]["zones"]["left"]
    assert (left["occupancy"], left["entries"], left["exits"]) == (0, entered, entered)
    assert left["dwell"]["visits"] == entered and left["dwell"]["inside"] == []
    assert counts[-1]["lines"]["middle"] == {"left_to_right": crossed["left_to_right"],
                                             "right_to_left": crossed["right_to_left"]}
    assert counts[-1]["tracks_started"] == len(ids)
    # while the run went on, the counts said how many were inside then
    assert any(doc["zones"]["left"]["occupancy"] > 0 for doc in counts)


def test_run_fails_at_once_when_redis_is_unreachable_and_configured_to_fail(
        redis_server, bikes_video, tmp_path):  # type: ignore[no-untyped-def]
    redis_server.stop()
    config = tmp_path / "config.yaml"
    config.write_text(f"redis:\n  url: redis://:pw-Secret-1@127.0.0.1:{redis_server.port}/0\n"
                      "  on_unreachable: fail\n  connect_timeout: 0.5\n")
    proc = run_cli("run", str(bikes_video), "--config", str(config), "--max-frames", "2", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("trackstream: error: cannot reach Redis at redis://:***@127.0.0.1")
    assert "pw-Secret-1" not in proc.stderr + proc.stdout

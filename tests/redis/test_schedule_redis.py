"""A scheduled run (``--schedule interval:4``) publishes every frame to Redis, each saying whether the detector
ran on it and which boxes are predictions, exactly as in the JSONL file, within the shipped schemas."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_scheduled_frames_reach_redis_marked_as_detected_or_predicted(
        redis_server, cli_processes, bikes_video, pose_weights, tmp_path, validators):  # type: ignore[no-untyped-def]
    sub = cli_processes("subscribe", "--redis", redis_server.url, "--source", "bikes", "--frames", "--from", "0",
                        "--until-ended", "--idle-exit", "300")
    jsonl = tmp_path / "tracks.jsonl"
    run = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--max-frames", "40", "--imgsz", "320",
                  "--schedule", "interval:4", "--redis", redis_server.url, "--jsonl", str(jsonl), "--quiet")
    assert run.returncode == 0, run.stderr
    assert sub.finish(120) == 0, sub.stderr
    frames = [d["data"] for d in sub.docs() if d["kind"] == "frames"]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(frames) == len(records) == 40
    assert [{k: v for k, v in f.items() if k not in ("capture_time", "publish_time")} for f in frames] == records
    assert 10 <= sum(f["detected"] for f in frames) < 20
    assert any(t.get("predicted") for f in frames if not f["detected"] for t in f["tracks"])
    for f in frames:
        assert not [e.message for e in validators["frames"].iter_errors(f)], f

"""`trackstream run --state DIR`: an interrupted video resumes where it stopped, and the outputs of the
pieces joined together equal one unbroken run, record by record; after kill -9 no event is written twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

LINE_CONFIG = """
lines: [{name: road, points: [[400, 0], [400, 300]]}]
zones: [{name: left, polygon: [[0, 0], [320, 0], [320, 300], [0, 300]]}]
"""


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_times(events: list[dict]) -> list[dict]:
    """Events with the wall-clock capture time removed (it differs between any two runs)."""
    def clean(value):  # type: ignore[no-untyped-def]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "time"}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return [clean(e) for e in events]


def run_args(video: Path, weights: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return ["run", str(video), "--model", str(weights), "--imgsz", "160", "--config", str(config),
            "--jsonl", str(out / "t.jsonl"), "--events", str(out / "e.jsonl"), "--mot", str(out / "t.txt"),
            "--batch", "4", "--quiet", *extra]


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory, bikes_video, pose_weights):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("unbroken")
    config = out / "c.yaml"
    config.write_text(LINE_CONFIG)
    proc = run_cli(*run_args(bikes_video, pose_weights, out, config))
    assert proc.returncode == 0, proc.stderr
    return out, config


def test_resumed_pieces_equal_an_unbroken_run(tmp_path, unbroken, bikes_video, pose_weights):
    full, config = unbroken
    state = tmp_path / "state"
    for max_frames in ("37", "90"):   # stop twice, at a batch boundary and inside a batch
        proc = run_cli(*run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state),
                                 "--max-frames", max_frames))
        assert proc.returncode == 0, proc.stderr
    proc = run_cli(*run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state)))
    assert proc.returncode == 0, proc.stderr
    assert lines(tmp_path / "t.jsonl") == lines(full / "t.jsonl")
    assert (tmp_path / "t.txt").read_text() == (full / "t.txt").read_text()
    events = lines(tmp_path / "e.jsonl")
    assert without_times(events) == without_times(lines(full / "e.jsonl"))
    assert [e["event"] for e in events].count("stream_started") == 1
    assert any(e["event"] == "line_crossed" for e in events)
    crossed = [e["direction"] for e in events if e["event"] == "line_crossed"]
    summary = (f"line road {crossed.count('left_to_right')} left_to_right, "
               f"{crossed.count('right_to_left')} right_to_left")
    assert summary in proc.stderr  # the end-of-run summary prints the line counts of the whole video
    again = run_cli(*run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state)))
    assert again.returncode == 0 and "already processed" in again.stderr
    assert lines(tmp_path / "t.jsonl") == lines(full / "t.jsonl")


def test_kill_9_then_resume_writes_every_frame_and_event_once(tmp_path, unbroken, bikes_video, pose_weights):
    full, config = unbroken
    state = tmp_path / "state"
    # snapshots every 0.1 s: the native detector runs this clip at several hundred frames/s, so the run must be
    # caught (and killed) soon after a snapshot, well before its 250th frame
    args = run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state), "--state-interval", "0.1")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=str(REPO),
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    try:
        saved = state / "bikes.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if saved.exists() and json.loads(saved.read_text())["processor"]["frames_processed"] >= 40:
                break
            time.sleep(0.02)
        else:
            pytest.fail("no state snapshot with 40 frames appeared")
        time.sleep(0.05)  # frames written after the snapshot: the resumed run must not write them twice
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    killed_at = lines(tmp_path / "t.jsonl")
    assert killed_at and killed_at[-1]["frame_index"] < 249
    resumed = run_cli(*run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state)))
    assert resumed.returncode == 0, resumed.stderr
    records = lines(tmp_path / "t.jsonl")
    indexes = [r["frame_index"] for r in records]
    assert indexes == sorted(set(indexes)) and indexes[0] == 0 and indexes[-1] == 249  # no frame twice
    assert records == lines(full / "t.jsonl")
    events = lines(tmp_path / "e.jsonl")
    started = [e["track"]["id"] for e in events if e["event"] == "track_started"]
    ended = [e["track"]["id"] for e in events if e["event"] == "track_ended"]
    assert len(started) == len(set(started)) and sorted(started) == sorted(ended)  # no event duplicated
    assert [e["event"] for e in events].count("stream_started") == 1


def decodable_frames(path: Path) -> int:
    """Frames a player gets from ``path``: a file cut off by kill -9 plays up to its last complete fragment."""
    import av

    count = 0
    try:
        with av.open(str(path)) as container:
            for _ in container.decode(video=0):
                count += 1
    except av.FFmpegError:
        pass
    return count


def video_frames(path: Path) -> int:
    """Frames stored in ``path``, counted from its complete packets (0 for no file yet)."""
    import av

    if not path.exists() or path.stat().st_size == 0:
        return 0
    size, count = path.stat().st_size, 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(video=0):
                count += bool(packet.size and packet.dts is not None and packet.pos + packet.size <= size)
    except av.FFmpegError:
        pass
    return count


def test_kill_9_then_resume_loses_no_frame_of_the_video(tmp_path, unbroken, bikes_video, pose_weights):
    """The snapshot must not count video frames the encoder still held (an MP4 fragment reaches the file at the
    next key frame): the resumed run starts its part 2 after the snapshot, so those frames would be lost. Nor
    may part 2 repeat the frames part 1 got after the snapshot: the parts together hold each frame once."""
    config = tmp_path / "c.yaml"   # a fragment every 5 frames: the killed run's file runs ahead of its snapshot
    config.write_text(LINE_CONFIG + "output: {video_keyframe_seconds: 0.2}\n")
    state, video = tmp_path / "state", tmp_path / "v.mp4"
    args = run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state), "--state-interval", "0.3",
                    "--out", str(video))
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=str(REPO),
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL)
    try:
        saved = state / "bikes.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:   # kill once the file holds frames the last snapshot does not count
            if saved.exists():
                snapshot = json.loads(saved.read_text())
                if snapshot["processor"]["frames_processed"] >= 40 and \
                        video_frames(video) > snapshot["outputs"]["video"]["frames"]:
                    break
            time.sleep(0.01)
        else:
            pytest.fail("no state snapshot with 40 frames appeared")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    snapshot = json.loads(saved.read_text())
    assert not snapshot["processor"]["finished"]
    in_part1 = video_frames(video)
    assert in_part1 >= snapshot["outputs"]["video"]["frames"]   # what the state says is there
    assert decodable_frames(video) >= snapshot["outputs"]["video"]["frames"]   # and it plays
    resumed = run_cli(*run_args(bikes_video, pose_weights, tmp_path, config, "--state", str(state),
                                "--out", str(video)))
    assert resumed.returncode == 0, resumed.stderr
    part2 = tmp_path / "v.part2.mp4"
    assert in_part1 + video_frames(part2) == 250   # every frame is there, and none twice
    assert decodable_frames(video) + decodable_frames(part2) >= 249   # a torn end of part 1 may hide one frame

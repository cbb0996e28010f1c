"""`trackstream run` on real RTSP cameras, as a user runs it: a separate process, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import av
import pytest

from tests.conftest import REPO
from tests.conftest import free_port

SECRET = "Zx9-secret-Pw"
FAST_RECONNECT = {"read_timeout": 1.0, "open_timeout": 3.0, "reconnect_initial_delay": 0.2,
                  "reconnect_max_delay": 1.0}


class Cli:
    """``trackstream ARGS`` running in the background; output goes to files (so nothing blocks on a pipe)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.stdout_path, self.stderr_path = tmp / "stdout.txt", tmp / "stderr.txt"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], stdout=out, stderr=err,
                                         env=env, cwd=str(tmp))

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def longest_track(records: list[dict]) -> int:
    """The most records any one track id appears in."""
    ids = [t["id"] for r in records for t in r["tracks"]]
    return max((ids.count(i) for i in set(ids)), default=0)


def wait_for(cond: Callable[[], bool], timeout: float, cli: Cli, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if cli.proc.poll() is not None:
            pytest.fail(f"trackstream exited ({cli.proc.returncode}) before {what}: {cli.stderr[-2000:]}")
        if time.monotonic() > deadline:
            cli.stop()
            pytest.fail(f"timed out waiting for {what}: {cli.stderr[-2000:]}")
        time.sleep(0.1)


def write_config(tmp: Path, text: str) -> str:
    path = tmp / "config.yaml"
    path.write_text(text)
    return str(path)


def test_camera_with_password_is_tracked_served_as_metrics_and_stops_cleanly(rtsp_server, pose_weights,
                                                                             tmp_path):
    server = rtsp_server(user="viewer", password=SECRET)
    port = free_port()
    video, jsonl = tmp_path / "cam.mp4", tmp_path / "cam.jsonl"
    config = write_config(tmp_path, "metrics:\n  log_interval: 1.0\n")
    cli = Cli(tmp_path, "run", server.url, "--model", str(pose_weights), "--imgsz", "320", "--out", str(video),
              "--jsonl", str(jsonl), "--metrics-port", str(port), "--config", config, "--quiet")
    wait_for(lambda: len(lines(jsonl)) >= 40 and longest_track(lines(jsonl)) >= 8, 150, cli,
             "JSONL records (read while running, as tail -f does) with someone tracked over 8 frames")
    time.sleep(1.5)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert cli.stop() == 0, cli.stderr[-2000:]

    records = lines(jsonl)
    with av.open(str(video)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == len(records), "the annotated video must hold every processed frame and play"
    assert longest_track(records) >= 8, "someone must be tracked over many frames"
    out_total = [ln for ln in metrics.splitlines() if ln.startswith("trackstream_frames_out_total")]
    assert out_total and float(out_total[0].split()[-1]) > 0
    assert "trackstream_latency_seconds_count" in metrics
    assert any(line.startswith("stats ") or " stats " in line for line in cli.stderr.splitlines())
    everything = [cli.stdout, cli.stderr, jsonl.read_text(), metrics]
    assert not [text for text in everything if SECRET in text], "the password leaked"
    assert "viewer:***@" in cli.stderr  # the URL is shown, redacted


def test_run_survives_five_camera_restarts(rtsp_server, tmp_path):
    server = rtsp_server()
    jsonl = tmp_path / "cam.jsonl"
    options = "\n".join(f"  {k}: {v}" for k, v in FAST_RECONNECT.items())
    config = write_config(tmp_path, f"source:\n{options}\nmetrics:\n  log_interval: 0\n")
    cli = Cli(tmp_path, "run", server.url, "--model", "yolo11n.yaml", "--imgsz", "160", "--jsonl", str(jsonl),
              "--config", config, "--quiet")
    wait_for(lambda: len(lines(jsonl)) >= 10, 120, cli, "the first frames")
    for restart in range(5):
        server.kill()
        time.sleep(0.5)
        server.start()
        seen = len(lines(jsonl))
        wait_for(lambda seen=seen: len(lines(jsonl)) >= seen + 10, 30, cli, f"frames after restart {restart + 1}")
    assert cli.stop() == 0, cli.stderr[-2000:]
    assert "5 reconnects" in cli.stderr, cli.stderr[-2000:]
    assert cli.stderr.count("stream resumed after") == 5
    assert "Traceback" not in cli.stderr


def test_a_camera_resumed_with_a_users_file_as_a_new_output_is_told_to_choose_another_path(rtsp_server,
                                                                                              pose_weights, tmp_path):
    """A camera keeps its IDs and counts in --state, and an output added on its restart is fine (unlike a resumed
    video's). Given a file of the user's as that new output, the refusal said 'leave --jsonl out to resume, or
    start over: --fresh-state --overwrite': drop the output or throw away the camera's IDs and counts, where
    another path (or --overwrite) is all it takes."""
    from tests.conftest import run_cli

    server = rtsp_server()
    state, mine = tmp_path / "state", tmp_path / "mine.jsonl"
    first = run_cli("run", server.url, "--source-id", "gate", "--model", str(pose_weights), "--imgsz", "160",
                    "--state", str(state), "--max-frames", "5", "--quiet", timeout=120)
    assert first.returncode == 0 and (state / "gate.json").exists(), first.stderr[-2000:]
    mine.write_text('{"mine": 1}\n', encoding="utf-8")
    again = run_cli("run", server.url, "--source-id", "gate", "--model", str(pose_weights), "--imgsz", "160",
                    "--state", str(state), "--max-frames", "5", "--jsonl", str(mine), "--quiet", timeout=120)
    errors = [line for line in again.stderr.splitlines() if line.startswith("trackstream: error: ")]
    assert again.returncode == 2 and len(errors) == 1 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert f"--jsonl of source gate: {mine} exists; refusing to replace it (choose another path" in errors[0]
    assert "--fresh-state" not in errors[0] and mine.read_text(encoding="utf-8") == '{"mine": 1}\n'
    elsewhere = run_cli("run", server.url, "--source-id", "gate", "--model", str(pose_weights), "--imgsz", "160",
                        "--state", str(state), "--max-frames", "5", "--jsonl", str(tmp_path / "new.jsonl"),
                        "--quiet", timeout=120)
    assert elsewhere.returncode == 0 and lines(tmp_path / "new.jsonl"), elsewhere.stderr[-2000:]  # drops count too


def test_dead_camera_does_not_slow_the_other_and_outputs_stay_separate(rtsp_server, tmp_path):
    """Three cameras: 'back' dies mid-run (and is retried forever), 'side' never answers and gives up after one
    attempt; 'front' keeps its frame rate throughout. The give-up is reported at the end as a non-zero exit."""
    alive, dying = rtsp_server(), rtsp_server()
    options = "\n".join(f"    {k}: {v}" for k, v in FAST_RECONNECT.items())
    config = write_config(tmp_path, (
        "sources:\n"
        f"  - id: front\n    url: {alive.url}\n{options}\n"
        f"  - id: back\n    url: {dying.url}\n{options}\n"
        f"  - id: side\n    url: {alive.url_for('/missing')}\n    reconnect_max_attempts: 1\n"
        "output:\n  jsonl: 'out/{source}.jsonl'\n"))
    front, back = tmp_path / "out" / "front.jsonl", tmp_path / "out" / "back.jsonl"
    cli = Cli(tmp_path, "run", "--config", config, "--model", "yolo11n.yaml", "--imgsz", "160", "--quiet")
    wait_for(lambda: len(lines(front)) >= 20 and len(lines(back)) >= 20, 120, cli, "frames from both cameras")

    def rate(path: Path, seconds: float) -> float:
        start = len(lines(path))
        time.sleep(seconds)
        return (len(lines(path)) - start) / seconds

    before = rate(front, 3.0)
    dying.kill()
    time.sleep(1.0)
    back_count = len(lines(back))
    after = rate(front, 3.0)
    back_growth = len(lines(back)) - back_count
    code = cli.stop()
    errors = [line for line in cli.stderr.splitlines() if line.startswith("trackstream: error:")]
    assert code == 2 and len(errors) == 1 and "source side" in errors[0], cli.stderr[-2000:]
    assert "(the other sources keep running)" in cli.stderr
    assert after >= 0.6 * before and after >= 5, f"front fell from {before:.1f} to {after:.1f} fps"
    assert back_growth == 0
    assert {r["source_id"] for r in lines(front)} == {"front"} and {r["source_id"] for r in lines(back)} == {"back"}


def test_wrong_camera_path_exits_with_one_line_after_configured_attempts(rtsp_server, tmp_path):
    """(An unreachable port is covered at the source level in test_live_source.py.)"""
    server = rtsp_server(user="viewer", password=SECRET)
    url = server.url_for("/nope")
    config = write_config(tmp_path, "source:\n  reconnect_max_attempts: 2\n  reconnect_initial_delay: 0.2\n"
                                    "  open_timeout: 3.0\n")
    cli = Cli(tmp_path, "run", url, "--model", "yolo11n.yaml", "--imgsz", "64", "--config", config, "--quiet")
    code = cli.proc.wait(timeout=120)
    errors = [line for line in cli.stderr.splitlines() if line.startswith("trackstream: error:")]
    assert code != 0 and len(errors) == 1, cli.stderr[-2000:]
    assert "gave up after 2 attempts" in errors[0] and "viewer:***@" in errors[0] and "404" in errors[0]
    assert cli.stderr.count("retrying in") == 1
    assert SECRET not in cli.stderr + cli.stdout and "Traceback" not in cli.stderr


def test_wrong_camera_password_exits_at_once_with_one_line(rtsp_server, tmp_path):
    """A typo in the password is the user's to fix: no retrying forever, no traceback, no password shown."""
    server = rtsp_server(user="viewer", password=SECRET)
    wrong = "Wr0ng-typo-pw"
    cli = Cli(tmp_path, "run", server.url.replace(SECRET, wrong), "--source-id", "cam1", "--model", "yolo11n.yaml",
              "--imgsz", "64", "--quiet")
    t0 = time.monotonic()
    try:
        code = cli.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        cli.stop()
        pytest.fail(f"still running after 60 s: {cli.stderr[-2000:]}")
    took = time.monotonic() - t0
    errors = [line for line in cli.stderr.splitlines() if line.startswith("trackstream: error:")]
    assert code == 2 and errors == [f"trackstream: error: source cam1: rtsp://viewer:***@127.0.0.1:{server.port}"
                                    "/stream refused the user name and password (401 Unauthorized): check them "
                                    "in the URL"], cli.stderr[-2000:]
    assert "retrying" not in cli.stderr and "Traceback" not in cli.stderr
    assert not [text for text in (cli.stdout, cli.stderr) if wrong in text or SECRET in text]
    assert took < 30, f"exited after {took:.1f} s"


def test_a_camera_refusing_its_password_fails_alone_while_the_other_keeps_running(rtsp_server, tmp_path):
    server = rtsp_server(user="viewer", password=SECRET)
    options = "\n".join(f"    {k}: {v}" for k, v in FAST_RECONNECT.items())
    config = write_config(tmp_path, (
        "sources:\n"
        f"  - id: front\n    url: {server.url}\n{options}\n"
        f"  - id: door\n    url: {server.url.replace(SECRET, 'Wr0ng-typo-pw')}\n{options}\n"
        "output:\n  jsonl: 'out/{source}.jsonl'\n"))
    front = tmp_path / "out" / "front.jsonl"
    cli = Cli(tmp_path, "run", "--config", config, "--model", "yolo11n.yaml", "--imgsz", "160", "--quiet")
    wait_for(lambda: "source door" in cli.stderr and len(lines(front)) >= 20, 120, cli,
             "frames from front and door's error")
    seen = len(lines(front))
    wait_for(lambda: len(lines(front)) >= seen + 20, 30, cli, "front's frames after door failed")
    code = cli.stop()
    errors = [line for line in cli.stderr.splitlines() if line.startswith("trackstream: error:")]
    assert code == 2 and len(errors) == 1, cli.stderr[-2000:]
    assert "source door: rtsp://viewer:***@" in errors[0] and "refused the user name and password" in errors[0]
    assert "refused the user name and password (401 Unauthorized): check them in the URL (the other sources keep " \
           "running)" in cli.stderr
    assert "retrying" not in cli.stderr and "Traceback" not in cli.stderr
    assert "Wr0ng-typo-pw" not in cli.stderr + cli.stdout and SECRET not in cli.stderr + cli.stdout


def test_realtime_plays_a_file_like_a_camera_and_counts_drops(bikes_fast, pose_weights, tmp_path):
    """bikes.mp4's 250 frames shown at 250 fps last 1 s: played at that rate, a detector slower than
    250 fps (any CPU) must skip frames (counted) instead of falling behind."""
    jsonl = tmp_path / "rt.jsonl"
    cli = Cli(tmp_path, "run", str(bikes_fast), "--model", str(pose_weights), "--imgsz", "320", "--realtime",
              "--jsonl", str(jsonl), "--quiet")
    wait_for(lambda: len(lines(jsonl)) >= 1, 120, cli, "the first frame")
    first_output = time.monotonic()
    code = cli.proc.wait(timeout=120)
    played = time.monotonic() - first_output
    records = lines(jsonl)
    indexes = [r["frame_index"] for r in records]
    assert code == 0, cli.stderr[-2000:]
    assert 0.8 <= played < 6, f"the 1 s video played for {played:.1f} s after its first result"
    assert 5 <= len(records) < 250 and indexes == sorted(set(indexes))
    assert records[-1]["pts"] > 0.9, "the end of the video was not reached"
    dropped = 250 - len(records)
    assert f"({dropped} dropped)" in cli.stderr, cli.stderr[-1000:]

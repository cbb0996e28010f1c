"""Redis freezing mid-run (SIGSTOP: the server accepts connections but never answers) must not hold up a
real two-camera run: the JSON Lines outputs are complete, the run ends on time, and one line per source
says how many entries could not be delivered."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

FRAMES = 150            # per source: about 2 s of detection at --imgsz 160 on two cores
FLUSH_TIMEOUT = 2.0
SOURCES = ("a", "b")


def _run(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _last_write(folder: Path) -> float:
    """When the last JSONL record was written (the end of processing), as Unix time."""
    return max((folder / f"{name}.jsonl").stat().st_mtime for name in SOURCES)


def _logged_at(line: str) -> float:
    """The Unix time of a log line of the run (``2026-12-01 22:37:05,542 WARNING ...``, local time)."""
    stamp, _, millis = line[:23].partition(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


def _frame_indexes(path: Path) -> list[int]:
    return [json.loads(line)["frame_index"] for line in path.read_text().splitlines()]


def test_redis_frozen_mid_run_delays_nothing_and_says_what_was_lost(
        redis_server, bikes_video, pose_weights, tmp_path):  # type: ignore[no-untyped-def]
    videos = []
    for name in SOURCES:                           # two file sources: ids "a" and "b"
        videos.append(str(tmp_path / f"{name}.mp4"))
        shutil.copy(bikes_video, videos[-1])
    # connect_timeout 30 makes the sink's socket timeout 30 s: a close that waited for the frozen server's
    # reply would show in the run time. A small buffer also drops entries while Redis is frozen.
    config = tmp_path / "redis.yaml"
    config.write_text(f"redis:\n  flush_timeout: {FLUSH_TIMEOUT}\n  connect_timeout: 30\n"
                      "  buffer_max_entries: 100\n")
    common = [*videos, "--model", str(pose_weights), "--imgsz", "160", "--max-frames", str(FRAMES), "--quiet"]

    t0 = time.monotonic()                          # the normal pace: the same run without Redis
    plain = _run([*common, "--jsonl", str(tmp_path / "plain" / "{source}.jsonl")])
    _, plain_err = plain.communicate(timeout=120)
    normal = time.monotonic() - t0
    assert plain.returncode == 0, plain_err

    assert redis_server.proc is not None
    client = redis_server.client()
    t0 = time.monotonic()
    run = _run([*common, "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--redis", redis_server.url,
                "--config", str(config)])
    try:
        while client.xlen("trackstream:a:frames") < 5:     # some frames are through: freeze Redis
            assert run.poll() is None and time.monotonic() - t0 < 60, run.communicate()[1]
            time.sleep(0.01)
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        _, stderr = run.communicate(timeout=120)
        stalled = time.monotonic() - t0
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
        if run.poll() is None:
            run.kill()
            run.wait(10)
    lost = [line for line in stderr.splitlines() if "could not be delivered" in line]
    closing = max((_logged_at(line) for line in lost), default=0.0) - _last_write(tmp_path / "out")
    print(f"normal run {normal:.1f} s, Redis frozen {stalled:.1f} s; the loss was reported {closing:.1f} s "
          f"after the last JSONL record\n{stderr}")

    assert run.returncode == 3, stderr             # finished, but an output lost data: the exit code says so
    assert "Traceback" not in stderr, stderr
    for name in SOURCES:                           # every frame written, as without Redis
        assert _frame_indexes(tmp_path / "out" / f"{name}.jsonl") == list(range(FRAMES))
        assert _frame_indexes(tmp_path / "plain" / f"{name}.jsonl") == list(range(FRAMES))
    # The sinks give up after flush_timeout (+0.5 s for a send in flight), not after a socket timeout (30 s).
    # Start-up and teardown vary by seconds on a shared machine: the run as a whole gets a loose bound, the
    # close itself (from the last record to the loss line, both stamped by the run) a tight one.
    assert stalled < 2 * normal + FLUSH_TIMEOUT + 2.0, (normal, stalled)
    assert 0 < closing < FLUSH_TIMEOUT + 1.5, closing
    for name in SOURCES:                           # one line per source: how many, where, why
        mine = [line for line in lost if f"trackstream:{name}:" in line]
        assert len(mine) == 1, lost
        found = re.search(r"WARNING trackstream\.redis: Redis at redis://127\.0\.0\.1:\d+/0: "
                          r"(\d+) entries could not be delivered \((\d+) published; ", mine[0])
        assert found and int(found[1]) > 0, mine[0]
        assert int(found[2]) >= 5 or name != "a", mine[0]       # Redis was frozen after a's 5th frame
    assert len(lost) == len(SOURCES), lost

"""SIGHUP (a closed terminal or SSH session) stops a run like SIGTERM; a second signal ends it at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av

from tests.conftest import REPO


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", *args, "--quiet"],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while len(_lines(path)) < n:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)


def test_sighup_saves_state_and_finishes_the_video(tmp_path, bikes_video, pose_weights):
    video, jsonl, state = tmp_path / "out.mp4", tmp_path / "out.jsonl", tmp_path / "state"
    proc = _start(str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--out", str(video),
                  "--jsonl", str(jsonl), "--state", str(state))
    _wait_for_lines(jsonl, 5, proc)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopping" in stderr and "Traceback" not in stderr
    records = _lines(jsonl)
    assert 5 <= len(records) < 250
    with av.open(str(video)) as container:            # finalised: it plays, every processed frame in it
        assert sum(1 for _ in container.decode(video=0)) == len(records)
    saved = json.loads((state / "bikes.json").read_text(encoding="utf-8"))
    assert saved["outputs"]["jsonl"]["bytes"] == jsonl.stat().st_size   # saved at the stop, nothing after it


def test_a_second_signal_exits_at_once(tmp_path, bikes_video, pose_weights):
    jsonl = tmp_path / "out.jsonl"
    proc = _start(str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--jsonl", str(jsonl))
    _wait_for_lines(jsonl, 2, proc)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopping now" in stderr


LEFT_STACK = """
import ctypes, mmap, os, signal
from pipelines.engine.launch import StopSignals, _SignalStack
libc = ctypes.CDLL(None, use_errno=True)
size = 32768
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
area = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
assert libc.sigaltstack(ctypes.byref(_SignalStack(area, 0, size)), None) == 0
libc.munmap(ctypes.c_void_p(area), ctypes.c_size_t(size))   # what OpenVINO's CPU plugin can leave behind
stopped = []
with StopSignals(lambda: stopped.append(1)):
    os.kill(os.getpid(), signal.SIGHUP)
print("stopped" if stopped else "not stopped")
"""


def test_a_signal_stops_the_run_even_when_a_library_left_an_unmapped_signal_stack():
    """The main thread's alternate signal stack unmapped under it (as OpenVINO's CPU plugin can leave it: a
    SIGHUP then ended runs with SIGSEGV) is replaced by the stop handling, so the signal stops the run."""
    done = subprocess.run([sys.executable, "-c", LEFT_STACK], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    assert done.returncode == 0 and done.stdout.strip() == "stopped", (done.returncode, done.stderr)

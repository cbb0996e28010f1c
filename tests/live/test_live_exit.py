"""A process that read a camera exits cleanly: no camera reader is left inside FFmpeg when the interpreter is torn
down. PyAV's timeout check (FFmpeg's interrupt callback, every 100 ms while a read or an open waits) takes the GIL,
and a reader doing that during the teardown killed about 1 run in 11 with SIGSEGV after all its work was done."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.sources.live import LiveSource
from tests.conftest import REPO
from tests.live.conftest import SourceThread

# Registered before pipelines is imported, so it runs after every hook of pipelines (atexit runs them last in,
# first out): the last Python that runs before the interpreter is torn down.
PROBE = """\
import atexit, sys, threading
atexit.register(lambda: print("READERS AT TEARDOWN", sorted(t.name for t in threading.enumerate()
                                                           if t.name.startswith("live-")), flush=True))
"""
# A script that opens a camera, reads until stopped after argv[2] seconds, closes it and ends.
SCRIPT = PROBE + """\
import logging, time
logging.basicConfig(level=logging.INFO)
from pipelines.sources.live import LiveSource
source = LiveSource(sys.argv[1], {"open_timeout": 3.0, "read_timeout": 3.0})
reader = threading.Thread(target=lambda: [None for _ in source.frames()], daemon=True)
reader.start()
time.sleep(float(sys.argv[2]))
source.stop()
reader.join()
source.close()
print("CLOSED", time.monotonic(), flush=True)
"""


class SilentCamera:
    """A real TCP server that accepts every connection and never answers: a camera hung in its RTSP handshake
    (FFmpeg's reader stays inside ``avformat_open_input`` until ``open_timeout``)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"rtsp://127.0.0.1:{self._sock.getsockname()[1]}/cam"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_camera() -> Iterator[SilentCamera]:
    camera = SilentCamera()
    yield camera
    camera.close()


def _script(url: str, read_for: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(read_for)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=env)


def _readers_at_teardown(stdout: str) -> str:
    return next((line for line in stdout.splitlines() if line.startswith("READERS AT TEARDOWN")), "(no probe line)")


def test_closing_a_camera_waits_the_moment_its_reader_needs_to_leave_ffmpeg(rtsp_server):
    """What a run returns after: the source's close() (the runner's reader calls it) leaves no reader running."""
    source = LiveSource(rtsp_server().url)
    frames: list[object] = []

    class Reader(SourceThread):
        def on_frame(self, frame: object) -> None:
            frames.append(frame)

        def on_status(self, status: object) -> None:
            pass

    reader = Reader(source)
    deadline = time.monotonic() + 30
    while len(frames) < 5 and time.monotonic() < deadline and reader.error is None:
        time.sleep(0.05)
    assert len(frames) >= 5, reader.error
    reader.finish()
    started = time.monotonic()
    source.close()
    took = time.monotonic() - started
    alive = [t.name for t in threading.enumerate() if t.name.startswith("live-") and t.name.endswith(source.source_id)]
    assert not alive, "a camera reader is still running (maybe inside FFmpeg) after close()"
    assert took < 0.5, f"close() took {took:.2f} s for a stream that flows (its next frame ends it)"


def test_a_script_that_read_a_camera_ends_with_no_reader_left_and_exit_0(rtsp_server):
    server = rtsp_server()
    done = _script(server.url, 1.5)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err[-2000:]
    assert _readers_at_teardown(out) == "READERS AT TEARDOWN []"


def test_a_camera_still_connecting_at_the_end_is_waited_for_within_its_open_timeout(silent_camera):
    """Stopped while FFmpeg still waits for the camera's answer: the exit waits (saying so) until the open times
    out (3 s here, longer than close() waits), rather than tear the interpreter down under the reader."""
    done = _script(silent_camera.url, 0.3)
    out, err = done.communicate(timeout=60)
    ended = time.monotonic()
    assert done.returncode == 0, err[-2000:]
    assert _readers_at_teardown(out) == "READERS AT TEARDOWN []"
    closed = float(next(line for line in out.splitlines() if line.startswith("CLOSED")).split()[1])
    assert ended - closed < 3.0, f"the exit waited {ended - closed:.1f} s (open_timeout is 3 s)"
    assert "waiting up to" in err and "live-reader-127.0.0.1" in err and "Traceback" not in err, err[-2000:]


def test_ctrl_c_while_the_exit_waits_for_a_connecting_camera_ends_at_once(silent_camera):
    done = _script(silent_camera.url, 0.3)
    assert done.stderr is not None
    for line in done.stderr:   # the exit says what it waits for
        if "waiting up to" in line:
            break
    done.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, err = done.communicate(timeout=30)
    assert done.returncode == 130 and time.monotonic() - started < 1.0, err[-2000:]
    assert "trackstream: stopping now" in err and "Traceback" not in err, err[-2000:]


def test_trackstream_run_stopped_while_its_camera_connects_exits_0_with_no_reader_left(silent_camera, tmp_path):
    """The CLI as a user runs it, stopped with SIGTERM while FFmpeg still waits for the camera's answer."""
    config = tmp_path / "config.yaml"
    config.write_text("source:\n  open_timeout: 3.0\n  read_timeout: 3.0\n")
    log = tmp_path / "stderr.txt"
    code = PROBE + "from pipelines.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    with open(log, "w") as err:
        cli = subprocess.Popen([sys.executable, "-c", code, "run", silent_camera.url, "--model", "yolo11n.yaml",
                                "--imgsz", "160", "--jsonl", str(tmp_path / "cam.jsonl"), "--config", str(config),
                                "--quiet"], stdout=subprocess.PIPE, stderr=err, text=True, cwd=str(tmp_path),
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while " on cpu: " not in Path(log).read_text() and cli.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)   # the model line: the run starts and its reader opens the camera
    time.sleep(0.5)
    cli.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, _ = cli.communicate(timeout=60)
    took, text = time.monotonic() - stopped, log.read_text()
    assert cli.returncode == 0, text[-2000:]
    assert _readers_at_teardown(out) == "READERS AT TEARDOWN []", text[-2000:]
    assert "0 frames" in text and "Traceback" not in text, text[-2000:]
    # within the open timeout (3 s) and the interpreter's exit, well before the 9 s the run would wait at most;
    # 4 s of slack: the suite runs two test files at once, and a loaded machine took 5.9 s
    assert "waiting up to" in text and took < 3.0 + 4.0, f"{took:.1f} s after SIGTERM: {text[-2000:]}"

"""Fixtures for live-camera tests: a real RTSP server (GStreamer, run by the system python) on a free port.

``rtsp_server(...)`` starts ``tests/rtsp_server.py`` serving bikes.mp4 in a loop at its real rate (25 fps) and
returns a handle that can ``kill()`` and ``start()`` the server again on the same port, as a camera that reboots.
Without the Debian packages (see tests/rtsp_server.py) the tests fail under CI and skip elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from pipelines.frames import StreamStatus, VideoFrame
from pipelines.sources.live import LiveSource
from tests.conftest import IN_CI, free_port

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "rtsp_server.py"


def _gst_available() -> Optional[str]:
    """None when the system python can run the RTSP server, else why not."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "missing = [e for e in ('x264enc', 'rtph264pay', 'appsrc', 'decodebin', 'avdec_h264') "
             "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return "python3-gi / gir1.2-gst-rtsp-server-1.0 not installed: " + done.stderr.strip().splitlines()[-1]
    if done.stdout.strip():
        return "GStreamer elements missing: " + done.stdout.strip()
    return None


class RtspServer:
    """One RTSP server process on a fixed port; ``url`` names its (first) mount, with credentials if any."""

    def __init__(self, video: Path, mounts: tuple[str, ...] = ("/stream",), user: Optional[str] = None,
                 password: Optional[str] = None, fps: Optional[float] = None,
                 encode_once: Optional[str] = None) -> None:
        self.video, self.mounts, self.user, self.password, self.fps = video, mounts, user, password, fps
        self.encode_once = encode_once  # a log folder: see rtsp_server.py's --encode-once
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[str]] = None

    def url_for(self, mount: str, *, credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if self.user and credentials else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{mount}"

    @property
    def url(self) -> str:
        return self.url_for(self.mounts[0])

    def start(self, timeout: float = 30.0) -> "RtspServer":
        cmd = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--video", str(self.video), "--port", str(self.port)]
        for mount in self.mounts:
            cmd += ["--mount", mount]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password or ""]
        if self.fps:
            cmd += ["--fps", str(self.fps)]
        if self.encode_once:
            cmd += ["--encode-once", self.encode_once]
        deadline = time.monotonic() + timeout
        while True:  # the port may linger for a moment after a kill
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                return self
            self.proc.wait(timeout=5)
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {line!r} {self.proc.stderr.read()!r}")
            time.sleep(0.3)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), like a camera losing power."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class SourceThread:
    """Reads a source in its own thread, as the runner does, until it ends or ``finish()``; subclasses keep what
    their tests look at (``on_frame``, ``on_status``; their lists exist before ``__init__`` starts the thread).
    ``slow`` seconds after each frame make a slow consumer."""

    finish_timeout = 10.0

    def __init__(self, source: LiveSource, slow: float = 0.0) -> None:
        self.source, self.slow = source, slow
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def on_frame(self, frame: VideoFrame) -> None:
        raise NotImplementedError

    def on_status(self, status: StreamStatus) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            for item in self.source.frames():
                if isinstance(item, VideoFrame):
                    self.on_frame(item)
                    if self.slow:
                        time.sleep(self.slow)
                else:
                    self.on_status(item)
        except BaseException as exc:  # noqa: BLE001 - kept for the test to assert on
            self.error = exc

    def finish(self) -> None:
        self.source.stop()
        self.thread.join(timeout=self.finish_timeout)
        assert not self.thread.is_alive(), "frames() did not end after stop()"


def require_gst() -> None:
    """Where the RTSP test server cannot run (no GStreamer for the system python): fail under CI, skip elsewhere."""
    why = _gst_available()
    if why is not None:
        if IN_CI:
            pytest.fail(f"RTSP test server unavailable under CI: {why}", pytrace=False)
        pytest.skip(f"RTSP test server unavailable: {why}")


@pytest.fixture(scope="session")
def gst_ready() -> None:
    require_gst()


@pytest.fixture
def rtsp_server(gst_ready: None, bikes_video: Path) -> Iterator[Callable[..., RtspServer]]:
    """Factory: ``rtsp_server(mounts=("/a",), user=..., password=...)`` -> a started ``RtspServer``."""
    started: list[RtspServer] = []

    def make(video: Optional[Path] = None, **kwargs: object) -> RtspServer:
        server = RtspServer(video or bikes_video, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.kill()

"""A real live HLS / MPEG-TS producer for tests: ffmpeg encoding wall-clock-stamped frames, served on loopback.

``HlsProducer`` feeds ffmpeg raw frames of bikes.mp4 at 25 fps from a thread; every frame carries the wall-clock
stamp of ``tests/rtsp_server.py`` (the ``time.time()`` in milliseconds when it was fed), so each picture is
unique and ``read_stamp`` tells, from the pixels alone, which picture a client got -- the test for "never the same
picture twice". ffmpeg writes a live playlist (``-f hls``, 1 s segments, 5 in the list, old ones deleted) that a
``ThreadingHTTPServer`` serves; ``kill()`` is a producer that dies (the stale playlist stays on the server),
``terminate()`` a clean stop (ffmpeg ends the playlist with ``#EXT-X-ENDLIST``), ``start()`` a restart (the new
ffmpeg begins again at media sequence 0 with timestamps from 0, as a rebooted encoder does).

With ``mpegts_port`` ffmpeg serves the stream itself instead, as one live MPEG-TS over HTTP
(``-listen 1``, ``http://127.0.0.1:PORT/live.ts``): an HTTP camera.
"""

from __future__ import annotations

import functools
import http.server
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

from tests.rtsp_server import _stamp

FPS = 25


def i420_frames(video: Path, count: int) -> tuple[list[bytes], int, int]:
    """The first ``count`` frames of ``video`` as I420 bytes, with width and height."""
    import av

    frames: list[bytes] = []
    with av.open(str(video)) as inp:
        stream = inp.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        for frame in inp.decode(stream):
            frames.append(frame.reformat(format="yuv420p").to_ndarray().tobytes())
            if len(frames) >= count:
                break
    return frames, width, height


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class LoopbackServer:
    """Serves a folder over HTTP on 127.0.0.1 (any free port) from a daemon thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class HlsProducer:
    """ffmpeg writing ``live.m3u8`` into ``directory`` from stamped frames fed at 25 fps (see module docstring)."""

    def __init__(self, ffmpeg: str, frames: list[bytes], size: tuple[int, int], directory: Path,
                 mpegts_port: Optional[int] = None) -> None:
        self.ffmpeg, self.frames, self.size, self.directory = ffmpeg, frames, size, directory
        self.mpegts_port = mpegts_port
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._feeder: Optional[threading.Thread] = None
        self.fed_last: Optional[float] = None  # time.time() of the last frame handed to ffmpeg

    def start(self) -> "HlsProducer":
        w, h = self.size
        cmd = [self.ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
               "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast",
               "-tune", "zerolatency", "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0"]
        if self.mpegts_port is not None:
            cmd += ["-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{self.mpegts_port}/live.ts"]
        else:
            cmd += ["-f", "hls", "-hls_time", "1", "-hls_list_size", "5",
                    "-hls_flags", "delete_segments+program_date_time", str(self.directory / "live.m3u8")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._feeder = threading.Thread(target=self._feed, args=(self.proc,), daemon=True)
        self._feeder.start()
        return self

    def wait_segments(self, count: int, timeout: float = 20.0) -> None:
        """Wait until the playlist lists ``count`` segments."""
        deadline = time.monotonic() + timeout
        playlist = self.directory / "live.m3u8"
        while time.monotonic() < deadline:
            if playlist.exists() and playlist.read_text().count("#EXTINF") >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"ffmpeg wrote no playlist with {count} segments in {timeout:g} s")

    def _feed(self, proc: "subprocess.Popen[bytes]") -> None:
        assert proc.stdin is not None
        w, h = self.size
        t0 = time.monotonic()
        n = 0
        last_ms = 0
        try:
            while proc.poll() is None:
                delay = t0 + n / FPS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                # A write blocks while ffmpeg is busy, and the frames behind it then go out back to back, within
                # one millisecond on a loaded machine: the stamp still rises, so every picture stays unique.
                last_ms = max(int(now * 1000), last_ms + 1)
                proc.stdin.write(_stamp(self.frames[n % len(self.frames)], w, h, last_ms))
                self.fed_last = now
                n += 1
        except (BrokenPipeError, ValueError, OSError):
            pass  # ffmpeg died or was stopped: the feed ends with it

    def kill(self) -> None:
        """SIGKILL: the producer dies; the last playlist it wrote stays on the server, never ended."""
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: ffmpeg finishes the playlist with #EXT-X-ENDLIST (a clean end of the stream)."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=10)
        if self._feeder is not None:
            self._feeder.join(timeout=5)

"""LiveSource against a real RTSP server: newest frames, reconnects, independent streams, clear failures."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from pipelines.errors import SourceError
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.sources.live import LiveSource
from tests.live.conftest import SourceThread
from tests.rtsp_server import read_index, read_stamp

FAST_RECONNECT = {"read_timeout": 1.0, "open_timeout": 3.0, "reconnect_initial_delay": 0.2,
                  "reconnect_max_delay": 1.0}


class Recorder(SourceThread):
    """Keeps what arrived from a source and when (``time.monotonic()``)."""

    def __init__(self, source: LiveSource, slow: float = 0.0) -> None:
        self.frames: list[tuple[float, VideoFrame]] = []
        self.statuses: list[StreamStatus] = []
        super().__init__(source, slow)

    def on_frame(self, frame: VideoFrame) -> None:
        self.frames.append((time.monotonic(), frame))

    def on_status(self, status: StreamStatus) -> None:
        self.statuses.append(status)

    def kinds(self) -> list[StatusKind]:
        return [s.kind for s in self.statuses]

    def rate(self, start: float, end: float) -> float:
        """Frames per second that arrived between two ``time.monotonic()`` instants."""
        return sum(1 for t, _ in self.frames if start <= t < end) / (end - start)

    def wait_frames(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline and self.error is None:
            time.sleep(0.05)
        assert len(self.frames) >= count, f"only {len(self.frames)} frames; error={self.error}"


def test_live_source_streams_newest_frames_at_camera_rate(rtsp_server):
    server = rtsp_server()
    rec = Recorder(LiveSource(server.url, FAST_RECONNECT, source_id="cam"))
    rec.wait_frames(10, timeout=15)
    t0 = time.monotonic()
    time.sleep(2.0)
    rate = rec.rate(t0, time.monotonic())
    rec.finish()
    frames = [f for _, f in rec.frames]
    assert rec.kinds()[0] is StatusKind.STARTED and rec.kinds()[-1] is StatusKind.ENDED
    assert frames[0].image.shape == (272, 640, 3) and frames[0].source_id == "cam"
    assert 17 <= rate <= 33, f"camera sends 25 fps, source delivered {rate:.1f}"
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert pts[-1] - pts[0] == pytest.approx(len(pts) / 25, rel=0.2)
    ages = [f.capture_time - read_stamp(f.image) for f in frames[-20:]]
    assert max(ages) < 0.5, f"frames arrive {max(ages):.2f} s after the camera sent them"
    # the luma plane a live frame hands out without converting it (the motion measure's, the capacity
    # benchmark's stamp reader) is the same picture, unmade BGR or not
    luma = frames[-1].luma()
    assert luma is not None and luma[0].shape == (272, 640) and read_stamp(luma[0]) == read_stamp(frames[-1].image)



def test_a_server_encoding_once_serves_indexed_frames_and_logs_when_each_went_out(rtsp_server, tmp_path):
    """The capacity benchmark's cameras (``--encode-once``): no x264 on the machine under test, and each frame's
    capture time read from the server's log by the index in its corner."""
    server = rtsp_server(encode_once=str(tmp_path))
    rec = Recorder(LiveSource(server.url, FAST_RECONNECT, source_id="cam"))
    rec.wait_frames(40, timeout=15)
    rec.finish()
    frames = [f for _, f in rec.frames][:40]
    indices = [read_index(f.image) for f in frames]
    assert all(i is not None and 0 <= i < 250 for i in indices), indices
    assert all(b > a for a, b in zip(indices, indices[1:])), f"frames out of order or misread: {indices}"
    sent: dict[int, float] = {}
    for line in (tmp_path / "stream.log").read_text().splitlines():
        index, millis = line.split()
        sent[int(index)] = int(millis) / 1000.0  # one loop in this test: each index went out once
    ages = [f.capture_time - sent[i] for f, i in zip(frames, indices)]  # type: ignore[index]
    assert all(0 <= a < 0.5 for a in ages), f"capture-to-decode ages {ages}"

def test_slow_consumer_gets_newest_frame_and_drops_are_counted(rtsp_server):
    server = rtsp_server()
    rec = Recorder(LiveSource(server.url, FAST_RECONNECT), slow=0.2)  # a 5 fps consumer on a 25 fps camera
    rec.wait_frames(15, timeout=20)
    rec.finish()
    source = rec.source
    frames = [f for _, f in rec.frames[3:]]
    ages = [time.time() - read_stamp(f.image) for f in frames[-3:]]
    assert source.dropped >= 2 * len(rec.frames), "4 of 5 frames should have been dropped"
    assert max(f.capture_time - read_stamp(f.image) for f in frames) < 0.5, "a stale frame was delivered"
    gaps = [b.index - a.index for a, b in zip(frames, frames[1:])]
    assert min(gaps) >= 3, f"consumer was handed old frames: index steps {gaps}"
    assert all(age < 5 for age in ages)


def test_server_restarts_show_as_gaps_in_statuses_and_timestamps(rtsp_server):
    """Two restarts at the source level (tests/live/test_live_cli.py restarts the camera 5 times in a run)."""
    server = rtsp_server()
    rec = Recorder(LiveSource(server.url, FAST_RECONNECT, source_id="cam"))
    rec.wait_frames(5, timeout=15)
    for _ in range(2):
        server.kill()
        time.sleep(0.5)
        server.start()
        rec.wait_frames(len(rec.frames) + 10, timeout=15)
    rec.finish()
    kinds = rec.kinds()
    assert rec.error is None
    assert kinds.count(StatusKind.GAP) == 2 and kinds.count(StatusKind.RESUMED) == 2
    assert rec.source.reconnects == 2
    assert kinds[0] is StatusKind.STARTED and kinds[-1] is StatusKind.ENDED
    resumed = [s for s in rec.statuses if s.kind is StatusKind.RESUMED]
    assert all(0 < float(s.detail["gap_seconds"]) < 10 for s in resumed)
    pts = [f.pts for _, f in rec.frames]
    assert all(b > a for a, b in zip(pts, pts[1:])), "timestamps must keep increasing across reconnects"
    jumps = sorted(b - a for a, b in zip(pts, pts[1:]))[-2:]
    assert all(j > 0.5 for j in jumps), "the outages must show in the timestamps (tracker clock)"


def test_dead_stream_does_not_slow_the_other(rtsp_server):
    alive, dying = rtsp_server(), rtsp_server()
    a = Recorder(LiveSource(alive.url, FAST_RECONNECT, source_id="a"))
    b = Recorder(LiveSource(dying.url, FAST_RECONNECT, source_id="b"))
    a.wait_frames(10, timeout=15)
    b.wait_frames(10, timeout=15)
    dying.kill()
    t0 = time.monotonic()
    time.sleep(3.0)
    rate = a.rate(t0, time.monotonic())
    b_after = b.rate(t0 + 0.5, time.monotonic())
    a.finish()
    b.finish()
    assert 17 <= rate <= 33, f"stream a dropped to {rate:.1f} fps while b was down"
    assert b_after == 0 and StatusKind.GAP in b.kinds()


@pytest.mark.parametrize("where", ["wrong path", "unreachable port"])
def test_unreadable_source_gives_up_after_configured_attempts(rtsp_server, where, caplog):
    server = rtsp_server()
    url = server.url_for("/no-such-path") if where == "wrong path" else "rtsp://127.0.0.1:9/stream"
    options = {**FAST_RECONNECT, "reconnect_max_attempts": 2}
    items = []
    caplog.set_level(logging.WARNING)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        for item in LiveSource(url, options).frames():
            items.append(item)
    message = str(err.value)
    assert "\n" not in message and "gave up after 2 attempts" in message
    assert ("404" in message or "not found" in message.lower()) if where == "wrong path" else True
    assert [i.kind for i in items] == [StatusKind.ENDED]
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 1
    assert time.monotonic() - t0 < 10


def test_password_never_leaks_from_a_live_source(rtsp_server, caplog):
    secret = "Pa55-w0rd-xyz"
    server = rtsp_server(user="viewer", password=secret)
    caplog.set_level(logging.DEBUG)
    rec = Recorder(LiveSource(server.url, FAST_RECONNECT))
    rec.wait_frames(5, timeout=15)
    rec.finish()
    wrong = server.url.replace(secret, secret + "-wrong")
    with pytest.raises(SourceError) as err:
        list(LiveSource(wrong, {**FAST_RECONNECT, "reconnect_max_attempts": 1}).frames())
    assert "401" in str(err.value) or "unauthorized" in str(err.value).lower()
    seen = [str(err.value), rec.source.source_id, caplog.text, *(repr(s) for s in rec.statuses)]
    assert not [text for text in seen if secret in text]


@pytest.mark.parametrize("credentials", ["wrong password", "none"])
def test_a_camera_refusing_the_credentials_ends_the_source_at_once_with_one_clear_line(rtsp_server, credentials,
                                                                                       caplog):
    """A 401 before the source ever connected is a mistake in the URL, not an outage: retrying it forever (the
    default) would leave a typo in the password waiting without a word."""
    secret, wrong = "Pa55-w0rd-xyz", "Wr0ng-typo-pw"
    server = rtsp_server(user="viewer", password=secret)
    url = server.url.replace(secret, wrong) if credentials == "wrong password" else server.url_for(
        "/stream", credentials=False)
    caplog.set_level(logging.DEBUG)
    t0 = time.monotonic()
    rec = Recorder(LiveSource(url, FAST_RECONNECT, source_id="cam1"))
    rec.thread.join(timeout=10)
    ended_after = time.monotonic() - t0
    rec.finish()
    where = f"127.0.0.1:{server.port}/stream"
    expected = (f"source cam1: rtsp://viewer:***@{where} refused the user name and password (401 Unauthorized): "
                "check them in the URL" if credentials == "wrong password" else
                f"source cam1: rtsp://{where} needs a user name and password (401 Unauthorized): add them to the "
                "URL as USER:PASSWORD@ before the host")
    assert isinstance(rec.error, SourceError) and str(rec.error) == expected, rec.error
    assert ended_after < 3, f"gave up after {ended_after:.1f} s"
    assert rec.kinds() == [StatusKind.ENDED] and rec.source.connect_failures == 1
    assert "retrying" not in caplog.text
    seen = [str(rec.error), caplog.text, *(repr(s) for s in rec.statuses)]
    assert not [text for text in seen if wrong in text or secret in text]


def test_a_camera_whose_password_changes_mid_run_is_retried_with_the_reason_until_it_takes_it_again(rtsp_server,
                                                                                                    caplog):
    """Once connected, a 401 is a camera being reconfigured: keep retrying (and say why) until it is back."""
    secret = "Pa55-w0rd-xyz"
    server = rtsp_server(user="viewer", password=secret)
    caplog.set_level(logging.WARNING)
    rec = Recorder(LiveSource(server.url, FAST_RECONNECT, source_id="cam1"))
    rec.wait_frames(5, timeout=15)
    server.kill()
    server.password = "changed-on-the-camera"
    server.start()

    def refusals() -> list[str]:
        return [r.getMessage() for r in caplog.records if "refused the user name and password" in r.getMessage()]

    deadline = time.monotonic() + 15
    while len(refusals()) < 3 and rec.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rec.error is None and rec.thread.is_alive(), rec.error
    assert len(refusals()) >= 3 and all("retrying in" in line and "viewer:***@" in line for line in refusals())
    server.kill()
    server.password = secret
    server.start()
    count = len(rec.frames)
    rec.wait_frames(count + 5, timeout=15)
    rec.finish()
    assert StatusKind.RESUMED in rec.kinds() and rec.error is None
    assert secret not in caplog.text


def test_frozen_camera_is_caught_by_the_watchdog_and_resumes(rtsp_server):
    """SIGSTOP freezes the server: sockets stay open but nothing is sent, and new connections hang -- the case
    where FFmpeg's reads and opens block. The watchdog must declare a gap within read_timeout and keep trying."""
    import os
    import signal

    server = rtsp_server()
    rec = Recorder(LiveSource(server.url, {**FAST_RECONNECT, "open_timeout": 1.0}, source_id="cam"))
    rec.wait_frames(10, timeout=15)
    os.kill(server.proc.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        deadline = time.monotonic() + 5
        while StatusKind.GAP not in rec.kinds() and time.monotonic() < deadline:
            time.sleep(0.05)
        noticed = time.monotonic() - frozen_at
        time.sleep(2.5)  # a few open attempts against the frozen server, each abandoned by the watchdog
        failures = rec.source.connect_failures
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    count = len(rec.frames)
    rec.wait_frames(count + 10, timeout=20)
    rec.finish()
    assert StatusKind.GAP in rec.kinds() and noticed < 2.5, f"gap noticed after {noticed:.1f} s"
    assert failures >= 1, "opening a frozen server must time out and be retried"
    assert StatusKind.RESUMED in rec.kinds() and rec.error is None


def test_rtsp_over_udp_delivers_frames(rtsp_server):
    server = rtsp_server()
    rec = Recorder(LiveSource(server.url, {**FAST_RECONNECT, "rtsp_transport": "udp"}))
    rec.wait_frames(10, timeout=15)
    rec.finish()
    assert rec.frames[-1][1].image.shape == (272, 640, 3)


def remux_to_mpegts(src, dst, offset: float = 0.0) -> None:
    """Copy the H.264 packets of ``src`` into an MPEG-TS file (the format HTTP cameras and HLS segments use),
    their timestamps moved ``offset`` seconds later."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in inp.demux(stream_in):
            if packet.dts is not None:
                shift = round(offset / packet.time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = stream_out
                out.mux(packet)


def test_http_stream_is_read_and_reconnected_after_it_ends(bikes_video, tmp_path):
    """An HTTP URL goes through the same live path (here an MPEG-TS file over HTTP: when it ends, that is a gap
    and the source reconnects, as it would for an HTTP camera that hung up; the next request gets the video that
    follows, as from a camera -- the same file again would be old video, see tests/live/test_hls.py)."""
    import functools
    import http.server

    remux_to_mpegts(bikes_video, tmp_path / "bikes.ts")
    remux_to_mpegts(bikes_video, tmp_path / "later.ts", offset=20.0)
    requests: list[str] = []

    class Camera(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the base class's name
            requests.append(self.path)
            if len(requests) > 1:
                self.path = "/later.ts"
            super().do_GET()

    handler = functools.partial(Camera, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/bikes.ts"
        rec = Recorder(LiveSource(url, FAST_RECONNECT, source_id="http"), slow=0.01)
        deadline = time.monotonic() + 20
        while StatusKind.RESUMED not in rec.kinds() and time.monotonic() < deadline:
            time.sleep(0.05)
        rec.finish()
    finally:
        httpd.shutdown()
    assert rec.kinds()[:3] == [StatusKind.STARTED, StatusKind.GAP, StatusKind.RESUMED]
    assert rec.frames and rec.frames[0][1].image.shape == (272, 640, 3)

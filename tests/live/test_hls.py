"""LiveSource on real live HLS and MPEG-TS-over-HTTP streams (ffmpeg on loopback): outages never replay old video,
an ended playlist is an end of stream with the normal backoff, gap figures are the real outage, and bursty
segments are sampled evenly.

Every frame the producer feeds carries its wall-clock stamp in its pixels (tests/live/hls_producer.py), so "the
same picture twice" is checked on the pictures the source hands on, not on its own bookkeeping.
"""

from __future__ import annotations

import logging
import re
import statistics
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.sources.live import LiveSource
from tests.live.conftest import SourceThread
from tests.conftest import free_port, require_binary
from tests.live.hls_producer import HlsProducer, LoopbackServer, i420_frames
from tests.rtsp_server import read_stamp

OPTIONS = {"read_timeout": 2.5, "open_timeout": 2.0, "reconnect_initial_delay": 0.2, "reconnect_max_delay": 1.6}
RETRY = re.compile(r"retrying in ([0-9.]+) s")


class Reader(SourceThread):
    """Keeps each frame's pixel stamp and each status with its time."""

    finish_timeout = 15.0

    def __init__(self, source: LiveSource, slow: float = 0.0) -> None:
        self.frames: list[VideoFrame] = []
        self.stamps: list[Optional[float]] = []
        self.received: list[float] = []  # time.time() when each frame came out of the source
        self.statuses: list[tuple[float, StreamStatus]] = []
        super().__init__(source, slow)

    def on_frame(self, frame: VideoFrame) -> None:
        self.frames.append(frame)
        self.received.append(time.time())
        self.stamps.append(read_stamp(frame.image))

    def on_status(self, status: StreamStatus) -> None:
        self.statuses.append((time.time(), status))

    def kinds(self) -> list[StatusKind]:
        return [s.kind for _, s in self.statuses]

    def wait_for(self, kind: StatusKind, count: int, timeout: float) -> None:
        self.wait_until(lambda: self.kinds().count(kind) >= count, timeout, f"{kind.value} #{count}")

    def wait_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``done`` until it holds; ``timeout`` is generous, for a loaded machine (a pass never waits it out)."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline and self.error is None:
            time.sleep(0.05)
        assert done(), f"no {what} in {timeout:g} s: {self.kinds()} error={self.error}"

    def last_gap_before(self, when: float) -> float:
        return max(t for t, s in self.statuses if s.kind is StatusKind.GAP and t < when)

    def last_frame_before(self, when: float) -> float:
        return max(t for t in self.received if t < when)

    def first_resume_after(self, when: float) -> StreamStatus:
        return next(s for t, s in self.statuses if s.kind is StatusKind.RESUMED and t > when)


@pytest.fixture
def hls(bikes_video: Path, tmp_path: Path) -> Iterator[Callable[[], tuple[HlsProducer, str]]]:
    """Factory: a started ffmpeg HLS producer and the URL of its playlist on a loopback HTTP server."""
    ffmpeg = require_binary("ffmpeg")
    frames, width, height = i420_frames(bikes_video, 50)
    made: list[HlsProducer] = []
    servers: list[LoopbackServer] = []

    def make() -> tuple[HlsProducer, str]:
        folder = tmp_path / f"hls{len(made)}"
        folder.mkdir()
        producer = HlsProducer(ffmpeg, frames, (width, height), folder).start()
        made.append(producer)
        servers.append(LoopbackServer(folder))
        producer.wait_segments(2)
        return producer, servers[-1].url("live.m3u8")

    yield make
    for producer in made:
        producer.kill()
    for server in servers:
        server.close()


def retries(caplog: pytest.LogCaptureFixture, start: float, end: float) -> list[tuple[float, float]]:
    """(wall time, announced delay) of each "retrying in X s" log line between two ``time.time()`` instants."""
    found = [(r.created, float(m.group(1))) for r in caplog.records
             if (m := RETRY.search(r.getMessage())) and start <= r.created < end]
    return found


def wait_retries(reader: Reader, caplog: pytest.LogCaptureFixture, since: float, count: int, at_least: float,
                 timeout: float = 60.0) -> float:
    """Wait until ``count`` "retrying" lines were logged after ``since`` and ``at_least`` seconds have passed since
    it; returns ``time.time()`` then. On a loaded machine every attempt takes longer (an ended playlist or a re-sent
    file is downloaded and decoded again each time), so a fixed sleep can end before the attempts it counts."""
    def in_gap() -> bool:
        return reader.kinds()[-1] is StatusKind.GAP

    # a source that resumed (or ended) meanwhile stops the wait: the caller's own assertion then says what went wrong
    reader.wait_until(lambda: len(retries(caplog, since, float("inf"))) >= count or not in_gap(), timeout,
                      f"{count} reconnect attempts after the gap")
    if in_gap():
        time.sleep(max(0.0, since + at_least - time.time()))
    return time.time()


def storm_ceiling(window: float, initial: float, ceiling: float) -> int:
    """The most "retrying" lines a correct backoff can log in ``window`` seconds after a gap: every delay at its
    shortest (half its base, the jitter's floor) and every attempt failing at once. More is a reconnect storm.
    It depends on the window only, not on how fast the machine is (a fixed count would)."""
    count, waited = 0, 0.0
    while waited <= window:
        count += 1  # an attempt after ``waited`` seconds of backoff fails and announces its delay
        waited += 0.5 * min(ceiling, initial * 2 ** (count - 1))
    return count


def assert_backoff(found: list[tuple[float, float]], initial: float, ceiling: float) -> None:
    """Consecutive failed attempts: the n-th waits min(ceiling, initial * 2**(n-1)) x [0.5, 1] and really waits."""
    for n, (_, delay) in enumerate(found, start=1):
        base = min(ceiling, initial * 2 ** (n - 1))
        assert 0.5 * base - 0.05 <= delay <= base + 0.05, f"attempt {n} waited {delay} s, backoff says {base} s"
    for (t0, delay), (t1, _) in zip(found, found[1:]):
        assert t1 - t0 >= delay - 0.05, f"retried {t1 - t0:.2f} s after announcing {delay} s"


def test_outages_never_replay_and_an_ended_playlist_backs_off(hls, caplog):
    caplog.set_level(logging.INFO, logger="pipelines.sources.live")
    producer, url = hls()
    reader = Reader(LiveSource(url, OPTIONS, source_id="hls"))
    reader.wait_for(StatusKind.STARTED, 1, timeout=15)
    time.sleep(3.0)

    producer.kill()  # dies: the stale playlist stays on the server and lists its last segments
    killed = time.time()
    reader.wait_for(StatusKind.GAP, 1, timeout=10)
    first_gap = reader.last_gap_before(time.time() + 1)
    # FFmpeg's MPEG-TS demuxer holds the last frames of a segment until the next one begins: when the producer
    # dies they were never decoded, and the first reconnect gets them -- new pictures, handed on once. That
    # attempt may take open + read timeout and more on a loaded machine: wait for its outcome (a resume, or a
    # failed attempt), not for a fixed time that could end before it and miscount the tail.
    reader.wait_until(lambda: StatusKind.RESUMED in reader.kinds() or bool(retries(caplog, first_gap, float("inf"))),
                      timeout=30, what="outcome of the first reconnect to the dead producer's playlist")
    if StatusKind.RESUMED in reader.kinds():
        reader.wait_for(StatusKind.GAP, 2, timeout=15)  # the tail's connection ends before the producer returns
    time.sleep(max(0.0, reader.last_gap_before(time.time() + 1) + 6.0 - time.time()))
    tail = reader.kinds().count(StatusKind.RESUMED)
    assert tail <= 1, f"resumed {tail} times on a dead producer's playlist"
    restarted = time.time()
    producer.start()
    reader.wait_for(StatusKind.RESUMED, tail + 1, timeout=20)
    time.sleep(2.0)

    producer.terminate()  # a clean stop: ffmpeg ends the playlist with #EXT-X-ENDLIST
    ended = time.time()
    reader.wait_for(StatusKind.GAP, tail + 2, timeout=15)
    # at least 6 s on the ended playlist, and at least two attempts however slowly a loaded machine decodes it
    restarted2 = wait_retries(reader, caplog, reader.last_gap_before(time.time() + 1), count=2, at_least=6.0)
    assert reader.kinds().count(StatusKind.RESUMED) == tail + 1, "resumed on the ended playlist"
    producer.start()
    reader.wait_for(StatusKind.RESUMED, tail + 2, timeout=20)
    time.sleep(1.0)
    reader.finish()

    assert reader.error is None
    stamps = reader.stamps
    assert None not in stamps, "a frame without a readable stamp"
    repeated = len(stamps) - len(set(stamps))
    assert repeated == 0, f"{repeated} pictures were handed on twice"
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "old video was handed on after newer video"
    kinds = reader.kinds()
    assert kinds == [StatusKind.STARTED, *[StatusKind.GAP, StatusKind.RESUMED] * (tail + 2), StatusKind.ENDED], kinds
    assert reader.source.reconnects == tail + 2 and reader.source.replayed > 0
    if tail:
        late = [stamp for stamp, t in zip(stamps, reader.received) if killed < t < restarted]
        assert late and max(late) < killed, "while the producer was dead only its last pictures may come"
    for restart in (restarted, restarted2):  # the real outage: last frame before it -> first frame after it
        gap = float(reader.first_resume_after(restart).detail["gap_seconds"])
        assert gap >= restart - reader.last_frame_before(restart), (gap, restart - reader.last_frame_before(restart))

    dead = retries(caplog, reader.last_gap_before(restarted), restarted)
    gap_end = reader.last_gap_before(restarted2)
    finished = retries(caplog, gap_end, restarted2)
    most = storm_ceiling(restarted2 - gap_end, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])
    assert len(dead) <= 3, f"{len(dead)} attempts on a dead producer's playlist (each waits open + read timeout)"
    assert 2 <= len(finished) <= most, \
        f"{len(finished)} attempts in {restarted2 - gap_end:.1f} s on an ended playlist (a reconnect storm?)"
    assert_backoff(dead, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])
    assert_backoff(finished, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])
    failures = [r.getMessage() for r in caplog.records if r.created >= ended and RETRY.search(r.getMessage())]
    assert all("only old video" in text for text in failures), failures


def test_a_slow_consumer_takes_frames_spread_evenly_over_each_segment(hls):
    """The detector takes ~8 frames a second of a 25 fps stream that arrives one 1 s segment at a time."""
    _, url = hls()
    reader = Reader(LiveSource(url, OPTIONS, source_id="hls"), slow=0.12)
    reader.wait_for(StatusKind.STARTED, 1, timeout=15)
    time.sleep(1.5)
    first = len(reader.frames)
    time.sleep(5.0)
    reader.finish()
    pts = [f.pts for f in reader.frames[first:]]
    steps = [b - a for a, b in zip(pts, pts[1:])]
    assert len(steps) >= 20, f"only {len(steps) + 1} frames in 5 s"
    spread = statistics.pstdev(steps) / statistics.mean(steps)
    assert max(steps) < 0.4, f"a {max(steps):.2f} s hole between processed frames (steps {steps})"
    assert spread < 0.4, f"processed frames bunch up: steps {[round(s, 2) for s in steps]}"
    ages = [f.capture_time - stamp for f, stamp in zip(reader.frames[first:], reader.stamps[first:])
            if stamp is not None]
    assert max(ages) - min(ages) < 0.6, "the paced capture time must follow the stream's clock"


def test_mpegts_over_http_camera_restart_resumes_with_new_video_only(bikes_video, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipelines.sources.live")
    frames, width, height = i420_frames(bikes_video, 50)
    producer = HlsProducer(require_binary("ffmpeg"), frames, (width, height), tmp_path, mpegts_port=free_port())
    try:
        producer.start()
        reader = Reader(LiveSource(f"http://127.0.0.1:{producer.mpegts_port}/live.ts", OPTIONS, source_id="ts"))
        reader.wait_for(StatusKind.STARTED, 1, timeout=15)
        time.sleep(2.0)
        producer.kill()
        reader.wait_for(StatusKind.GAP, 1, timeout=10)
        restarted = wait_retries(reader, caplog, reader.last_gap_before(time.time() + 1), count=2, at_least=3.0)
        producer.start()
        reader.wait_for(StatusKind.RESUMED, 1, timeout=20)
        time.sleep(1.5)
        reader.finish()
    finally:
        producer.kill()
    stamps = reader.stamps
    repeats = [(i, a, b) for i, (a, b) in enumerate(zip(stamps, stamps[1:])) if a is not None and b is not None
               and not b > a]
    assert None not in stamps and not repeats, f"a picture came twice: (position, stamp, next stamp) {repeats}"
    assert reader.kinds() == [StatusKind.STARTED, StatusKind.GAP, StatusKind.RESUMED, StatusKind.ENDED]
    gap = float(reader.first_resume_after(restarted).detail["gap_seconds"])
    assert gap >= restarted - reader.last_frame_before(restarted)
    down = reader.last_gap_before(restarted)
    refused = retries(caplog, down, restarted)
    most = storm_ceiling(restarted - down, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])
    assert 2 <= len(refused) <= most, f"{len(refused)} attempts in {restarted - down:.1f} s while the camera was down"
    assert_backoff(refused, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])


def test_a_file_sent_again_over_http_is_not_processed_again(bikes_video, tmp_path, caplog):
    """The same MPEG-TS file on every request: after it ends, each reconnect brings only old video."""
    from tests.live.test_live_source import remux_to_mpegts

    caplog.set_level(logging.INFO, logger="pipelines.sources.live")
    remux_to_mpegts(bikes_video, tmp_path / "bikes.ts")
    server = LoopbackServer(tmp_path)
    try:
        reader = Reader(LiveSource(server.url("bikes.ts"), OPTIONS, source_id="file"))
        reader.wait_for(StatusKind.GAP, 1, timeout=15)
        ended = reader.last_gap_before(time.time() + 1)
        # each attempt downloads and decodes the whole file again: slower on a loaded machine than a fixed 4 s
        until = wait_retries(reader, caplog, ended, count=2, at_least=4.0)
        reader.finish()
    finally:
        server.close()
    assert reader.kinds() == [StatusKind.STARTED, StatusKind.GAP, StatusKind.ENDED], reader.kinds()
    pts = [f.pts for f in reader.frames]
    assert len(pts) <= 250 and all(b > a for a, b in zip(pts, pts[1:]))
    again = retries(caplog, ended, until)
    most = storm_ceiling(until - ended, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])
    assert 2 <= len(again) <= most and reader.source.replayed >= 200 * len(again), (len(again), most)
    assert_backoff(again, OPTIONS["reconnect_initial_delay"], OPTIONS["reconnect_max_delay"])

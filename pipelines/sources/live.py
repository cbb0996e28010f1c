"""Live sources: RTSP/RTMP/HTTP(S)/HLS streams and webcams, read with PyAV.

A ``LiveSource`` always hands on the newest decoded frame (older ones waiting in its one-frame slot are dropped
and counted), notices a silent or broken stream with a watchdog, and reconnects with exponential backoff and
jitter -- forever by default. Health changes are yielded in order with the frames as ``StreamStatus`` values
(stream_started, stream_gap, stream_resumed, stream_ended).

A reconnect never hands on old video: every decoded frame is remembered by its stream time and a fingerprint of
its pixels (``pipelines/sources/replay.py``), and frames an earlier connection decoded -- a dead HLS producer's
stale playlist, an ended playlist played again, a file re-sent over HTTP -- are skipped. A connection that brings
only old video is a failed attempt (the backoff grows; an ended playlist is an end of stream), and
``stream_resumed`` comes with the first new frame. Its ``gap_seconds`` is the time from the last frame before the
outage to that first new frame. Segment-based streams (HLS) are paced by their timestamps, so a slow detector
takes frames spread evenly over each segment rather than the last frames of each download.

Timestamps (``VideoFrame.pts``) follow the stream's own clock within a connection and the wall clock across
reconnects, so the tracker sees a 4 s outage as 4 s of time: a gap shorter than the tracker's budget keeps IDs.

Credentials in a URL never leave this module: the source is named by its configured id or its URL without the
password, and every error text from FFmpeg is scrubbed before it is logged or raised.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from typing import Any, Generator, Iterator, Mapping, Optional
from urllib.parse import unquote, urlsplit


from pipelines.errors import SourceError
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.secrets import mask_url, redact_text, source_name, url_password
from pipelines.sources.backoff import Backoff
from pipelines.sources.base import SourceConfig
from pipelines.sources.file import FrameSelector
from pipelines.sources.rotation import ToBgr, deferred_picture, turned_size
from pipelines.sources.replay import SeenFrames
from pipelines.sources.watchdog import Connection, Decoded
from tracker.configutil import from_mapping

log = logging.getLogger(__name__)

MIN_RECONNECT_DELAY = 0.05  # s: even with reconnect_initial_delay 0, never retry in a tight loop
FIRST_LOOK_S = 1.0  # s at most a new connection waits for its second frame (which may state the rotation)
CLOSE_WAIT_S = 1.0  # s at most close() waits for the source's reader threads to leave FFmpeg (a flowing stream's
                    # reader ends at its next frame; one still opening is left to watchdog.finish_readers at exit)

def reading_options(options: "SourceConfig | Mapping[str, Any] | None") -> SourceConfig:
    """``options`` as a validated ``SourceConfig`` (a mapping is checked key by key)."""
    if options is None:
        return SourceConfig()
    if isinstance(options, SourceConfig):
        return options
    return from_mapping(SourceConfig, dict(options), "source")


def ffmpeg_input(url: str, settings: SourceConfig) -> tuple[str, Optional[str], dict[str, str]]:
    """(what to open, FFmpeg input format or None, FFmpeg options) for a live source specification."""
    options = {"fflags": "nobuffer", "flags": "low_delay", "analyzeduration": "500000", "probesize": "1000000"}
    read_us = str(int(settings.read_timeout * 1_000_000))
    if url.startswith("webcam:"):
        index = url.split(":", 1)[1] or "0"
        if not index.isdigit():
            raise SourceError(f"webcam index must be a number: {url!r} (e.g. webcam:0)")
        if sys.platform == "darwin":
            return index, "avfoundation", {"framerate": "30"}
        return f"/dev/video{index}", "v4l2", {}
    if url.startswith("/dev/video"):
        return url, "v4l2", {}
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        if settings.rtsp_transport not in ("tcp", "udp"):
            raise SourceError(f"rtsp_transport must be tcp or udp, got {settings.rtsp_transport!r}")
        options.update(rtsp_transport=settings.rtsp_transport, timeout=read_us)
    elif scheme in ("http", "https"):
        options.update(rw_timeout=read_us)
    return url, None, options


class LiveSource:
    """A camera or network stream. ``frames()`` yields ``VideoFrame`` and ``StreamStatus`` until ``stop()``,
    or until reconnecting is off / has used its attempts, or the server refuses the URL's credentials (401) or
    this user (403) before the source ever connected (then ``stream_ended`` and a ``SourceError``). A refusal
    after it had connected is retried like an outage (a camera being reconfigured comes back).

    Attributes:
        source_id: configured id, else the URL's host/path without credentials.
        fps, size: from the stream once connected (None before).
        dropped: frames decoded but replaced by a newer one before they were taken.
        reconnects: successful reconnections after a gap; ``connect_failures``: failed attempts (an attempt
            that brought only old video counts as failed).
        replayed: frames skipped because an earlier connection had decoded them already.
        undecoded: pictures coded as unchanged, handed on as the previous picture without decoding
            (``pipelines/sources/unchanged.py``).
    """

    is_live = True
    frame_count: Optional[int] = None

    def __init__(self, url: str, options: "SourceConfig | Mapping[str, Any] | None" = None,
                 source_id: Optional[str] = None) -> None:
        """``url``: the camera URL; ``options``: the reading options (a ``SourceConfig`` or its keys)."""
        self.options = reading_options(options)
        self._url = url
        password = url_password(self._url)
        self._secrets = tuple(s for s in (password, unquote(password) if password else None) if s)
        self.display_url = mask_url(self._url)
        self.source_id = source_id or source_name(self._url)
        self._open_url, self._fmt, self._ffmpeg_options = ffmpeg_input(self._url, self.options)
        self.fps: Optional[float] = None
        self.size: Optional[tuple[int, int]] = None
        self._rotation = 0  # display rotation of the current connection (degrees counter-clockwise)
        self._to_bgr = ToBgr()  # one scaler for the pictures of every connection
        self.dropped = 0
        self._dropped_before = 0  # drops of earlier connections
        self.reconnects = 0
        self.connect_failures = 0
        self.frames_out = 0
        self.replayed = 0
        self._replayed_before = 0  # replays skipped by earlier connections
        self.undecoded = 0
        self._undecoded_before = 0
        self._seen = SeenFrames()
        self._generation = 0
        self._last_capture: Optional[float] = None  # capture_time of the last frame handed on
        self.connected = False  # True while frames flow (between started/resumed and gap/ended)
        self._stop = threading.Event()
        self._conn: Optional[Connection] = None
        self._readers: list[Connection] = []  # this source's connections whose thread may still run
        self._counter = itertools.count()
        self._t0: Optional[float] = None
        self._last_pts = -1.0
        self._conn_base: Optional[tuple[float, Optional[float]]] = None

    # -- public API -------------------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """``text`` with this source's URL password (raw and percent-decoded) replaced by ``***``."""
        return redact_text(text, *self._secrets)

    def stop(self) -> None:
        """Make ``frames()`` end soon (thread-safe)."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            conn.slot.close()

    def close(self) -> None:
        """Stop, and wait up to ``CLOSE_WAIT_S`` for every reader thread of this source to end, so that none is
        left inside FFmpeg once the run that owned the source has returned (see ``watchdog``)."""
        self.stop()
        self._drop_connection()
        deadline = time.monotonic() + CLOSE_WAIT_S
        readers = list(self._readers)
        for conn in readers:   # each was cancelled when dropped, an attempt abandoned before as well
            conn.join(deadline - time.monotonic())
        left = self._readers = [c for c in readers if c.running]
        if left:
            log.debug("source %s: %d reader(s) still inside FFmpeg after %.1f s; they end on their timeouts",
                      self.source_id, len(left), CLOSE_WAIT_S)

    @property
    def pending(self) -> int:
        """Frames waiting in the source's slot (0 or 1)."""
        conn = self._conn
        return conn.slot.pending if conn is not None else 0

    def frames(self) -> Iterator[VideoFrame | StreamStatus]:
        """Frames and status values in order; blocks while waiting for the stream."""
        try:
            yield from self._run()
        finally:
            self._drop_connection()

    # -- the watchdog loop ------------------------------------------------------------------------------------

    def _run(self) -> Iterator[VideoFrame | StreamStatus]:
        s = self.options
        first_delay = max(s.reconnect_initial_delay, MIN_RECONNECT_DELAY)
        backoff = Backoff(first_delay, max(s.reconnect_max_delay, first_delay), s.reconnect_max_attempts)
        gap_since: Optional[float] = None
        connected_once = False
        while not self._stop.is_set():
            conn = self._connect()
            first = conn.slot.get(timeout=s.open_timeout + s.read_timeout)
            if first is None or self._stop.is_set():
                reason = self._attempt_failure(conn)
                self._drop_connection()
                if self._stop.is_set():
                    break
                self.connect_failures += 1
                delay = backoff.failed()
                refused = conn.refused is not None
                if refused and not connected_once:  # a mistake in the URL, not an outage: say so at once
                    yield self._status(StatusKind.ENDED, reason=reason)
                    raise SourceError(self.scrub(f"source {self.source_id}: {self._failure(reason, True)}"))
                if not s.reconnect or backoff.exhausted:
                    yield self._status(StatusKind.ENDED, reason=reason)
                    raise SourceError(self._give_up_message(self._failure(reason, refused), backoff.failures))
                # a 401 or 403 after it had connected lands here too: a camera being reconfigured comes back
                log.warning("source %s: %s; retrying in %.1f s", self.source_id, self._failure(reason, refused),
                            delay)
                self._stop.wait(delay)
                continue
            backoff.reset()
            # as a player shows it: the rotation the connection's frames state (pipelines/sources/rotation.py).
            # FFmpeg may hand the orientation SEI of a key frame on with the frame after it: look at that one too
            after = conn.slot.get(timeout=min(self.options.read_timeout, FIRST_LOOK_S))
            self._rotation = after.rotation if after is not None else first.rotation
            self.fps, self.size = conn.fps, turned_size(conn.size, self._rotation) if conn.size else None
            if not connected_once:
                connected_once = True
                log.info("source %s: connected to %s (%sx%s, %s fps)", self.source_id, self.display_url,
                         *(self.size or ("?", "?")), f"{self.fps:.3g}" if self.fps else "?")
                yield self._status(StatusKind.STARTED, url=self.display_url, fps=self.fps,
                                   size=list(self.size) if self.size else None)
            elif gap_since is not None:
                self.reconnects += 1
                gap = first.capture_time - (self._last_capture if self._last_capture is not None else gap_since)
                log.info("source %s: stream resumed after %.1f s (reconnect %d)", self.source_id, gap,
                         self.reconnects)
                yield self._status(StatusKind.RESUMED, gap_seconds=round(gap, 3), reconnects=self.reconnects)
            gap_since = None
            self._conn_base = None
            reason = yield from self._stream(conn, first, after)
            self._drop_connection()
            if self._stop.is_set():
                break
            gap_since = time.time()
            log.warning("source %s: stream gap: %s", self.source_id, reason)
            yield self._status(StatusKind.GAP, reason=reason)
            if not s.reconnect:
                yield self._status(StatusKind.ENDED, reason=reason)
                return
        yield self._status(StatusKind.ENDED, reason="stopped", stopped=True)

    def _stream(self, conn: Connection, first: Decoded, after: Optional[Decoded]) -> Generator[VideoFrame, None, str]:
        """Yield frames from one live connection (``first``, ``after`` taken already); returns why it stopped
        (stream ended, error, silence)."""
        item: Optional[Decoded] = first
        taken = [after] if after is not None else []
        while item is not None:
            self._count(conn)
            yield self._to_frame(item, self._rotation if item is first else item.rotation)
            if self._stop.is_set():
                return "stopped"
            item = taken.pop() if taken else conn.slot.get(timeout=self.options.read_timeout)
        self._count(conn)
        reason = conn.error or f"no frame for {self.options.read_timeout:g} s"
        return reason + (f" ({conn.replayed} old frames sent again were skipped)" if conn.replayed else "")

    # -- helpers ----------------------------------------------------------------------------------------------

    def _count(self, conn: Connection) -> None:
        self.dropped = self._dropped_before + conn.slot.dropped
        self.replayed = self._replayed_before + conn.replayed
        self.undecoded = self._undecoded_before + conn.undecoded

    def _attempt_failure(self, conn: Connection) -> str:
        """Why an attempt brought no new picture (the server may have sent only old video)."""
        self._count(conn)
        if conn.refused == 403:
            return ("refused access (403 Forbidden): the camera does not let this user (or this address) watch this "
                    "stream; check the user's rights on the camera")
        if conn.refused:
            if url_password(self._url) is not None:
                return "refused the user name and password (401 Unauthorized): check them in the URL"
            return ("needs a user name and password (401 Unauthorized): add them to the URL as USER:PASSWORD@ "
                    "before the host")
        wait = self.options.open_timeout + self.options.read_timeout
        if conn.replayed:
            old = f"only old video ({conn.replayed} frames sent again, skipped)"
            return f"{conn.error} after {old}" if conn.error else f"no new picture within {wait:g} s, {old}"
        return conn.error or f"no picture within {wait:g} s"

    def _connect(self) -> Connection:
        s = self.options
        self._dropped_before = self.dropped
        self._replayed_before = self.replayed
        self._undecoded_before = self.undecoded
        self._generation += 1
        self._conn = Connection(self._open_url, name=self.source_id, fmt=self._fmt, options=self._ffmpeg_options,
                                timeouts=(s.open_timeout, s.read_timeout), decode_threads=s.decode_threads,
                                selector=FrameSelector(max(1, s.vid_stride), s.max_fps), counter=self._counter,
                                scrub=self.scrub, seen=self._seen, generation=self._generation,
                                decoder=s.decoder).start()
        self._readers = [c for c in self._readers if c.running] + [self._conn]
        if self._stop.is_set():  # stop() ran while this attempt was being made: do not wait on it
            self._conn.slot.close()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.cancel()

    def _to_frame(self, item: Decoded, rotation: int) -> VideoFrame:
        if self._t0 is None:
            self._t0 = item.capture_time
        if self._conn_base is None or item.stream_time is None or self._conn_base[1] is None:
            self._conn_base = (item.capture_time - self._t0, item.stream_time)
            pts = self._conn_base[0]
        else:
            pts = self._conn_base[0] + (item.stream_time - self._conn_base[1])
        pts = max(pts, self._last_pts + 1e-6)
        self._last_pts = pts
        self._last_capture = item.capture_time
        # turned as a player shows it (display matrix / display-orientation SEI, pipelines/sources/rotation.py)
        # converted to BGR when a stage first needs the picture (a frame the schedule skips may never)
        picture = deferred_picture(item.frame, rotation, self._to_bgr)
        self.frames_out += 1
        return VideoFrame.deferred(picture, item.index, pts, self.source_id, item.capture_time)

    def _status(self, kind: StatusKind, **detail: object) -> StreamStatus:
        self.connected = kind in (StatusKind.STARTED, StatusKind.RESUMED)
        pts = self._last_pts if self._last_pts >= 0 else None
        clean = {k: self.scrub(v) if isinstance(v, str) else v for k, v in detail.items() if v is not None}
        return StreamStatus(kind=kind, source_id=self.source_id, wall_time=time.time(), pts=pts, detail=clean)

    def _failure(self, reason: str, refused: bool) -> str:
        """What went wrong, naming the URL (credentials masked): a refusal's ``reason`` reads after the URL."""
        return f"{self.display_url} {reason}" if refused else f"cannot read {self.display_url}: {reason}"

    def _give_up_message(self, failure: str, attempts: int) -> str:
        plural = "s" if attempts != 1 else ""
        tail = "reconnecting is off" if not self.options.reconnect else f"gave up after {attempts} attempt{plural}"
        return self.scrub(f"source {self.source_id}: {failure} ({tail})")

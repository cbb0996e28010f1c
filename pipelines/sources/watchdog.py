"""Reader threads that a watchdog can abandon, and the one-slot buffer between a reader and its consumer.

FFmpeg calls can block for a long time (a camera that accepts TCP but never sends a picture, a half-open socket),
and PyAV's own timeouts do not cover every case. So each connection attempt runs in its own daemon thread
(``Connection``) that only ever writes into its own ``LatestSlot``. The owner waits on that slot with a deadline:
when nothing arrives in time it calls ``cancel()`` and walks away. A cancelled thread may stay inside FFmpeg until
its timeouts end the call (``Connection.linger``), but it holds nothing the owner needs and whatever it still
produces is thrown away.

No such thread may still be inside FFmpeg when the interpreter finalizes: PyAV's timeout check (FFmpeg's interrupt
callback, called every 100 ms while a read or an open waits) takes the GIL, and a thread taking the GIL while the
interpreter is torn down kills the process with SIGSEGV -- after all its work was done. So a source's ``close()``
waits a moment for its readers (``Connection.join``), and at exit ``finish_readers`` (an ``atexit`` hook that
``pipelines/__init__.py`` registers, so it runs after every other hook of the package and before the interpreter
is torn down) waits for every reader still running, each until its own timeouts have ended it at the latest.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generic, Mapping, Optional, TypeVar

import av
import av.error

from pipelines.sources.pacing import StreamClockPacer
from pipelines.sources.replay import SeenFrames, frame_key
from pipelines.sources.rotation import Upright
from pipelines.sources.hwdecode import DecoderChoice, choose_decoder
from pipelines.sources.unchanged import FrameDecoder

if TYPE_CHECKING:
    from pipelines.sources.file import FrameSelector

T = TypeVar("T")
log = logging.getLogger(__name__)

SEGMENTED_FORMATS = ("hls", "applehttp", "dash")  # FFmpeg demuxers that deliver video a segment at a time
PACE_AHEAD = 32  # decoded frames a paced reader holds ahead of their time: the next segment is fetched meanwhile
LINGER_MARGIN_S = 2.0  # s a cancelled reader may need beyond its FFmpeg timeouts (decoding, closing the stream)
EXIT_NOTICE_S = 0.5  # s of waiting for readers at exit after which one line says what the exit waits for


class LatestSlot(Generic[T]):
    """A one-item buffer: ``put`` overwrites the waiting item (counting it in ``dropped``), ``get`` takes the newest.

    This is the live *latest-frame* policy: a slow consumer always gets the most recent item and never a backlog.
    Thread-safe for one producer and any number of consumers.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._full = False
        self._closed = False
        self.dropped = 0  # items overwritten before anyone took them
        self.put_count = 0

    def put(self, item: T) -> bool:
        """Store ``item``; returns False when it replaced one nobody had taken (a drop) or the slot is closed."""
        with self._cond:
            if self._closed:
                return False
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify_all()
            return not replaced

    def get(self, timeout: Optional[float]) -> Optional[T]:
        """The newest item, waiting up to ``timeout`` seconds (None = forever); None on timeout or when closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiter; later ``put`` calls are ignored. An item already waiting can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._full

    @property
    def pending(self) -> int:
        """1 when an item waits in the slot, else 0 (a queue depth for metrics)."""
        with self._cond:
            return int(self._full)


@dataclass(frozen=True)
class Decoded:
    """One decoded frame as it left the decoder.

    Attributes:
        frame: the PyAV frame (converted to BGR only if a consumer takes it, so dropped frames cost nothing).
        index: sequence number among all frames the source decoded (dropped and skipped ones count).
        stream_time: the frame's presentation time in seconds in the stream's own clock, None if unknown.
        capture_time: ``time.time()`` when the frame was handed on: when the decoder returned it, or for a
            paced segment-based stream (HLS) when it was due by its timestamp -- when it would have been live.
        rotation: degrees counter-clockwise a player turns it: the last rotation a decoded frame of this
            connection stated (seen on every frame, so a key frame stating it counts even when dropped).
    """

    frame: av.VideoFrame
    index: int
    stream_time: Optional[float]
    capture_time: float
    rotation: int = 0  # display rotation in force (pipelines/sources/rotation.py), stated by this or an earlier frame


class Connection:
    """One attempt to read a stream: a daemon thread that opens ``url`` with PyAV and decodes its first video
    stream into ``slot`` until the stream ends, fails or ``cancel()`` is called.

    ``decoder`` (``auto|cpu|cuda``, see ``hwdecode``) picks NVDEC or software decoding once the stream is open.
    ``error`` holds a one-line, credential-free reason once the thread has failed (``scrub`` cleans FFmpeg's text,
    which may echo the URL); ``refused`` is the status when the server answered 401 Unauthorized (it refused the
    URL's user name and password, or wants some) or 403 Forbidden (it refuses this user or this client), else None.
    ``fps``/``size`` are known once the stream is open;
    ``damaged_packets`` counts packets the decoder rejected (skipped without ending the connection); ``undecoded``
    the pictures coded as unchanged that were handed on as the previous picture without decoding
    (``pipelines/sources/unchanged.py``).

    ``seen`` is the source's memory of decoded frames: a frame an earlier connection decoded (``generation`` numbers
    the connections) is old video replayed by the server and never reaches the slot; ``replayed`` counts them.
    Segment-based streams (HLS) are paced by their timestamps (``paced``), see ``StreamClockPacer``.
    """

    def __init__(self, url: str, *, name: str, fmt: Optional[str], options: Mapping[str, str],
                 timeouts: tuple[float, float], decode_threads: int, selector: "FrameSelector",
                 counter: "itertools.count[int]", scrub: Callable[[str], str],
                 seen: Optional[SeenFrames] = None, generation: int = 0, decoder: str = "auto") -> None:
        self.slot: LatestSlot[Decoded] = LatestSlot()
        self.damaged_packets = 0
        self.undecoded = 0
        self.replayed = 0
        self.paced = False
        self._seen, self._generation = seen, generation
        self.error: Optional[str] = None
        self.refused: Optional[int] = None
        self.fps: Optional[float] = None
        self.size: Optional[tuple[int, int]] = None  # as stored (before any display rotation)
        self._turn = Upright()
        self._url, self._fmt, self._options = url, fmt, dict(options)
        self._timeouts, self._threads, self._selector = timeouts, decode_threads, selector
        self._counter, self._scrub = counter, scrub
        self._name, self._decoder_mode = name, decoder
        self.decoder: Optional[DecoderChoice] = None  # chosen once the stream is open
        self._cancelled = threading.Event()
        self._cancelled_at: Optional[float] = None
        self._thread = threading.Thread(target=self._run, name=f"live-reader-{name}", daemon=True)
        open_timeout, read_timeout = timeouts
        # the longest the thread stays inside FFmpeg once cancelled: an open and its stream probe (each up to
        # the open timeout), or one read (up to the read timeout), then decoding what it holds and closing
        self.linger = 2 * open_timeout + read_timeout + LINGER_MARGIN_S

    def start(self) -> "Connection":
        with _RUNNING_LOCK:
            if _EXITING.is_set():  # the process exits (finish_readers): a new reader could outlive the interpreter
                self.error = "the process is exiting"
                self.cancel()
                return self
            _RUNNING.difference_update([c for c in _RUNNING if not c.running])
            _RUNNING.add(self)
            self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop handing on frames and close the slot; the thread exits at its next chance (within ``linger``
        seconds: the next frame of a flowing stream, else when FFmpeg's timeout ends the call it is in)."""
        if self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
        self._cancelled.set()
        self.slot.close()

    @property
    def running(self) -> bool:
        """Whether the reader thread is still alive (maybe inside FFmpeg)."""
        return self._thread.is_alive()

    @property
    def name(self) -> str:
        return self._thread.name

    def deadline(self) -> float:
        """``time.monotonic()`` by which the thread has ended on its own timeouts (``linger`` after ``cancel``)."""
        return (self._cancelled_at if self._cancelled_at is not None else time.monotonic()) + self.linger

    def join(self, timeout: Optional[float]) -> bool:
        """Wait up to ``timeout`` seconds (None: ``linger`` after ``cancel``) for the thread to leave FFmpeg and end;
        True once it has (also when it never started)."""
        if self._thread.ident is None:
            return True
        if timeout is None:
            timeout = self.deadline() - time.monotonic()
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def _run(self) -> None:
        container = None
        try:
            container = av.open(self._url, format=self._fmt, options=self._options, timeout=self._timeouts)
            if self._cancelled.is_set():
                return
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None:
                raise ValueError("the stream has no video")
            stream.thread_type = "SLICE"  # frame threading would add one frame of delay per thread
            stream.codec_context.thread_count = self._threads
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.size = (stream.codec_context.width, stream.codec_context.height)
            self.paced = container.format.name in SEGMENTED_FORMATS
            self.decoder = choose_decoder(stream, self._decoder_mode, self._name)
            outlet = _PacedOutlet(self.slot, self._cancelled, self._thread.name) if self.paced else None
            try:
                self._decode(container, stream, self.decoder, outlet)
            finally:
                if outlet is not None:
                    outlet.finish()
        except Exception as exc:  # noqa: BLE001 - any failure ends this attempt; the owner decides what next
            if not self._cancelled.is_set():
                self.error = self._scrub(_one_line(exc))
                self.refused = (403 if isinstance(exc, av.error.HTTPForbiddenError)
                                else 401 if isinstance(exc, av.error.HTTPUnauthorizedError) else None)
        finally:
            self.slot.close()
            if container is not None:
                try:
                    container.close()
                except Exception:  # noqa: BLE001 - closing a broken stream may fail; nothing to recover
                    pass

    def _decode(self, container: "av.container.InputContainer", stream: "av.VideoStream",
                decoder: DecoderChoice, outlet: Optional[_PacedOutlet]) -> None:
        decoded = 0
        pictures = FrameDecoder(stream, decoder)
        time_base = stream.time_base
        for packet in container.demux(stream):
            try:
                frames = pictures.decode(packet)
            except av.error.InvalidDataError:  # a damaged packet (e.g. lost over UDP): skip it, keep the stream
                self.damaged_packets += 1
                continue
            finally:
                self.undecoded = pictures.undecoded
            for frame, pts in frames:
                if self._cancelled.is_set():
                    return
                rotation = self._turn.see(frame)
                stream_time = float(pts * time_base) if pts is not None and time_base else None
                if self._seen is not None and self._seen.check(frame_key(frame, stream_time), self._generation):
                    self.replayed += 1  # old video the server sent again: not part of this source's stream
                    continue
                index = next(self._counter)
                keep = self._selector.keep(decoded, stream_time if stream_time is not None else time.time())
                decoded += 1
                if not keep:  # frames left out by vid_stride / max_fps are skipped on purpose, not dropped
                    continue
                if outlet is not None:
                    outlet.put((frame, index, stream_time, rotation))
                else:
                    self.slot.put(Decoded(frame, index, stream_time, time.time(), rotation))
        self.error = self.error or "the stream ended"


class _PacedOutlet:
    """Hands decoded frames to a slot at their stream time (``StreamClockPacer``) from its own thread.

    The demuxer keeps reading up to ``PACE_AHEAD`` frames ahead, so the next segment is downloaded while the
    current one plays out: pacing in the reader thread itself would start that download only after the last
    frame (which MPEG-TS hands on only once the next segment begins) and leave a hole at every segment boundary.
    """

    def __init__(self, slot: LatestSlot[Decoded], cancelled: threading.Event, name: str) -> None:
        self._queue: "queue.Queue[Optional[tuple[av.VideoFrame, int, Optional[float], int]]]" = queue.Queue(PACE_AHEAD)
        self._slot, self._cancelled = slot, cancelled
        self._pacer = StreamClockPacer(cancelled)
        self._thread = threading.Thread(target=self._run, name=f"live-pacer-{name}", daemon=True)
        self._thread.start()

    def put(self, item: Optional[tuple[av.VideoFrame, int, Optional[float], int]]) -> None:
        """Queue (frame, index, stream time), waiting while ``PACE_AHEAD`` frames wait; None = no more frames."""
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Release the frames still queued (none once cancelled), then return."""
        self.put(None)
        self._thread.join()

    def _run(self) -> None:
        while not self._cancelled.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                return
            frame, index, stream_time, rotation = item
            self._pacer.wait(stream_time)
            if not self._cancelled.is_set():
                self._slot.put(Decoded(frame, index, stream_time, time.time(), rotation))


_RUNNING: "set[Connection]" = set()  # every started reader not yet seen ended (pruned at each start)
_RUNNING_LOCK = threading.Lock()
_EXITING = threading.Event()  # finish_readers ran: the process exits, no reader starts any more


def finish_readers() -> list[str]:
    """At exit: cancel every reader thread still running, start no more, and wait for each until FFmpeg's
    timeouts have ended it (``Connection.deadline``). Returns the names of those still running after that (a call
    that ignores its timeouts); one log line says what the exit waits for once it takes ``EXIT_NOTICE_S``."""
    _EXITING.set()
    with _RUNNING_LOCK:
        readers = [c for c in _RUNNING if c.running]
        _RUNNING.clear()
    for conn in readers:
        conn.cancel()
    notice = time.monotonic() + EXIT_NOTICE_S
    for conn in readers:  # the waits overlap: a stream that flows ends at its next frame
        conn.join(min(notice, conn.deadline()) - time.monotonic())
    waiting = sorted((c for c in readers if c.running), key=Connection.deadline)
    if waiting:
        log.info("waiting up to %.0f s for %s to close (FFmpeg is still opening or reading: its timeouts end it)",
                 waiting[-1].deadline() - time.monotonic(), ", ".join(c.name for c in waiting))
        for conn in waiting:
            conn.join(None)
    left = [c.name for c in waiting if c.running]
    if left:
        log.warning("%s still inside FFmpeg past its timeouts: exiting without it", ", ".join(left))
    return left


def _one_line(exc: BaseException) -> str:
    """FFmpeg's message of ``exc`` on one line (PyAV's errno and the URL it appends are left out)."""
    message = exc.strerror if isinstance(exc, av.error.FFmpegError) and exc.strerror else str(exc)
    return " ".join(message.split()) or type(exc).__name__

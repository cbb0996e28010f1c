"""Video files: every frame of anything FFmpeg can read, decoded by PyAV with threaded decoding.

Frames are selected deterministically (``vid_stride`` by decode index, ``max_fps`` by presentation time),
so two runs over one file process the same frames. Damaged packets are skipped: decoding resumes after the
damage and the number of skipped packets is reported in the ``stream_ended`` status.

With ``loop: true`` the file plays again from its start whenever it ends, until ``stop()``: frame
``index`` keeps counting and ``pts`` keeps rising (each pass is shifted by the time played so far plus one
frame step), so everything downstream sees one endless stream. A pass that yields no frame ends the loop,
so a damaged or empty file cannot spin forever.

A file a recorder is still writing (MPEG-TS, MKV: ``pipelines/sources/growing.py``) is read to its current end;
its ``stream_ended`` says ``growing``, and the frames the decoder had not released when the end came are left
out (the last packet may be cut short, the decoder's reordered frames may have gaps): a run that continues
it once the recording is finished (``--state``) decodes them whole.

An H.264 file without B pictures may hold pictures its encoder coded as unchanged (every macroblock skipped, as a
still scene gives): those are handed on as the previous picture without being decoded, with output identical to
decoding them (``pipelines/sources/unchanged.py``); ``undecoded`` counts them.

A video with a display rotation (a phone's ``rotate`` tag / display matrix side data) is turned when decoded,
as a player shows it: ``size``, every frame, the detector's input, all coordinates and the annotated video are
upright (``pipelines/sources/rotation.py``, shared with live sources). The rotation the first frame states is read
from the source's own decoder (that frame is kept for the first pass), so opening a source opens its file once;
with NVDEC, whose frames do not carry the track's rotation, a second, software look reads it.

``FirstLooks`` (``looks.py``) opens each file of a folder or glob once when the run's sources are found and keeps
what that look learned for the checks at start and for the ``FileSource`` that reads it.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import av
import av.error

from pipelines.errors import SourceError
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.sources.base import SourceConfig
from pipelines.sources.growing import Growth, GrowthWatch, appendable
from pipelines.sources.hwdecode import DecoderChoice, choose_decoder
from pipelines.sources.rotation import ToBgr, Upright, deferred_picture, frame_rotation
from pipelines.sources.unchanged import FrameDecoder, Picture

log = logging.getLogger(__name__)

# Consecutive demux errors after which the rest of a file is considered unreadable.
_MAX_CONSECUTIVE_DEMUX_ERRORS = 50


def _fraction(value: Optional[Fraction]) -> Optional[float]:
    return float(value) if value else None


class FrameSelector:
    """Picks the decoded frames to process: every ``vid_stride``-th, at most ``max_fps`` per video second."""

    def __init__(self, vid_stride: int = 1, max_fps: Optional[float] = None) -> None:
        self.vid_stride = vid_stride
        self.period = 1.0 / max_fps if max_fps else 0.0
        self._next_pts: Optional[float] = None

    def keep(self, index: int, pts: float) -> bool:
        """True when the frame with decode ``index`` and ``pts`` seconds is to be processed."""
        if index % self.vid_stride:
            return False
        if not self.period:
            return True
        if self._next_pts is not None and pts < self._next_pts - 1e-6:
            return False
        # Stay on the regular grid unless the stream jumped ahead (gap), then restart from this frame.
        due = self._next_pts if self._next_pts is not None else pts
        self._next_pts = due + self.period if pts - due < self.period else pts + self.period
        return True


def open_container(path: Path) -> "av.container.InputContainer":
    """``path`` opened for reading by FFmpeg, holding a video stream; else ``SourceError``, one line saying why
    (missing, a folder, empty, not a video FFmpeg understands or cut short, no video stream)."""
    if not path.exists():
        raise SourceError(f"video file not found: {path}")
    if path.is_dir():
        raise SourceError(f"video path is a folder, not a file: {path}")
    if path.stat().st_size == 0:
        raise SourceError(f"video file is empty (0 bytes): {path}")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        code = getattr(exc, "errno", None)
        if code in (errno.EMFILE, errno.ENFILE):   # the process's limit, not the file
            raise OSError(code, os.strerror(code)) from exc
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceError(f"cannot read video file {path}: {reason} "
                          "(not a video FFmpeg understands, or the file is truncated)") from None
    except OSError as exc:
        raise SourceError(f"cannot open video file {path}: {exc.strerror or exc}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"no video stream in {path} (audio-only or data file?)")
    return container


def display_rotation(path: Path) -> int:
    """The display rotation of the first frame of ``path``'s video (0 when it cannot be read)."""
    try:
        with av.open(str(path), mode="r") as container:
            for frame in container.decode(video=0):
                return frame_rotation(frame)
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return 0


def _raise(exc: BaseException) -> Iterator[Picture]:
    raise exc
    yield  # a generator: raises when iterated


class FileSource:
    """Reads one video file frame by frame (see module docstring).

    Attributes:
        source_id: the configured id or the file stem.
        decoder: the decoder in use (NVDEC or software, chosen by ``options.decoder``; see ``hwdecode``).
        fps: average frame rate of the video stream, when the container states it.
        size: (width, height) in pixels.
        frame_count: number of frames the container states, or None (always None when looping: no end).
        passes: how many times playback started from the beginning (1 unless looping).
        damaged_packets: packets skipped because they could not be demuxed or decoded.
        damaged_frames: decoded frames skipped because their timestamp repeated or went backwards.
        undecoded: frames handed on as the previous picture without decoding (coded as unchanged).
        growing: set when reading reached the end of a file still being written (``Growth``), else None.
    """

    is_live = False
    dropped = 0            # a file never skips frames on its own
    pending = 0
    connected = True
    connect_failures = 0

    def __init__(self, path: Union[str, Path], source_id: Optional[str] = None,
                 options: Optional[SourceConfig] = None,
                 container: Optional["av.container.InputContainer"] = None) -> None:
        """``container``: ``path`` already opened by ``open_container`` (``FirstLooks.take``), taken over."""
        self.path = Path(path)
        self.options = options or SourceConfig()
        self.source_id = source_id or self.path.stem
        self.damaged_packets = 0
        self.damaged_frames = 0
        self.undecoded = 0
        self._stop = threading.Event()
        self._ahead: Optional[Iterator[Picture]] = None  # the first pass, its first frame decoded already
        self._container = container if container is not None else self._open()
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.options.decode_threads:
            stream.codec_context.thread_count = self.options.decode_threads
        self._stream = stream
        try:
            self.decoder: DecoderChoice = choose_decoder(stream, self.options.decoder, self.source_id)
        except SourceError:
            self._container.close()
            raise
        self._frames = FrameDecoder(stream, self.decoder)   # one per pass (``_decoded``)
        self.fps: Optional[float] = _fraction(stream.average_rate) or _fraction(stream.guessed_rate)
        self.growing: Optional[Growth] = None   # before the first frame is decoded (_first_rotation): it reads them
        self._watch = None if self.options.loop else GrowthWatch(self.path, appendable(self._container, stream))
        try:   # degrees counter-clockwise a player turns the picture
            self.rotation = display_rotation(self.path) if self.decoder.hardware else self._first_rotation()
        except BaseException:
            self._container.close()
            raise
        width, height = stream.codec_context.width, stream.codec_context.height
        self.size: Optional[tuple[int, int]] = (height, width) if self.rotation in (90, 270) else (width, height)
        self.frame_count: Optional[int] = None if self.options.loop else (int(stream.frames) or None)
        self.passes = 0
        tb = stream.time_base or Fraction(1, 90000)
        self._time_base = float(tb)
        self._start_pts = stream.start_time

    def _open(self) -> "av.container.InputContainer":
        return open_container(self.path)

    def _first_rotation(self) -> int:
        """The display rotation the first frame states (0 when none comes), decoded by this source's own decoder:
        the frame waits for the first pass in ``_ahead``, an error on the way to it is raised there."""
        pictures = self._decoded()
        try:
            first = next(pictures, None)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._ahead = _raise(exc)
            return 0
        self._ahead = pictures if first is None else itertools.chain([first], pictures)
        return 0 if first is None else frame_rotation(first.frame)

    def stop(self) -> None:
        """Make ``frames()`` end after the current frame. Thread-safe."""
        self._stop.set()

    def close(self) -> None:
        """Close the file."""
        self._container.close()

    def frames(self) -> Iterator[Union[VideoFrame, StreamStatus]]:
        """Yield ``stream_started``, every selected frame in order, then ``stream_ended`` (with ``loop``:
        the frames of pass after pass, and ``stream_ended`` only once stopped or a pass gave no frame)."""
        yield StreamStatus(StatusKind.STARTED, self.source_id, time.time(), pts=0.0,
                           detail={"fps": self.fps, "size": self.size, "frame_count": self.frame_count})
        selector = FrameSelector(self.options.vid_stride, self.options.max_fps)
        turn = Upright(self.rotation)  # as the first frame stated, until a frame states another
        to_bgr = ToBgr()
        index, offset, last_pts = 0, 0.0, None
        while True:
            self.passes += 1
            pass_start, pass_last = index, None  # pass_last: pts within this pass (from 0)
            ahead, self._ahead = self._ahead, None
            for frame, stamp in ahead if ahead is not None else self._decoded():
                if self._stop.is_set():
                    break
                pts = self._seconds(stamp, pass_last)
                if pts is None:  # repeated or backwards timestamp: a leftover of damage, not a new frame
                    self.damaged_frames += 1
                    continue
                pass_last = pts
                last_pts = round(offset + pts, 6)
                rotation = turn.see(frame)  # every frame: one skipped by vid_stride may state the rotation
                if selector.keep(index, last_pts):
                    # converted to BGR when a stage first needs the picture (a skipped frame may never)
                    picture = deferred_picture(frame, rotation, to_bgr)
                    yield VideoFrame.deferred(picture, index, last_pts, self.source_id, time.time())
                index += 1
            if self._stop.is_set() or not self.options.loop:
                break
            if index == pass_start:
                log.warning("%s: a pass over the file gave no frame; not looping any more", self.source_id)
                break
            if not self._rewind():
                break
            offset = (last_pts or 0.0) + self._step()
        if self.growing is None and not self._stop.is_set() and self.frame_count and 0 < index < self.frame_count:
            log.warning("%s: the file ended after %d of the %d frames its container states (%d missing: "
                        "truncated or damaged?)", self.source_id, index, self.frame_count, self.frame_count - index)
        if self.damaged_packets or self.damaged_frames:
            log.warning("%s: skipped %d damaged packet(s) and %d frame(s) with a repeated timestamp",
                        self.source_id, self.damaged_packets, self.damaged_frames)
        yield StreamStatus(StatusKind.ENDED, self.source_id, time.time(), pts=last_pts,
                           detail={"frames_decoded": index, "undecoded": self.undecoded,
                                   "damaged_packets": self.damaged_packets,
                                   "damaged_frames": self.damaged_frames, "passes": self.passes,
                                   "stopped": self._stop.is_set(), "growing": self.growing is not None,
                                   "growth": self.growing.phrase() if self.growing else ""})

    def _step(self) -> float:
        """Nominal time between two frames in seconds."""
        return 1.0 / self.fps if self.fps else 0.04

    def _rewind(self) -> bool:
        """Seek back to the start of the file (the decoder is flushed by the seek); False if it cannot."""
        try:
            self._container.seek(0)
        except (av.error.FFmpegError, OSError) as exc:
            log.warning("%s: cannot seek back to the start (%s); not looping any more", self.source_id, exc)
            return False
        return True

    def _seconds(self, stamp: Optional[int], last: Optional[float]) -> Optional[float]:
        """Presentation time of a frame stamped ``stamp`` (stream time base) in seconds from the stream start;
        None if not after ``last``."""
        if stamp is None:  # no timestamp (damaged stream): one nominal frame after the last one
            return 0.0 if last is None else round(last + self._step(), 6)
        if self._start_pts is None:
            self._start_pts = stamp
        pts = round((stamp - self._start_pts) * self._time_base, 6)
        if last is None and pts < 0:  # first frame before the stated start (edit lists): count from it
            self._start_pts, pts = stamp, 0.0
        return None if last is not None and pts <= last else pts

    def _decoded(self) -> Iterator[Picture]:
        """Every decodable frame of one pass, with its timestamp; damaged packets are counted and skipped, demuxing
        goes on after them. Each packet is decoded once the next one shows it was not the last: at the end of a file
        still being written (``growing``) the last one, possibly cut short, and the frames the decoder holds are left
        out."""
        self._frames = FrameDecoder(self._stream, self.decoder)
        consecutive = 0
        held: Optional["av.Packet[Any]"] = None    # the last packet demuxed, decoded once the next one comes
        flush: Optional["av.Packet[Any]"] = None   # the demuxer's empty packet at the end: it flushes the decoder
        while consecutive < _MAX_CONSECUTIVE_DEMUX_ERRORS:
            try:
                for packet in self._container.demux(self._stream):
                    consecutive = 0
                    if not packet.size:
                        flush = packet
                        continue
                    if held is not None:
                        yield from self._decode(held)
                    held = packet
                    if self._stop.is_set():
                        return
                break
            except av.error.InvalidDataError:
                self.damaged_packets += 1
                consecutive += 1
        else:
            log.warning("%s: giving up after %d unreadable packets in a row", self.source_id, consecutive)
            if held is not None:
                yield from self._decode(held)
            return
        self.growing = self._watch.at_end(self._stop) if self._watch is not None else None
        if self.growing is not None:
            return   # what is left is decoded whole by a run that continues once the recording is finished
        for last in (held, flush):
            if last is not None:
                yield from self._decode(last)

    def _decode(self, packet: "av.Packet[Any]") -> Iterator[Picture]:
        frames = self._frames
        before = frames.undecoded
        try:
            yield from frames.decode(packet)
        except av.error.InvalidDataError:
            self.damaged_packets += 1
        self.undecoded += frames.undecoded - before

"""Annotated video sink: draws overlays on each processed frame and encodes them with PyAV.

Output (by default): H.264 (``libx264``) in an ``.mp4``, ``yuv420p``, a key frame every 2 s.

- **Crash-safe.** An MP4/MOV is written *fragmented* while recording (a fragment at each key frame, the index
  up front, empty): what was written survives ``kill -9``, a power cut or a full disk up to the last key
  frame, and plays in browsers, ffprobe and PyAV. When the output is closed normally it is rewritten as a
  regular ``+faststart`` MP4 (index first, so browsers start playing before the download ends), unless
  ``faststart`` is off; a failed rewrite (e.g. disk full) keeps the fragmented file, which plays too.
- **Segments.** With ``rotate_seconds`` / ``rotate_bytes`` the live file ``NAME.mp4`` is finished and renamed
  ``NAME.<start>-<n>.mp4`` (``pipelines/sinks/rotation.py``) before the frame that would exceed the limit,
  and a new segment starts with that frame: no frame is lost or repeated at a boundary. ``retention``
  deletes the oldest finished segments.

- **Timing.** Only processed frames are written. Each frame's timestamp is its source PTS, shifted so
  the first written frame is at 0 (time base 1/90000 s; 1/1000 s for encoders that cannot take it).
  With ``vid_stride`` N or ``max_fps`` the video
  therefore has fewer frames but the same duration and plays at real speed; its average frame rate is
  the processed frame rate (input fps / N). ``fps`` passed to the constructor should be that processed
  rate: it is the rate written in the stream header and the duration of the last frame before any PTS
  step is seen; later frame durations follow the PTS steps. A PTS that does not move forward (a camera
  that restarted its clock) continues one frame step after the previous frame.
- **Size.** Frames are encoded at ``size`` (or the first frame's size when ``size`` is None). yuv420p
  needs even width and height, so an odd dimension is padded by one pixel on the right/bottom edge
  (the edge pixels repeated): overlays keep the source's pixel coordinates. A frame of another size
  (a camera that changed resolution) is resized to the video's size.
- **Closing** flushes the encoder and writes the index; it is safe to call twice and after a failure.
  If no frame was written, no file is left behind.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
import os
import time
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Deque, Any, Callable, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from pipelines.errors import OutputError
from pipelines.frames import BaseSink, FrameResult
from pipelines.gpu import nvidia_device_present
from pipelines.processing.overlays import Annotator, OverlayConfig
from pipelines.processing.zones import LineConfig, ZoneConfig
from pipelines.sinks._paths import prepare_output
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry
from pipelines.sinks.rotation import RECENT_SEGMENTS, Retention, rotated_name

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 90000)
FALLBACK_TIME_BASE = Fraction(1, 1000)
DEFAULT_FPS = 30.0  # header rate when the source does not say (live cameras)
_FASTSTART_SUFFIXES = {".mp4", ".m4v", ".mov"}
_BT601_MATRIX = 6  # AVCOL_SPC_SMPTE170M
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
_X26X = {"libx264", "libx265"}
_SEGMENT_TAG, _SEGMENT_PREFIX = "comment", "trackstream segment "   # container metadata naming the file


def even_size(size: Tuple[int, int]) -> Tuple[int, int]:
    """(w, h) rounded up to even numbers, as yuv420p requires."""
    w, h = int(size[0]), int(size[1])
    return w + (w & 1), h + (h & 1)


# the NVENC encoder that stands in for a CPU codec, and x264 speed presets -> NVENC presets (p1 fastest .. p7)
NVENC_FOR = {"libx264": "h264_nvenc", "libx265": "hevc_nvenc"}
_NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
                  "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7"}
ENCODER_MODES = ("auto", "cpu", "cuda")


def _encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    if codec in _X26X:
        return {"crf": str(int(crf)), "preset": str(preset)}
    if codec.endswith("_nvenc"):  # constant quality like crf, on the same 0..51 scale
        return {"rc": "vbr", "cq": str(int(crf)), "preset": _NVENC_PRESETS.get(preset, "p4")}
    return {}


@functools.lru_cache(maxsize=None)
def _nvenc_usable(nvenc: str, options: tuple[tuple[str, str], ...], fps: Fraction) -> Optional[str]:
    """None when ``nvenc`` opens with ``options``, else why not (probed once per process and settings)."""
    import av

    if nvenc not in av.codecs_available:
        return f"{nvenc} is not in this FFmpeg build"
    if not nvidia_device_present():  # nothing to probe: FFmpeg would only print its failure
        return "no NVIDIA device"
    try:
        ctx: Any = av.CodecContext.create(nvenc, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"  # NVENC refuses very small pictures
        ctx.time_base, ctx.framerate, ctx.options = TIME_BASE, fps, dict(options)
        ctx.open()
    except Exception as exc:  # noqa: BLE001 - no GPU/driver shows as EPERM, ENOSYS, EINVAL, ...
        return f"{nvenc} cannot be opened ({getattr(exc, 'strerror', None) or _reason(exc)})"
    return None


def select_encoder(codec: str, mode: str, crf: int, preset: str, fps: Fraction, name: str = "video output") -> str:
    """The encoder to use for ``codec`` under ``output.video_encoder`` = ``mode``.

    ``cpu``: ``codec`` as given. ``auto``: the NVENC stand-in (``h264_nvenc`` for ``libx264``, ``hevc_nvenc`` for
    ``libx265``) when it opens, else ``codec``, with one log line saying which; other codecs are kept as named.
    ``cuda``: the NVENC encoder or ``OutputError``. Opening is tried for real (once per process and settings):
    FFmpeg builds list ``h264_nvenc`` on machines without an NVIDIA GPU, and some GPUs (H100/H200 among them)
    have NVDEC but no NVENC.
    """
    if mode not in ENCODER_MODES:
        raise OutputError(f"output.video_encoder must be auto, cpu or cuda, got {mode!r}")
    nvenc = codec if codec.endswith("_nvenc") else NVENC_FOR.get(codec)
    if mode == "cpu" or (mode == "auto" and nvenc in (None, codec)):
        return codec
    if nvenc is None:
        raise OutputError(f"output.video_encoder is cuda but video codec {codec!r} has no NVENC encoder "
                          "(use video_codec: libx264 or libx265)")
    options = tuple(sorted({**_encoder_options(nvenc, crf, preset), "bf": "0"}.items()))
    why = _nvenc_usable(nvenc, options, fps)
    if why is None:
        log.info("%s: encoding with %s (NVENC)", name, nvenc)
        return nvenc
    if mode == "cuda":
        raise OutputError(f"output.video_encoder is cuda but {why}; use video_encoder: auto or cpu")
    log.info("%s: encoding with %s on the CPU (%s)", name, codec, why)
    return codec


def _check_encoder(codec: str, options: dict[str, str], fps: Fraction) -> Fraction:
    """Open a tiny encoder with the same settings, so a bad codec/preset fails before any frame.

    Returns the time base to use: 1/90000 s, or 1/1000 s for encoders that cap the time-base
    denominator (MPEG-4 Part 2 allows at most 65535).
    """
    import av

    error: Optional[Exception] = None
    for time_base in (TIME_BASE, FALLBACK_TIME_BASE):
        try:
            ctx: Any = av.CodecContext.create(codec, "w")
        except Exception as exc:  # noqa: BLE001 - PyAV raises several kinds for unknown codecs
            raise OutputError(f"unknown video codec {codec!r}: {exc}") from None
        if ctx.type != "video":
            raise OutputError(f"codec {codec!r} is not a video codec")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base, ctx.framerate = time_base, fps
        ctx.options = dict(options)
        try:
            ctx.open()
            return time_base
        except Exception as exc:  # noqa: BLE001
            error = error or exc
    shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    raise OutputError(f"video codec {codec!r} rejects its settings ({shown}, yuv420p): {error}") from None


class AnnotatedVideoSink(BaseSink):
    """Draws overlays (``Annotator``) and encodes every written frame into ``path``.

    Args:
        path: output file; the container comes from its extension (``.mp4`` recommended).
        fps: processed frame rate (source fps / vid_stride), or None if unknown (header says 30).
        size: (width, height) of the source frames, or None to take the first frame's size.
        overlay: what to draw; None = ``OverlayConfig()`` defaults.
        codec: FFmpeg encoder name (``libx264``; ``crf``/``preset`` apply to libx264/libx265 and, mapped, to
            ``*_nvenc``). Used as named: ``select_encoder`` is what swaps in NVENC (``output.video_encoder``).
        crf: constant rate factor 0-51 (lower = better quality, bigger file).
        preset: x264 speed preset (``ultrafast`` ... ``veryslow``).

    Raises:
        OutputError: at construction, for an unwritable path, unknown container extension, unknown codec
            or settings the encoder rejects.
    """

    def __init__(self, path: "str | os.PathLike[str]", fps: Optional[float],
                 size: Optional[Tuple[int, int]], overlay: Optional[OverlayConfig] = None,
                 codec: str = "libx264", crf: int = 23, preset: str = "veryfast", *,
                 zones: Sequence[ZoneConfig] = (), lines: Sequence[LineConfig] = (), part: int = 1,
                 keyframe_seconds: float = 2.0, faststart: bool = True, rotate_seconds: Optional[float] = None,
                 rotate_bytes: Optional[int] = None, retention: Retention = Retention(),
                 clock: Callable[[], float] = time.time, skip: int = 0,
                 earlier: Optional[Mapping[str, object]] = None) -> None:
        if fps is not None and not fps > 0:
            raise OutputError(f"video output {path}: frame rate must be > 0, got {fps}")
        if size is not None and (int(size[0]) < 1 or int(size[1]) < 1):
            raise OutputError(f"video output {path}: invalid frame size {size}")
        if not 0 <= int(crf) <= 51:
            raise OutputError(f"video output {path}: crf must be between 0 and 51, got {crf}")
        self.fps = Fraction(fps if fps is not None else DEFAULT_FPS).limit_denominator(1001)
        self.codec = codec
        gop = max(1, round(float(self.fps) * keyframe_seconds))
        # no B-frames: every packet's decode time is its presentation time, so a fragmented file (which has no
        # edit list to hide the reordering delay) and its faststart rewrite both start at 0
        self._options = {**_encoder_options(codec, crf, preset), "g": str(gop), "bf": "0"}
        self.time_base = _check_encoder(codec, self._options, self.fps)
        self.path: Path = prepare_output(path, "video output", keep=False)
        self._mp4 = self.path.suffix.lower() in _FASTSTART_SUFFIXES
        self.faststart = faststart and self._mp4
        self.rotate_seconds, self.rotate_bytes, self.retention = rotate_seconds, rotate_bytes, retention
        self._clock = clock
        self._sequence = 0
        self.rotated: Deque[Path] = deque(maxlen=RECENT_SEGMENTS)  # the newest finished segments (bounded)
        self._container: Any = self._open_container()
        self.annotator = Annotator(overlay, zones, lines)
        self.part = part
        self.size: Optional[Tuple[int, int]] = None if size is None else (int(size[0]), int(size[1]))
        self._stream: Any = None
        self._pts0: Optional[float] = None
        self._last_tick: Optional[int] = None
        self._step = max(1, round(1 / (self.fps * self.time_base)))
        self._max_step = max(2 * self._step, round(1 / self.time_base))
        self._resize_warned = False
        self._closed = False
        self._broken = False          # the muxer failed a write (disk full): FFmpeg must not be handed more
        self.frames_written = 0       # in the current segment
        self.frames_total = 0         # in every segment of this sink
        self._muxed = 0               # packets handed to the muxer, every segment
        self._stored = 0              # frames in complete fragments handed to the OS (or closed segments)
        # a resumed part: the earlier part's saved position, and how many frames after it that part already holds
        # (written after its last snapshot, before a kill -9): they are not written again
        self._earlier = dict(earlier) if earlier is not None else None
        self._skip, self.skipped = max(0, int(skip)), 0

    def _open_container(self) -> Any:
        import av

        # fragmented while recording, each fragment handed to the OS at once: playable up to the last key frame
        # whatever happens to the process
        # (other containers: each packet, or MKV cluster, handed to the OS once written, not kept in a 256 KiB
        # buffer that kill -9 loses)
        fragmented = {"movflags": "+frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
        options = fragmented if self._mp4 else {"flush_packets": "1"}
        try:
            container = av.open(str(self.path), mode="w", options=options)
        except Exception as exc:  # noqa: BLE001 - unknown extension -> ValueError, others -> av errors
            self._remove_placeholder()
            raise OutputError(f"cannot write video output {self.path}: {exc} "
                              "(use a .mp4, .mkv or .mov file name)") from None
        self._segment_started = self._clock()
        self._size_seen = 0   # the new file's size after the last packet muxed (``_mux``)
        # names this file in snapshots (and in its own header): a segment rotated aside after a snapshot leaves
        # another file at the path, whose frames a resumed run must not take for the snapshot's
        self._segment_id = uuid.uuid4().hex
        container.metadata[_SEGMENT_TAG] = f"{_SEGMENT_PREFIX}{self._segment_id}"
        return container

    def _remove_placeholder(self) -> None:
        try:
            if self.path.exists() and self.path.stat().st_size == 0:
                self.path.unlink()
        except OSError:
            pass

    def _open_stream(self, size: Tuple[int, int]) -> Any:
        self.size = size
        width, height = even_size(size)
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        # say how the pixels were converted (see write()), so players do not guess BT.709 for HD sizes
        ctx.colorspace, ctx.color_range = _BT601_MATRIX, _LIMITED_RANGE
        stream.options = dict(self._options)
        self._stream = stream
        return stream

    def _tick(self, pts: float) -> int:
        """Monotonic timestamp in ``time_base`` units for a frame at ``pts`` seconds."""
        if self._pts0 is None:
            self._pts0 = pts
        tick = round((pts - self._pts0) / self.time_base)
        last = self._last_tick
        if last is not None:
            if tick <= last:  # clock went back or stood still: continue one step later, from here on
                tick = last + self._step
                self._pts0 = pts - float(tick * self.time_base)
            else:  # the PTS step is the length of a frame; a long gap is not (nor is a 1 s+ step)
                self._step = min(tick - last, self._max_step)
        self._last_tick = tick
        return tick

    def _fit(self, image: np.ndarray) -> np.ndarray:
        size = self.size
        if size is None:
            return image
        w, h = size
        if image.shape[1] != w or image.shape[0] != h:
            if not self._resize_warned:
                log.warning("video output %s: frame size %dx%d differs from %dx%d; resizing",
                            self.path.name, image.shape[1], image.shape[0], w, h)
                self._resize_warned = True
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        pad_w, pad_h = w & 1, h & 1
        if pad_w or pad_h:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        return image

    def write(self, result: FrameResult) -> None:
        """Draw and encode one frame."""
        import av

        if self._closed:
            raise OutputError(f"video output {self.path} is already closed")
        if self._skip:  # the earlier part already holds this frame
            self._skip -= 1
            self.skipped += 1
            return
        if self.frames_written and self._rotation_due():
            self._rotate()
        stream = self._stream or self._open_stream(self.size or result.frame.size)
        image = self._fit(self.annotator.draw(result))
        # OpenCV's BGR -> I420 (BT.601, limited range, like FFmpeg's default) is ~4x cheaper than swscale
        i420: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = self._tick(float(result.frame.pts))
        frame.time_base = self.time_base
        try:
            self._mux(stream.encode(frame))
        except Exception as exc:  # noqa: BLE001 - disk full, encoder failure: one line for the user
            self._broken = True
            raise OutputError(f"cannot write video output {self.path}: {_reason(exc)}") from None
        self.frames_written += 1
        self.frames_total += 1

    def _rotation_due(self) -> bool:
        if self.rotate_seconds is not None and self._clock() - self._segment_started >= self.rotate_seconds:
            return True
        if self.rotate_bytes is not None:
            try:
                return self.path.stat().st_size >= self.rotate_bytes
            except OSError:
                return False
        return False

    def _rotate(self) -> None:
        """Finish the current segment, rename it aside and start the next one (with the coming frame)."""
        self._finish_segment()
        target, self._sequence = rotated_name(self.path, self._segment_started, self._sequence)
        try:
            os.rename(self.path, target)
        except OSError as exc:
            raise OutputError(f"cannot rotate video output {self.path} to {target.name}: "
                              f"{exc.strerror or exc}") from None
        self.rotated.append(target)
        log.info("rotated %s -> %s", self.path, target.name)
        self.retention.apply(self.path)
        self._container = self._open_container()
        self._stream, self._pts0, self._last_tick, self.frames_written = None, None, None, 0

    def _finish_segment(self) -> None:
        """Flush the encoder and close the container; then rewrite it as a faststart MP4 when asked.
        Raises OutputError (one line) when the flush or close failed (what was written stays readable)."""
        error: Optional[BaseException] = None
        if self._broken:   # flushing into a muxer whose write failed crashed the process (SIGSEGV in FFmpeg)
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the write already failed; its error is the one reported
                pass
            raise OutputError(f"video output {self.path} ends early: an earlier write failed (what was written "
                              "plays up to its last key frame)")
        if self._stream is not None and self.frames_written:
            try:
                self._mux(self._stream.encode(None))
            except Exception as exc:  # noqa: BLE001 - still close the container below
                error = exc
        try:
            self._container.close()
        except Exception as exc:  # noqa: BLE001
            if self.frames_written:
                error = error or exc
        if error is not None:
            raise OutputError(f"video output {self.path} may end early: {_reason(error)} "
                              "(what was written plays up to its last key frame)") from None
        self._stored = self.frames_total  # the segment is closed: every frame is in its file
        if self.faststart and self.frames_written:
            _to_faststart(self.path)

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            packet.duration = self._step
            if packet.is_keyframe and self._mp4:   # a key frame closes the fragment before it, written out at once
                self._stored = self._muxed
            self._container.mux(packet)
            # MKV writes a cluster when the next one starts (at a key frame past 4 KiB, or a size or time limit),
            # AVI each packet: the file grew with this packet, so every packet before it is in it
            if not self._mp4:
                size = self._file_size() or 0
                if size > self._size_seen:
                    self._size_seen, self._stored = size, self._muxed
            self._muxed += 1

    def _file_size(self) -> Optional[int]:
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def stored(self, frames: int) -> bool:
        """Whether the first ``frames`` frames written (``frames_total`` then) would survive ``kill -9`` now.
        The encoder keeps frames back and an MP4 fragment reaches the file only when the next key frame
        starts: a snapshot must wait for that, or a resumed run (whose next part starts after the snapshot)
        would lose the frames between. MKV clusters and AVI packets count once the file has grown by them."""
        return self._stored >= frames

    def position(self) -> Optional[Mapping[str, object]]:
        """Which file this is and how many frames it holds; an MP4 cannot be cut back, so a resumed run
        writes the frames after the saved state into the next part (``NAME.part2.mp4``, ...). Until this part
        holds a frame, while it skips the frames the earlier part already held, that is the earlier part's
        position, counting the frames skipped so far."""
        earlier = self._earlier or {}
        frames = earlier.get("frames")
        if isinstance(frames, int) and not self.frames_total and (self._skip or self.skipped):
            return {**earlier, "frames": frames + self.skipped}
        return {"path": str(self.path), "part": self.part, "frames": self.frames_written, "segment": self._segment_id}

    def close(self) -> None:
        """Flush the encoder, write the index and close the file. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish_segment()
        finally:
            if not self.frames_written:
                self._remove_placeholder()
                if self.skipped and not self.frames_total:
                    log.info("video output %s: not needed, the earlier part already holds every frame", self.path)
                elif not self.frames_total:
                    log.warning("video output %s: no frames were written; no file created", self.path)


def _reason(exc: BaseException) -> str:
    """An OS or FFmpeg error as its short reason (``No space left on device``)."""
    return str(getattr(exc, "strerror", None) or exc)


def _to_faststart(path: Path) -> None:
    """Rewrite a finished fragmented MP4 as a regular one with the index first (packets copied, nothing
    re-encoded). On failure (e.g. no room for the copy) the fragmented file is kept: it plays too."""
    import av

    tmp = path.with_name(f".{path.name}.faststart{path.suffix}")
    try:
        with av.open(str(path)) as src, av.open(str(tmp), "w", options={"movflags": "+faststart"}) as dst:
            dst.metadata.update(src.metadata)   # the segment id with it
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type == "video"}
            for packet in src.demux(*[s for s in src.streams if s.index in streams]):
                if packet.dts is None:
                    continue
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - keep the playable fragmented file
        tmp.unlink(missing_ok=True)
        log.warning("video output %s: kept as fragmented MP4 (rewrite with the index first failed: %s)",
                    path, _reason(exc))


def frames_in(path: "str | os.PathLike[str]") -> Optional[int]:
    """How many frames the video file ``path`` holds, from its packets (demuxed, not decoded): a file cut off by
    ``kill -9`` or a full disk counts its complete frames only. 0 for a missing file, None when it cannot be
    read."""
    import av

    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    except OSError:
        return None
    if size == 0:
        return 0
    try:
        container = av.open(str(path))
    except Exception:  # noqa: BLE001 - not a video PyAV can open
        return None
    count = 0
    with container:
        if not container.streams.video:
            return 0
        try:
            for packet in container.demux(container.streams.video[0]):
                # a packet reaching past the end of the file was cut short: not a complete frame
                if packet.size and packet.dts is not None and (packet.pos is None or packet.pos + packet.size <= size):
                    count += 1
        except av.FFmpegError:  # a torn end: the packets before it count
            pass
    return count


def segment_id(path: "str | os.PathLike[str]") -> Optional[str]:
    """The id a video sink wrote into the header of ``path`` (its ``position()``'s ``segment``), None if none."""
    import av

    try:
        with av.open(str(path)) as container:
            return segment_of(container)
    except Exception:  # noqa: BLE001 - unreadable: no id
        return None


def segment_of(container: Any) -> Optional[str]:
    """The id a video sink wrote into the header of the open ``container`` (``segment_id`` of its file)."""
    return segment_in(container.metadata)


def segment_in(tags: Mapping[str, object]) -> Optional[str]:
    """The id a video sink wrote into a container's metadata ``tags`` (``segment_of``), None if none."""
    tag = next((str(v) for k, v in tags.items() if k.lower() == _SEGMENT_TAG), "")  # MKV: COMMENT
    return tag[len(_SEGMENT_PREFIX):] if tag.startswith(_SEGMENT_PREFIX) else None


def _already_held(resume: Mapping[str, object]) -> int:
    """Frames the earlier part (``resume``: its saved position) holds beyond what its snapshot counted: a run
    killed after that snapshot went on writing them. The next part skips them, so no frame is written twice."""
    path, saved = resume.get("path"), resume.get("frames")
    if not isinstance(path, str) or not isinstance(saved, int):
        return 0
    held = frames_in(path)
    if held is None:
        log.warning("video output: cannot read %s to count its frames; the next part starts after the saved state "
                    "(frames after it may show twice)", path)
        return 0
    segment = resume.get("segment")
    if isinstance(segment, str) and held and segment_id(path) != segment:
        if held != saved:   # another file: a segment rotated aside after the snapshot left a new one there
            log.warning("video output: %s is not the file its saved state counted (a segment rotated since?); the "
                        "next part starts after the saved state (frames after it may show twice)", path)
        return 0
    return max(0, held - saved)


def part_path(path: str, part: int) -> str:
    """``out.mp4`` for part 1, ``out.part2.mp4`` for part 2, ..."""
    if part <= 1:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.part{part}{p.suffix}"))


def _warn_earlier_parts(path: str) -> None:
    """A video started over at part 1 (``--fresh-state``, ``--overwrite``, or its part 1 removed) names the parts
    2, 3, ... it finds after it: an earlier resumed run's, which played after the new file would seem to go on
    with that run's frames. They are left as they are: nothing ties a part to the file before it (another source
    of the archive, ``lecture.part2.mp4``, writes under that very name), so removing them could delete another
    video's finished output. The first missing part ends the series."""
    part = 2
    while os.path.lexists(following := part_path(path, part)):
        log.warning("video output: %s is left from an earlier run or belongs to another source: it is not part of "
                    "the new %s (remove it if it is the earlier run's)", following, path)
        part += 1


def _build(ctx: SinkContext) -> AnnotatedVideoSink:
    out = ctx.config.output
    assert out.video is not None
    saved = ctx.resume.get("part") if ctx.resume else None
    part = saved + 1 if isinstance(saved, int) else 1
    path = part_path(ctx.path(out.video), part)
    if part == 1:
        _warn_earlier_parts(path)
    # a file's resumed run reads again the frames after the snapshot, so the ones the earlier part holds are
    # skipped; a camera's frames after a restart are new ones, none of them is in the earlier part
    skip = _already_held(ctx.resume) if ctx.resume and part > 1 and not ctx.settings.is_live else 0
    if part > 1:
        held = f" ({skip} frames after the saved state are in {ctx.resume.get('path') if ctx.resume else ''} " \
            "already)" if skip else ""
        log.info("video output: continuing %s in %s%s", ctx.settings.id, path, held)
    rate = Fraction(ctx.fps if ctx.fps is not None else DEFAULT_FPS).limit_denominator(1001)
    codec = select_encoder(out.video_codec, out.video_encoder, out.video_crf, out.video_preset, rate,
                           f"video output {ctx.settings.id}")
    return AnnotatedVideoSink(path, ctx.fps, ctx.size, ctx.config.overlay, codec=codec,
                              crf=out.video_crf, preset=out.video_preset, zones=ctx.settings.zones,
                              lines=ctx.settings.lines, part=part, keyframe_seconds=out.video_keyframe_seconds,
                              faststart=out.video_faststart, rotate_seconds=out.video_rotate_seconds,
                              rotate_bytes=out.video_rotate_bytes,
                              retention=Retention(out.retain_seconds, out.retain_bytes),
                              skip=skip, earlier=ctx.resume if part > 1 else None)


ENTRY = SinkEntry("video", DropPolicy.BLOCK, lambda config: bool(config.output.video), _build)

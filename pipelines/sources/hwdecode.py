"""Which decoder a source uses: NVDEC (FFmpeg's ``*_cuvid`` decoders) when it can be opened, else software.

``source.decoder`` says what to try:

- ``auto``: the codec's ``*_cuvid`` decoder when this FFmpeg build has it *and* it opens (which needs an NVIDIA
  GPU and driver); otherwise PyAV's software decoder. One log line per source says which was chosen and why.
  On a machine with no NVIDIA device node nothing is probed (``pipelines/gpu.py``): the probe could only fail,
  and FFmpeg would print that failure on every run.
- ``cpu``: software decoding, nothing probed.
- ``cuda``: NVDEC or nothing: when it cannot be opened the source fails with one ``SourceError`` line (a run asked
  for the GPU explicitly; silently decoding 32 streams of 1080p on the CPU instead would hide the problem).

A decoder existing in ``av.codecs_available`` proves nothing (FFmpeg builds ship ``h264_cuvid`` without a GPU
present), so selection always tries to open the real decoder context and falls back when that fails.
The cuvid decoders return NV12 frames in system memory, so everything after decoding is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Optional

import av

from pipelines.errors import SourceError
from pipelines.gpu import nvidia_device_present

log = logging.getLogger(__name__)

DecoderMode = Literal["auto", "cpu", "cuda"]
DECODER_MODES = ("auto", "cpu", "cuda")

# FFmpeg codec name of a stream -> its NVDEC decoder
CUVID_DECODERS = {
    "h264": "h264_cuvid", "hevc": "hevc_cuvid", "av1": "av1_cuvid", "vp9": "vp9_cuvid", "vp8": "vp8_cuvid",
    "mpeg1video": "mpeg1_cuvid", "mpeg2video": "mpeg2_cuvid", "mpeg4": "mpeg4_cuvid", "vc1": "vc1_cuvid",
    "mjpeg": "mjpeg_cuvid",
}


@dataclass(frozen=True)
class DecoderChoice:
    """The decoder a source uses.

    Attributes:
        name: FFmpeg decoder name (``h264_cuvid``), or the stream's codec name for software decoding.
        hardware: True for NVDEC.
        reason: why it was chosen, for the log line (``"h264_cuvid opened"``, ``"decoder: cpu"``, ...).
        context: the opened hardware decoder context (None for software: the stream's own context decodes).
    """

    name: str
    hardware: bool
    reason: str
    context: Any = None

    def decode(self, packet: Any) -> list[Any]:
        """The frames (``av.VideoFrame``) that ``packet`` completes, from whichever decoder was chosen."""
        frames = packet.decode() if self.context is None else self.context.decode(packet)
        return list(frames)


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


class NoNvidiaDevice(OSError):
    """Raised instead of probing NVDEC on a machine that has no NVIDIA device."""


def open_cuvid(name: str, stream: "av.VideoStream") -> Any:
    """``open_decoder``, or ``NoNvidiaDevice`` without asking FFmpeg when the machine has no NVIDIA device."""
    if not nvidia_device_present():
        raise NoNvidiaDevice("no NVIDIA device")
    return open_decoder(name, stream)


def open_decoder(name: str, stream: "av.VideoStream") -> Any:
    """Open decoder ``name`` for ``stream`` (its extradata and size); raises what FFmpeg raises."""
    ctx: Any = av.CodecContext.create(name, "r")
    source = stream.codec_context
    if source.extradata:
        ctx.extradata = source.extradata
    ctx.width, ctx.height = source.width, source.height
    ctx.open()
    return ctx


def choose_decoder(stream: "av.VideoStream", mode: str, source_id: str, *,
                   available: Optional[Iterable[str]] = None,
                   opener: Optional[Callable[[str, "av.VideoStream"], Any]] = None) -> DecoderChoice:
    """The decoder for ``stream`` under ``mode`` (see module docstring); logs one line for ``auto``/``cuda``.

    ``available`` (default ``av.codecs_available``) and ``opener`` (default ``open_cuvid``) are there for tests.

    Raises:
        SourceError: ``mode`` is ``cuda`` and no NVDEC decoder for this codec can be opened.
    """
    if mode not in DECODER_MODES:
        raise SourceError(f"{source_id}: source.decoder must be auto, cpu or cuda, got {mode!r}")
    codec = stream.codec_context.name
    if mode == "cpu":
        return DecoderChoice(codec, False, "decoder: cpu")
    names = av.codecs_available if available is None else set(available)
    cuvid = CUVID_DECODERS.get(codec)
    if cuvid is None:
        why = f"no NVDEC decoder for {codec}"
    elif cuvid not in names:
        why = f"{cuvid} is not in this FFmpeg build"
    else:
        try:
            context = (opener or open_cuvid)(cuvid, stream)
        except NoNvidiaDevice:
            why = "no NVIDIA device"
        except Exception as exc:  # noqa: BLE001 - no GPU/driver shows as EPERM, ENOSYS, EINVAL, ...
            why = f"{cuvid} cannot be opened ({_reason(exc)})"
        else:
            log.info("%s: decoding %s on the GPU with %s (NVDEC)", source_id, codec, cuvid)
            return DecoderChoice(cuvid, True, f"{cuvid} opened", context)
    if mode == "cuda":
        raise SourceError(f"{source_id}: source.decoder is cuda but {why}; use decoder: auto or cpu")
    log.info("%s: decoding %s in software (%s)", source_id, codec, why)
    return DecoderChoice(codec, False, why)

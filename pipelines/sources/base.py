"""What every source is: the ``Source`` protocol, the reading options ``SourceConfig`` and URL kinds.

A source yields decoded frames (``VideoFrame``) and health changes (``StreamStatus``) from one blocking
iterator. File sources yield every frame; live sources (``pipelines/sources/live.py``) yield the newest
frames of a camera and reconnect on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Iterator, Literal, Optional, Protocol, Union
from urllib.parse import unquote, urlsplit

from pipelines.frames import StreamStatus, VideoFrame


@dataclass(frozen=True)
class SourceConfig:
    """How a source is read (config section ``source``; per-source overrides under ``sources[i]``).

    Times are seconds. ``vid_stride`` and ``max_fps`` select frames by index and by presentation time,
    so the processed frames of a file are the same on every run. ``loop`` plays a file again from its
    start whenever it ends, until stopped (index and pts keep rising), for soak tests, demos and kiosks.
    """

    vid_stride: int = field(default=1, metadata={"min": 1})
    max_fps: Optional[float] = field(default=None, metadata={"gt": 0})
    realtime: Optional[bool] = None
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout: float = field(default=10.0, metadata={"gt": 0})
    read_timeout: float = field(default=5.0, metadata={"gt": 0})
    reconnect: bool = True
    reconnect_initial_delay: float = field(default=0.5, metadata={"min": 0})
    reconnect_max_delay: float = field(default=30.0, metadata={"gt": 0})
    reconnect_max_attempts: int = field(default=0, metadata={"min": 0})
    decode_threads: int = field(default=0, metadata={"min": 0, "max": 64})
    decoder: Literal["auto", "cpu", "cuda"] = "auto"  # NVDEC or software: pipelines/sources/hwdecode.py
    loop: bool = False


LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
_WEBCAM = re.compile(r"^(webcam:\d+|/dev/video\d+)$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_live_url(url: str) -> bool:
    """True for camera URLs (rtsp/rtsps/rtmp/http(s)), ``/dev/videoN`` and ``webcam:N``."""
    if _WEBCAM.match(url):
        return True
    match = _SCHEME.match(url)
    return bool(match and match.group(1).lower() in LIVE_SCHEMES)


def url_scheme(url: str) -> Optional[str]:
    """The ``scheme`` of ``scheme://...``, or None for a plain path."""
    match = _SCHEME.match(url)
    return match.group(1) if match else None


def file_path(url: str) -> Optional[str]:
    """The local path of a plain path or ``file://`` URL; None for anything with another scheme."""
    scheme = url_scheme(url)
    if scheme is None:
        return url
    if scheme.lower() == "file":
        return unquote(urlsplit(url).path)
    return None


class Source(Protocol):
    """A stream of frames from one file or camera."""

    source_id: str
    is_live: bool
    fps: Optional[float]
    size: Optional[tuple[int, int]]
    frame_count: Optional[int]

    @property
    def dropped(self) -> int:
        """Frames the source itself skipped because newer ones arrived (0 for files)."""
        ...

    @property
    def pending(self) -> int:
        """Frames decoded and waiting inside the source (its own buffer), for the queue-depth gauge."""
        ...

    @property
    def connected(self) -> bool:
        """Whether frames flow now (a camera in a gap is not connected; a file always is)."""
        ...

    @property
    def connect_failures(self) -> int:
        """Failed connection attempts so far (0 for files)."""
        ...

    def frames(self) -> Iterator[Union[VideoFrame, StreamStatus]]:
        """Blocking iterator of frames and statuses; ends when the source ends or ``stop()`` is called."""
        ...

    def stop(self) -> None:
        """Make ``frames()`` end soon. Thread-safe."""
        ...

    def close(self) -> None:
        """Release the file or connection."""
        ...

"""What every source is: the ``Source`` protocol, its ``SourceSpec`` and the reading options ``SourceConfig``.

A source yields decoded frames (``VideoFrame``) and health changes (``StreamStatus``) from one blocking
iterator. File sources yield every frame; live sources (``pipelines/sources/live.py``) yield the newest
frames of a camera and reconnect on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Optional, Protocol, Union

from pipelines.frames import StreamStatus, VideoFrame


@dataclass(frozen=True)
class SourceConfig:
    """How a source is read (config section ``source``; per-source overrides under ``sources[i]``).

    Times are seconds. ``vid_stride`` and ``max_fps`` select frames by index and by presentation time,
    so the processed frames of a file are the same on every run.
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


@dataclass(frozen=True)
class SourceSpec:
    """One configured source.

    Attributes:
        url: file path, ``file://`` URL, camera URL (rtsp/rtsps/rtmp/http(s)), ``/dev/videoN`` or
            ``webcam:N``.
        id: configured id; ``None`` lets the source choose (file stem, or redacted host/path for URLs).
        zones: zone configs (``pipelines.config.ZoneConfig``) for events on this source.
        lines: line configs (``pipelines.config.LineConfig``) for events on this source.
        realtime: frame policy in the runner: None = latest-frame for live sources and every frame for
            files; True forces latest-frame (drops counted), False forces every frame.
    """

    url: str
    id: Optional[str] = None
    zones: tuple[Any, ...] = ()
    lines: tuple[Any, ...] = ()
    realtime: Optional[bool] = None


class Source(Protocol):
    """A stream of frames from one file or camera."""

    source_id: str
    is_live: bool
    fps: Optional[float]
    size: Optional[tuple[int, int]]
    frame_count: Optional[int]

    def frames(self) -> Iterator[Union[VideoFrame, StreamStatus]]:
        """Blocking iterator of frames and statuses; ends when the source ends or ``stop()`` is called."""
        ...

    def stop(self) -> None:
        """Make ``frames()`` end soon. Thread-safe."""
        ...

    def close(self) -> None:
        """Release the file or connection."""
        ...

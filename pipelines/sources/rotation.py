"""Display rotation: decoded frames turned as a player shows them, for files and live streams alike.

A phone's video states its rotation as the ``rotate`` tag / display matrix of its track, on every frame; a
camera or encoder states it in the H.264/HEVC display-orientation SEI, often with the key frame only. FFmpeg
hands either on as a frame's display-matrix side data. ``Upright`` keeps the rotation a frame states for the
frames after it that state none, so a stream never changes size between a key frame and the frames after it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from pipelines.frames import Deferred, Luma

_TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def frame_rotation(frame: Any) -> int:
    """The display rotation of ``frame`` (an ``av.VideoFrame``: its display matrix side data, e.g. a phone's
    ``rotate`` tag) as 0, 90, 180 or 270 degrees counter-clockwise, the way FFmpeg and players turn it."""
    try:
        angle = int(round(getattr(frame, "rotation", 0) or 0))
    except (TypeError, ValueError):
        return 0
    return (round(angle / 90) * 90) % 360


def states_rotation(frame: Any) -> bool:
    """Whether ``frame`` carries a display matrix (a rotation of 0 stated, as opposed to none stated)."""
    try:
        return any(getattr(getattr(item, "type", None), "name", "") == "DISPLAYMATRIX" for item in frame.side_data)
    except (AttributeError, TypeError):
        return False


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """``image`` turned as a player shows it (``rotation`` from ``frame_rotation``)."""
    turn = _TURNS.get(rotation)
    return image if turn is None else cv2.rotate(image, turn)


_LUMA_SPAN = {"yuv420p": 219.0, "yuvj420p": 255.0, "nv12": 219.0, "yuv422p": 219.0, "yuvj422p": 255.0,
              "yuv444p": 219.0, "yuvj444p": 255.0}  # 8-bit formats whose first plane is luma, and its span


class ToBgr:
    """Converts one stream's decoded frames to BGR with one scaler, kept from frame to frame.

    ``frame.to_ndarray(format="bgr24")`` makes a scaler for every frame, with a pool of FFmpeg threads (one
    per core) that lives as long as the frame: 2.1 ms of CPU per 1280x720 frame, against 0.3 ms here, and
    threads that come and go with the frames a stage still holds. One thread converts: the stages already keep
    the cores busy. Any thread may call it (the first stage to need a picture converts it)."""

    def __init__(self) -> None:
        self._scaler = VideoReformatter()
        self._lock = threading.Lock()

    def __call__(self, frame: Any) -> np.ndarray:
        with self._lock:
            converted = self._scaler.reformat(frame, format="bgr24", threads=1)
        return np.asarray(converted.to_ndarray())


def deferred_picture(frame: Any, rotation: int, to_bgr: Callable[[Any], np.ndarray]) -> Deferred:
    """``frame`` (an ``av.VideoFrame``) as a picture made when first read: upright BGR (``upright``, converted
    by ``to_bgr``: the stream's ``ToBgr``), and its luma plane at no cost for the motion measure (video-range
    ``yuv*`` formats span 219 levels, ``yuvj*`` 255)."""

    def convert() -> np.ndarray:
        return np.ascontiguousarray(upright(to_bgr(frame), rotation))

    span = _LUMA_SPAN.get(frame.format.name)
    luma: Optional[Callable[[], Luma]] = None
    if span is not None:
        def luma() -> Luma:
            plane = frame.planes[0]
            rows = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height)
            grey = rows.reshape(plane.height, plane.line_size)[:, :plane.width]
            return np.rot90(grey, rotation // 90), span  # a view: turned as ``upright`` turns the picture

    return Deferred(convert, turned_size((int(frame.width), int(frame.height)), rotation), luma)


def turned_size(size: tuple[int, int], rotation: int) -> tuple[int, int]:
    """``(width, height)`` of a picture stored as ``size`` once turned by ``rotation``."""
    return (size[1], size[0]) if rotation in (90, 270) else size


class Upright:
    """Turns one stream's decoded frames as a player shows them; ``rotation`` is the one in force (the last a
    frame stated, ``initial`` before any)."""

    def __init__(self, initial: int = 0) -> None:
        self.rotation = initial

    def see(self, frame: Any) -> int:
        """Note the rotation ``frame`` states, if any; the rotation in force for it.

        The angle is read in place; the frame's ``side_data`` is opened only to tell a stated 0 from none while
        another rotation is in force: PyAV's side-data container and the frame refer to each other, so a frame
        whose container was opened is freed by the garbage collector, not when the last stage drops it, and
        the decoder meanwhile allocates new pictures (0.15 ms per 720p frame, and memory)."""
        angle = frame_rotation(frame)
        if angle or (self.rotation and states_rotation(frame)):
            self.rotation = angle
        return self.rotation


__all__ = ["ToBgr", "Upright", "deferred_picture", "frame_rotation", "states_rotation", "turned_size", "upright"]

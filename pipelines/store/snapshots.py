"""Each track's best view: the sharpest, largest, most confident sight of it (no I/O).

``SnapshotPicker.observe(result)`` scores the matched rows of a frame and keeps, per live track, the frame
and box of its best view so far: ``score = confidence * sqrt(area) * (1 + log1p(sharpness))``, where
sharpness is the variance of the Laplacian of the box's grey crop scaled to 64 px, and a box touching the
frame's edge (a partial view) counts half. Scoring is cheap and bounded: a track is scored again only
when its box got 10% larger or more confident, or a quarter second of video time passed. The picker holds a
reference to the frame's picture (never a copy; frames are not changed once decoded).

``take(track_id)`` hands the best view over when the track ends: its crop and the full frame with the
box drawn, as JPEG bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import numpy.typing as npt

from pipelines.frames import FrameResult

RESCORE_S = 0.25
SHARPNESS_PX = 64
EDGE_PENALTY = 0.5
CROP_MAX_PX = 512


@dataclass
class View:
    """A track's best view so far: the frame's picture, the box (x1, y1, x2, y2 px) and its score."""

    image: npt.NDArray[np.uint8]
    box: tuple[int, int, int, int]
    score: float
    quick: float        # confidence * area: the cheap part of the score
    pts: float
    confidence: float


def sharpness(image: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the box's grey crop at 64 px (higher: more detail, less blur)."""
    x1, y1, x2, y2 = box
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return 0.0
    small = cv2.resize(crop, (SHARPNESS_PX, SHARPNESS_PX), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    _, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))   # a third of numpy's var() on 64x64
    return float(std[0, 0]) ** 2


def clip_box(xyxy: "list[float]", width: int, height: int) -> tuple[tuple[int, int, int, int], bool]:
    """The box in whole pixels inside the frame, and whether it touches the frame's edge."""
    x1, y1 = max(0, int(math.floor(xyxy[0]))), max(0, int(math.floor(xyxy[1])))
    x2, y2 = min(width, int(math.ceil(xyxy[2]))), min(height, int(math.ceil(xyxy[3])))
    edge = x1 <= 1 or y1 <= 1 or x2 >= width - 1 or y2 >= height - 1
    return (x1, y1, max(x1, x2), max(y1, y2)), edge


def score_view(image: npt.NDArray[np.uint8], box: tuple[int, int, int, int], confidence: float, edge: bool) -> float:
    area = (box[2] - box[0]) * (box[3] - box[1])
    value = confidence * math.sqrt(max(area, 0)) * (1.0 + math.log1p(sharpness(image, box)))
    return value * (EDGE_PENALTY if edge else 1.0)


class SnapshotPicker:
    """The best view of every live track of one source."""

    def __init__(self) -> None:
        self.best: dict[int, View] = {}
        self._next: dict[int, float] = {}   # track id -> pts after which it is scored again anyway

    def observe(self, result: FrameResult) -> None:
        t = result.tracks
        rows = np.flatnonzero(t.matched)
        if not rows.size:
            return
        image = result.frame.image
        height, width = image.shape[:2]
        pts = float(result.frame.pts)
        for xyxy, tid, conf in zip(t.xyxy[rows].tolist(), t.track_id[rows].tolist(), t.confidence[rows].tolist()):
            box, edge = clip_box(xyxy, width, height)
            quick = float(conf) * (box[2] - box[0]) * (box[3] - box[1])
            held = self.best.get(int(tid))
            if held is not None and quick <= held.quick * 1.1 and pts < self._next.get(int(tid), 0.0):
                continue
            self._next[int(tid)] = pts + RESCORE_S
            score = score_view(image, box, float(conf), edge)
            if held is None or score > held.score:
                self.best[int(tid)] = View(image, box, score, quick, pts, float(conf))

    def take(self, track_id: int) -> Optional[View]:
        """The track's best view, forgotten here (None when it was never seen matched)."""
        self._next.pop(track_id, None)
        return self.best.pop(track_id, None)


def encode_view(view: View, label: str, quality: int = 90) -> tuple[bytes, bytes]:
    """(crop JPEG, full-frame JPEG with the box and ``label`` drawn)."""
    x1, y1, x2, y2 = view.box
    crop = view.image[y1:y2, x1:x2]
    longest = max(crop.shape[:2]) if crop.size else 0
    if longest > CROP_MAX_PX:
        scale = CROP_MAX_PX / longest
        crop = np.asarray(cv2.resize(crop, (max(1, round(crop.shape[1] * scale)),
                                            max(1, round(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA),
                          np.uint8)
    frame = view.image.copy()
    thickness = max(2, round(max(frame.shape[:2]) / 400))
    cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 0, 255), thickness)
    cv2.putText(frame, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness / 2 + 0.3,
                (0, 0, 255), max(1, thickness // 2), cv2.LINE_AA)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok1, crop_jpeg = cv2.imencode(".jpg", crop if crop.size else np.zeros((8, 8, 3), np.uint8), params)
    ok2, frame_jpeg = cv2.imencode(".jpg", frame, params)
    if not (ok1 and ok2):
        raise RuntimeError("JPEG encoding failed")
    return bytes(crop_jpeg.tobytes()), bytes(frame_jpeg.tobytes())

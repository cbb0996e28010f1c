"""Hand-made ``Tracks`` for overlay and sink tests (no model needed); real frames come from ``tests/clips.py``."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from pipelines.frames import FrameResult, VideoFrame
from tracker.types import Detections, Tracks, TrackState

CLASS_NAMES = {0: "person", 1: "bicycle", 2: "car"}


def pose_keypoints(box: Sequence[float], visibility: float = 0.9) -> np.ndarray:
    """17 COCO keypoints (x, y, visibility) laid out like a standing person inside ``box``."""
    x1, y1, x2, y2 = box
    u = np.array([.5, .45, .55, .4, .6, .35, .65, .3, .7, .28, .72, .4, .6, .4, .6, .4, .6])
    v = np.array([.08, .06, .06, .08, .08, .25, .25, .4, .4, .55, .55, .55, .55, .75, .75, .95, .95])
    xy = np.stack([x1 + u * (x2 - x1), y1 + v * (y2 - y1)], axis=1)
    return np.concatenate([xy, np.full((17, 1), visibility)], axis=1).astype(np.float32)


def box_polygon(box: Sequence[float], inset: float = 4.0) -> np.ndarray:
    """A diamond inside ``box`` (a stand-in for a segmentation contour)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[cx, y1 + inset], [x2 - inset, cy], [cx, y2 - inset], [x1 + inset, cy]], np.float32)


def make_tracks(ids: Sequence[int], boxes: Sequence[Sequence[float]], *,
                class_ids: Optional[Sequence[int]] = None, confidences: Optional[Sequence[float]] = None,
                path_points: int = 5, velocity: Sequence[float] = (40.0, 0.0), keypoints: bool = False,
                polygons: bool = False, mask_size: Optional[tuple[int, int]] = None,
                removed: Iterable[int] = ()) -> Tracks:
    """Tracks with the given ids/boxes; predicted path continues along ``velocity`` (px/s) at 0.1 s steps.

    ``mask_size=(w, h)`` adds boolean masks (the polygon rasterised at frame size).
    """
    import cv2

    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(xyxy)
    centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    steps = np.arange(1, path_points + 1, dtype=np.float32)[None, :, None] * 0.1
    path = centres[:, None, :] + steps * np.asarray(velocity, np.float32)[None, None, :]
    polys = tuple(box_polygon(b) for b in xyxy) if (polygons or mask_size) else None
    masks = None
    if mask_size is not None and polys is not None:
        w, h = mask_size
        masks = np.zeros((n, h, w), bool)
        for i, poly in enumerate(polys):
            canvas = np.zeros((h, w), np.uint8)
            cv2.fillPoly(canvas, [np.rint(poly).astype(np.int32)], 1)
            masks[i] = canvas.astype(bool)
    return Tracks(
        xyxy=xyxy,
        confidence=np.asarray(confidences if confidences is not None else [0.9] * n, np.float32),
        class_id=np.asarray(class_ids if class_ids is not None else [0] * n, np.int64),
        track_id=np.asarray(ids, np.int64),
        det_index=np.arange(n, dtype=np.int64),
        velocity=np.tile(np.asarray(velocity, np.float32), (n, 1)),
        predicted_path=path.astype(np.float32).reshape(n, path_points, 2),
        age=np.ones(n, np.float32),
        state=np.full(n, int(TrackState.CONFIRMED), np.int64),
        keypoints=np.stack([pose_keypoints(b) for b in xyxy]) if keypoints and n else None,
        masks=masks,
        mask_polygons=polys,
        removed_ids=np.asarray(list(removed), np.int64),
    )


def make_result(image: np.ndarray, tracks: Tracks, *, index: int = 0, pts: Optional[float] = None,
                fps: float = 25.0, source_id: str = "bikes") -> FrameResult:
    """A FrameResult of ``image`` with ``tracks`` (detections = the tracks' boxes)."""
    frame = VideoFrame(image=image, index=index, pts=index / fps if pts is None else pts, source_id=source_id,
                       capture_time=1_700_000_000.0 + index)
    dets = Detections(tracks.xyxy, tracks.confidence, tracks.class_id)
    return FrameResult(frame=frame, detections=dets, tracks=tracks, class_names=CLASS_NAMES)


def moving_results(images: Sequence[np.ndarray], *, fps: float = 25.0, step: float = 6.0, stride: int = 1,
                   keypoints: bool = False, polygons: bool = False, masks: bool = False) -> list[FrameResult]:
    """Tracks 1 and 7 moving right ``step`` px per frame over ``images`` (frame indices 0, stride, ...)."""
    results = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        dx = i * step
        boxes = [[40 + dx, 60, 120 + dx, 200], [300 + dx, 100, 360 + dx, 180]]
        tracks = make_tracks([1, 7], boxes, class_ids=[0, 1], confidences=[0.91, 0.55], keypoints=keypoints,
                             polygons=polygons, mask_size=(w, h) if masks else None)
        results.append(make_result(image, tracks, index=i * stride, fps=fps))
    return results

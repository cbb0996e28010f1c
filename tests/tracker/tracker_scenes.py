"""Small scene builders shared by the tracker tests."""

from __future__ import annotations

import numpy as np

from tracker import Detections


def box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    """Corner box around a centre."""
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def dets(boxes: list[list[float]], conf: float | list[float] = 0.9, cls: int | list[int] = 0,
         **extra: object) -> Detections:
    """Detections from a list of corner boxes (empty list allowed)."""
    n = len(boxes)
    conf_arr = np.full(n, conf, np.float32) if np.isscalar(conf) else np.asarray(conf, np.float32)
    cls_arr = np.full(n, cls, np.int64) if np.isscalar(cls) else np.asarray(cls, np.int64)
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), conf_arr, cls_arr, **extra)

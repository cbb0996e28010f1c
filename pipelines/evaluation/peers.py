"""Peer trackers scored in the same run as ours: Ultralytics' BYTETracker on the same detections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.evaluation.trackers import BYTETRACK, xyxy_rows


class _Boxes:
    """The slice of ``ultralytics.engine.results.Boxes`` that BYTETracker reads, from plain arrays.

    Attributes: ``xyxy``/``xywh`` float32 (N, 4) in pixels (``xywh`` is centre x/y, width, height),
    ``conf`` float32 (N,), ``cls`` float32 (N,). Boolean or integer indexing returns a new ``_Boxes``.
    """

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, dtype=np.float32).reshape(-1)
        self.cls = np.asarray(cls, dtype=np.float32).reshape(-1)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return int(self.conf.shape[0])

    def __getitem__(self, index: Any) -> "_Boxes":
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def bytetrack_defaults() -> dict[str, Any]:
    """Ultralytics' shipped defaults from ``ultralytics/cfg/trackers/bytetrack.yaml``."""
    import ultralytics
    import yaml

    path = Path(ultralytics.__file__).parent / "cfg" / "trackers" / "bytetrack.yaml"
    return dict(yaml.safe_load(path.read_text()))


class UltralyticsByteTrack:
    """``ultralytics.trackers.byte_tracker.BYTETracker`` with its default settings.

    Reports what BYTETracker returns for activated tracks matched this frame: its Kalman-updated box,
    the detection score and the track id (as ``model.track`` shows them to Ultralytics users).
    BYTETracker counts frames, not seconds, so ``timestamp`` is unused.
    """

    name = BYTETRACK

    def __init__(self) -> None:
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import IterableSimpleNamespace

        self._tracker = BYTETracker(IterableSimpleNamespace(**bytetrack_defaults()))

    def update(self, tlwh: np.ndarray, conf: np.ndarray, timestamp: float) -> np.ndarray:
        tlwh = np.asarray(tlwh, dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1)
        out = self._tracker.update(_Boxes(xyxy, conf, np.zeros(len(conf))))
        if len(out) == 0:
            return np.zeros((0, 6))
        return xyxy_rows(out[:, 4], out[:, :4], out[:, 5])

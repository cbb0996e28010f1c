"""What every tracker ``trackstream eval`` scores shares: the names, the one-frame interface, and the box
conversions (``trackers.py`` builds them by name; ``peers.py`` adapts the peers to it)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

TRACKSTREAM = "trackstream"
BYTETRACK = "ultralytics-bytetrack"
TRACKTRACK = "ultralytics-tracktrack"  # Ultralytics' default tracker since 8.4 (model.track)
BOTSORT = "ultralytics-botsort"
RF_BYTETRACK = "roboflow-bytetrack"
RF_OCSORT = "roboflow-ocsort"
TRACKER_NAMES = (TRACKSTREAM, BYTETRACK, TRACKTRACK, BOTSORT, RF_BYTETRACK, RF_OCSORT)


class FrameTracker(Protocol):
    """A multi-object tracker fed one frame at a time."""

    name: str

    def update(self, tlwh: np.ndarray, conf: np.ndarray, timestamp: float) -> np.ndarray:
        """Track one frame.

        Args:
            tlwh: float (N, 4) detection boxes ``x, y, w, h`` in pixels (top-left corner).
            conf: float (N,) detection scores in [0, 1].
            timestamp: seconds since the start of the sequence.

        Returns:
            float64 (M, 6) rows ``track_id, x, y, w, h, conf`` reported for this frame.
        """
        ...


def tlwh_to_xyxy(tlwh: np.ndarray) -> np.ndarray:
    """(N, 4) ``x, y, w, h`` -> (N, 4) ``x1, y1, x2, y2``."""
    tlwh = np.asarray(tlwh, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1)


def xyxy_rows(track_id: np.ndarray, xyxy: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Build (M, 6) ``id, x, y, w, h, conf`` rows from ids, corner boxes and scores."""
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([np.asarray(track_id, dtype=np.float64), xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2],
                            np.asarray(conf, dtype=np.float64)])

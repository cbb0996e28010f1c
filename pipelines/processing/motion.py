"""A cheap motion measure of decoded pictures, for the adaptive detection schedule (``schedule.py``).

Each frame is reduced to a small grey picture (every n-th pixel, then blurred), compared with a slowly
updated background, and the changed pixels form a small boolean mask. What share of that mask lies
outside the boxes the tracker already follows is "motion nobody explains": a new object, or one the tracker
lost. About 0.02-0.03 ms per 1280x720 frame read from its decoded luma plane (timeit, one core); the reader
thread of each source measures its own frames, in order, before they wait for the detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class MotionMask:
    """Pixels that changed in one frame, on a grid of ``step`` source pixels per cell (H', W') bool; ``grey`` is
    the frame's small grey picture on that grid and ``level`` the grey levels a cell must differ by to count as
    changed (``same_picture``)."""

    changed: Mask
    step: int
    grey: Optional[npt.NDArray[np.float32]] = None
    level: float = 20.0

    def _cells(self, boxes: npt.NDArray[np.float64]) -> list[tuple[slice, slice]]:
        """The (rows, columns) of the grid each box of ``boxes`` (N, 4) source pixels covers."""
        h, w = self.changed.shape
        cells = np.rint(np.asarray(boxes, np.float64) / self.step).astype(np.int64)
        return [(slice(max(y1, 0), min(y2 + 1, h)), slice(max(x1, 0), min(x2 + 1, w)))
                for x1, y1, x2, y2 in cells.tolist()]

    def changed_within(self, boxes: npt.NDArray[np.float64]) -> bool:
        """Whether any changed cell lies within a box of ``boxes`` (N, 4) source pixels."""
        return any(bool(self.changed[cell].any()) for cell in self._cells(boxes))

    def share_outside(self, boxes: npt.NDArray[np.float64]) -> float:
        """Share of all cells that changed and lie outside every box of ``boxes`` (N, 4) source pixels."""
        if self.changed.size == 0:
            return 0.0
        changed = self.changed
        if len(boxes):
            changed = changed.copy()
            for cell in self._cells(boxes):
                changed[cell] = False
        return float(np.count_nonzero(changed)) / changed.size

    def same_picture(self, other: Optional[npt.NDArray[np.float32]]) -> bool:
        """Whether this frame's small grey picture differs from ``other`` (an earlier frame's ``grey``) in no
        cell: detecting it finds what detecting that one found. False when either is unknown."""
        if self.grey is None or other is None or other.shape != self.grey.shape:
            return False
        return not bool(np.any(np.abs(self.grey - other) > self.level))


class MotionMeter:
    """Background difference of small grey pictures (one per source; frames in order).

    Args:
        width: cells across the picture (the source is sampled every ``ceil(W / width)`` pixels).
        pixel_threshold: grey levels (0-255) a cell must differ from the background to count as changed.
        background_rate: weight of each new frame in the running background (0-1); lower forgets a
            changed scene (a car that parked) more slowly.
    """

    def __init__(self, width: int = 96, pixel_threshold: float = 20.0, background_rate: float = 0.05) -> None:
        self.width, self.threshold, self.rate = width, pixel_threshold, background_rate
        self._background: npt.NDArray[np.float32] | None = None

    def measure(self, image: npt.NDArray[np.uint8], span: float = 255.0) -> MotionMask:
        """The changed cells of ``image`` against the background, which then learns the frame.

        ``image``: (H, W, 3) BGR, or (H, W) grey whose values span ``span`` levels (a decoded luma plane: 219 in
        video range), so a change counts the same in either."""
        step = max(1, -(-image.shape[1] // self.width))
        small = np.ascontiguousarray(image[::step, ::step])
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        grey = cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)
        level = self.threshold * span / 255.0
        background = self._background
        if background is None or background.shape != grey.shape:
            self._background = grey.copy()
            return MotionMask(np.zeros(grey.shape, bool), step, grey, level)
        # in place, with the same float32 arithmetic as ``background * (1 - rate) + grey * rate``
        diff = np.subtract(grey, background)
        changed: Mask = np.abs(diff, out=diff) > level
        np.multiply(background, 1.0 - self.rate, out=background)
        background += np.multiply(grey, self.rate, out=diff)
        return MotionMask(changed, step, grey, level)

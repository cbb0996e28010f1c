"""Offline refinement: fill short gaps of each track by linear interpolation of its boxes.

Not available to an online tracker (it needs the frame where the track comes back), so ``trackstream eval``
reports it separately from the online numbers.
"""

from __future__ import annotations

import numpy as np


def interpolate_gaps(rows: np.ndarray, max_gap: int = 20) -> np.ndarray:
    """Add rows for frames missing inside each track when the gap is at most ``max_gap`` frames.

    Args:
        rows: float (M, 7) ``frame, id, x, y, w, h, conf`` results.
        max_gap: longest run of missing frames that is filled (>= 1).

    Returns:
        float64 (M + added, 7) rows sorted by id then frame; added rows carry the lower of the two
        neighbouring confidences.
    """
    if max_gap < 1:
        raise ValueError(f"max_gap must be >= 1, got {max_gap}")
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    rows = rows[np.lexsort((rows[:, 0], rows[:, 1]))]
    if len(rows) < 2:
        return rows
    same_id = rows[1:, 1] == rows[:-1, 1]
    missing = rows[1:, 0] - rows[:-1, 0] - 1
    fill = np.flatnonzero(same_id & (missing >= 1) & (missing <= max_gap))
    added = [_fill(rows[i], rows[i + 1]) for i in fill]
    if not added:
        return rows
    out = np.concatenate([rows, *added])
    return out[np.lexsort((out[:, 0], out[:, 1]))]


def _fill(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    frames = np.arange(before[0] + 1, after[0])
    t = ((frames - before[0]) / (after[0] - before[0]))[:, None]
    boxes = before[2:6] + t * (after[2:6] - before[2:6])
    n = len(frames)
    return np.column_stack([frames, np.full(n, before[1]), boxes, np.full(n, min(before[6], after[6]))])

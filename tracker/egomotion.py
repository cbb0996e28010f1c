"""Camera motion from the detections alone: the common shift between where tracks were predicted and where
their detections appeared.

A moving camera moves every object in the image by about the same amount, which no per-object constant-
velocity model foresees. Before association, each track seen in the previous frame is paired with its
nearest high-confidence detection (mutually nearest, within half a box size of the predicted box); the
median displacement of those pairs is the frame's shift. It is applied to every track's predicted position
only when it stands out from the pairs' own scatter (``significance`` standard errors of the median), so a
static camera, where the displacements are centred on zero, is left alone. No image is needed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tracker.association import candidate_pairs

Array = npt.NDArray[np.float64]
MIN_PAIRS = 5
SEARCH = 0.5  # box sizes around the predicted box


def _mutual_nearest(ia: np.ndarray, ib: np.ndarray, dist: Array) -> np.ndarray:
    """Indices into the pair list of pairs that are each other's nearest."""
    order = np.lexsort((dist, ia))
    first_a = order[np.r_[True, ia[order][1:] != ia[order][:-1]]]
    order_b = np.lexsort((dist, ib))
    first_b = order_b[np.r_[True, ib[order_b][1:] != ib[order_b][:-1]]]
    return np.intersect1d(first_a, first_b)


def estimate_shift(pred: Array, dets: Array, significance: float) -> Array:
    """(2,) pixel shift of the image between predicted track boxes ``pred`` (T, 4) and detection boxes
    ``dets`` (D, 4), both ``x1, y1, x2, y2``; per axis zero when there are too few pairs or when the median
    is within ``significance`` standard errors of zero."""
    none = np.zeros(2)
    if pred.shape[0] < MIN_PAIRS or dets.shape[0] < MIN_PAIRS:
        return none
    ia, ib = candidate_pairs(pred, dets, SEARCH)
    if ia.size < MIN_PAIRS:
        return none
    centre_p = 0.5 * (pred[:, :2] + pred[:, 2:])
    centre_d = 0.5 * (dets[:, :2] + dets[:, 2:])
    move = centre_d[ib] - centre_p[ia]
    height = np.maximum(pred[ia, 3] - pred[ia, 1], 1.0)
    dist = np.hypot(move[:, 0], move[:, 1]) / height
    keep = _mutual_nearest(ia, ib, dist)
    if keep.size < MIN_PAIRS:
        return none
    move = move[keep]
    median = np.median(move, axis=0)
    spread = 1.4826 * np.median(np.abs(move - median), axis=0)
    stderr = 1.2533 * spread / np.sqrt(keep.size)  # standard error of a median of Gaussian samples
    return np.where(np.abs(median) > significance * np.maximum(stderr, 1e-6), median, 0.0)

"""Camera motion from the detections alone: the common shift between where tracks were predicted and where
their detections appeared.

A moving camera moves every object in the image by about the same amount, which no per-object constant-
velocity model foresees. ``shift_from_moves`` takes the displacements (detection centre minus predicted
centre) of track/detection pairs; their median is the frame's shift, applied only when it stands out from the
pairs' own scatter (``significance`` standard errors of the median), so a static camera, where the
displacements are centred on zero, is left alone. No image is needed. The tracker gives it the pairs its
association stages just matched; when most tracks lost their detection at once (a pan faster than the boxes
are wide) ``shift_of`` pairs tracks and detections itself, by mutually nearest centres at most one box size
apart (up to 32 tracks spread over the frame).

The pairs' scatter is also remembered (``ShiftEstimate.scatter``, in box heights) and the caller passes its
running mean back as ``prior_scatter``: the test then uses the larger of this frame's scatter and the usual
one. With only a handful of pairs, one frame's median absolute deviation can come out tiny by chance, and a
jittery detector would then pass for a moving camera (measured: 17-19 px jumps on a static sequence with 5 %
box jitter); the running scatter keeps such frames from counting as significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


Array = npt.NDArray[np.float64]
MIN_PAIRS = 5
MAX_PAIRS = 32  # tracks asked for their nearest detection per frame
SEARCH = 1.0  # largest centre displacement of a pair, in sizes (the larger side) of the predicted box


def _mutual_nearest(centre_p: Array, centre_d: Array) -> tuple[np.ndarray, np.ndarray]:
    """Track and detection indices of up to ``MAX_PAIRS`` pairs whose centres are each other's nearest.

    The tracks asked are spread evenly over all of them (a median needs a sample, not everyone), so the cost
    is two small (MAX_PAIRS x N) distance tables however crowded the scene is.
    """
    n_p = centre_p.shape[0]
    asked = np.arange(n_p) if n_p <= MAX_PAIRS else (np.arange(MAX_PAIRS) * (n_p - 1)) // (MAX_PAIRS - 1)
    nearest_d = _nearest(centre_p[asked], centre_d)
    mutual = _nearest(centre_d[nearest_d], centre_p) == asked
    return asked[mutual], nearest_d[mutual]


def _nearest(points: Array, candidates: Array) -> np.ndarray:
    """Index of the nearest of ``candidates`` (M, 2) for each of ``points`` (K, 2)."""
    d2 = (candidates * candidates).sum(axis=1)[None, :] - 2.0 * (points @ candidates.T)  # |p|^2 left out
    nearest: np.ndarray = d2.argmin(axis=1)
    return nearest


@dataclass(frozen=True)
class ShiftEstimate:
    """One frame's camera shift: ``shift`` (2,) pixels, zero per axis when not significant; ``scatter`` (2,)
    the pairs' robust spread per axis in box heights, or None when there were too few pairs to measure."""

    shift: Array
    scatter: Array | None


def shift_from_moves(move: Array, height: Array, significance: float,
                     prior_scatter: Array | None = None) -> ShiftEstimate:
    """The camera shift seen in the displacements ``move`` (n, 2) pixels (detection centre minus predicted
    centre) of n track/detection pairs whose boxes are ``height`` (n,) pixels tall. Per axis the median
    counts only when it exceeds ``significance`` standard errors, computed from the larger of the pairs' own
    spread and ``prior_scatter`` (2,) box heights (the running spread of earlier frames; None: this frame's
    alone). Fewer than ``MIN_PAIRS`` pairs: no shift, no scatter."""
    n = move.shape[0]
    if n < MIN_PAIRS:
        return ShiftEstimate(np.zeros(2), None)
    lo, hi = (n - 1) // 2, n // 2
    ordered = np.sort(move, axis=0)
    median = 0.5 * (ordered[lo] + ordered[hi])
    deviation = np.sort(np.abs(move - median), axis=0)
    spread = (0.5 * 1.4826) * (deviation[lo] + deviation[hi])  # median absolute deviation, as a sigma
    typical_height = max(float(np.partition(height, hi)[hi]), 1.0)
    limit = spread if prior_scatter is None else np.maximum(spread, prior_scatter * typical_height)
    # standard error of a median of Gaussian samples: 1.2533 sigma / sqrt(n)
    significant = np.abs(median) > significance * np.maximum(1.2533 * limit / math.sqrt(n), 1e-6)
    return ShiftEstimate(median * significant, spread / typical_height)


def shift_of(tracks: Array, centre_d: Array, significance: float,
             prior_scatter: Array | None = None) -> ShiftEstimate:
    """``shift_from_moves`` over the mutually nearest pairs of tracks' predicted boxes ``tracks`` (T, 4)
    ``cx, cy, w, h`` and detection centres ``centre_d`` (D, 2), at most one box size apart."""
    if tracks.shape[0] < MIN_PAIRS or centre_d.shape[0] < MIN_PAIRS:
        return ShiftEstimate(np.zeros(2), None)
    ia, ib = _mutual_nearest(tracks[:, :2], centre_d)
    move = centre_d[ib] - tracks[ia, :2]
    wh = np.maximum(tracks[ia, 2:4], 1.0)
    keep = (move * move).sum(axis=1) <= (SEARCH * wh.max(axis=1)) ** 2
    return shift_from_moves(move[keep], wh[keep, 1], significance, prior_scatter)

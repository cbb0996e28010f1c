"""Confidence thresholds that follow the detector: Otsu's split of the running score histogram.

Detectors differ in how confident they are: a threshold of 0.5 set for one is too strict or too loose for the
next. With ``TrackerConfig.adaptive_confidence_thresholds`` the tracker keeps a histogram of the detection
scores it has seen (older frames fade with a time constant of ``HISTORY_SECONDS``), splits it where Otsu's
method puts the valley between clutter and objects, and uses that split as ``high_confidence_threshold``;
the other two thresholds keep their configured position relative to it (``low`` the same fraction of it,
``new_track`` the same fraction of the way from it to 1). Until ``MIN_WEIGHT`` scores were seen, and when
the split leaves ``[LOWEST, HIGHEST]``, the configured values (or the nearest bound) are used.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

BINS = 50
HISTORY_SECONDS = 30.0
MIN_WEIGHT = 100.0
LOWEST, HIGHEST = 0.3, 0.8

Array = npt.NDArray[np.float64]


def add_scores(hist: Array, scores: Array, dt: float) -> Array:
    """New (BINS,) histogram: ``hist`` faded by ``dt`` seconds plus ``scores`` (values in [0, 1])."""
    faded = hist * math.exp(-max(dt, 0.0) / HISTORY_SECONDS)
    idx = np.clip((np.asarray(scores, np.float64) * BINS).astype(np.int64), 0, BINS - 1)
    return faded + np.bincount(idx, minlength=BINS)


def otsu_split(hist: Array) -> float | None:
    """Score in [0, 1] that maximises the between-class variance of ``hist``; None when it is too thin."""
    total = float(hist.sum())
    if total < MIN_WEIGHT:
        return None
    centres = (np.arange(BINS) + 0.5) / BINS
    w = hist / total
    w0 = np.cumsum(w)[:-1]
    m0 = np.cumsum(w * centres)[:-1]
    mean = float((w * centres).sum())
    between = (mean * w0 - m0) ** 2 / np.maximum(w0 * (1.0 - w0), 1e-12)
    if not np.isfinite(between).any() or between.max() <= 0.0:
        return None
    return float(np.argmax(between) + 1) / BINS


def thresholds(split: float | None, high: float, low: float, new: float) -> tuple[float, float, float]:
    """(high, low, new-track) thresholds for an Otsu ``split``; the configured ones when it is None."""
    if split is None:
        return high, low, new
    adapted = min(max(split, LOWEST), HIGHEST)
    low_a = low * adapted / high if high > 0 else low
    new_a = adapted + (new - high) * (1.0 - adapted) / (1.0 - high) if high < 1 else new
    return adapted, min(low_a, adapted), min(max(new_a, adapted), 1.0)

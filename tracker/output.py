"""Building the ``Tracks`` a ``Tracker.update`` returns: matched rows, plus (optionally) coasting rows.

A *matched* row copies its detection through (box, score, ``det_index``, keypoints, masks, polygons), and
carries the filter's own estimate of the box (``estimated_xyxy``: the Kalman state after this detection). A
*coasting* row (``TrackerConfig.output_unmatched_seconds`` > 0) is a confirmed track that lost its
detection a moment ago and is reported at its Kalman-predicted box, so overlays do not flicker and
counting does not drop an object for the few frames it is hidden. Coasting rows have no detection, so:

* ``state`` is ``TrackState.LOST``, ``det_index`` is ``-1`` (``Tracks.matched`` is False), ``confidence``
  is 0;
* ``keypoints`` are all zeros (visibility 0: nothing to draw), ``masks`` are all False, ``mask_polygons``
  are empty ``(0, 2)`` arrays -- each only when the input detections had that field.
"""

from __future__ import annotations

import numpy as np

from tracker import kalman
from tracker.types import Detections, Tracks

# A track coasts for at most this fraction of the time it has been observed: a track seen for 0.2 s (often a
# false positive) is not extended by 0.5 s, while a person walked along for seconds is.
COAST_AGE_FRACTION = 0.5


def coasting_rows(state: np.ndarray, first_time: np.ndarray, last_time: np.ndarray, now: float,
                  lost_state: int, limit_seconds: float) -> np.ndarray:
    """Rows of lost tracks unmatched for at most ``min(limit, COAST_AGE_FRACTION * observed time)`` s."""
    if limit_seconds <= 0.0 or state.size == 0:
        return np.zeros(0, np.int64)
    allowed = np.minimum(limit_seconds, COAST_AGE_FRACTION * (last_time - first_time))
    gap = now - last_time
    return np.flatnonzero((state == lost_state) & (gap > 0.0) & (gap <= allowed + 1e-9))


def _pad(values: np.ndarray | None, extra: int, rows: np.ndarray,
         order: np.ndarray) -> np.ndarray | None:
    """``values[rows]`` plus ``extra`` all-zero (all-False) rows of the same trailing shape, by ``order``."""
    if values is None:
        return None
    if extra == 0:
        taken: np.ndarray = values[rows[order]]
        return taken
    blank = np.zeros((extra,) + values.shape[1:], values.dtype)
    padded: np.ndarray = np.concatenate([values[rows], blank])[order]
    return padded


def _join(first: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``first`` followed by ``rest`` (no copy when ``rest`` is empty, the usual case without coasting)."""
    return first if rest.shape[0] == 0 else np.concatenate([first, rest])


def build_tracks(detections: Detections, det_rows: np.ndarray, matched_mean: np.ndarray,
                 coast_mean: np.ndarray, track_id: np.ndarray, class_id: np.ndarray, age: np.ndarray,
                 state: np.ndarray, path: np.ndarray, removed: np.ndarray) -> Tracks:
    """Assemble ``Tracks``: the first ``len(det_rows)`` rows are matched, the rest coast.

    Per-track arrays (``track_id``, ``class_id``, ``age``, ``state``, ``path``) cover matched then coasting
    rows; ``matched_mean`` / ``coast_mean`` are their Kalman states (N, 8). Rows come out by track ID.
    """
    n_coast = coast_mean.shape[0]
    coast_xyxy = kalman.state_to_xyxy(coast_mean).astype(np.float32)
    xyxy = _join(detections.xyxy[det_rows], coast_xyxy)
    estimated = _join(kalman.state_to_xyxy(matched_mean).astype(np.float32), coast_xyxy)
    conf = _join(detections.confidence[det_rows], np.zeros(n_coast, np.float32))
    det_index = _join(detections.det_index[det_rows], np.full(n_coast, -1, np.int64))
    velocity = _join(matched_mean[:, 4:6], coast_mean[:, 4:6]).astype(np.float32)
    polygons = None
    if detections.mask_polygons is not None:
        polygons = tuple(detections.mask_polygons[i] for i in det_rows) + \
            tuple(np.zeros((0, 2), np.float32) for _ in range(n_coast))
    order = np.argsort(track_id, kind="stable")
    return Tracks(
        xyxy=xyxy[order], estimated_xyxy=estimated[order], confidence=conf[order], class_id=class_id[order],
        track_id=track_id[order],
        det_index=det_index[order], velocity=velocity[order], predicted_path=path[order],
        age=age[order], state=state[order],
        keypoints=_pad(detections.keypoints, n_coast, det_rows, order),
        masks=_pad(detections.masks, n_coast, det_rows, order),
        mask_polygons=None if polygons is None else tuple(polygons[i] for i in order),
        removed_ids=np.sort(removed))

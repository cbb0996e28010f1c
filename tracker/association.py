"""Association: batched similarity matrices and a gated assignment solve.

Each stage of the tracker builds a (tracks x detections) *score* matrix (higher is better) plus a boolean
*gate* of pairs that may be matched at all, then calls ``assign``. Pairs outside the gate are never matched,
so the solver only works on plausible pairs; rows and columns with a single unambiguous candidate are
matched directly and only the ambiguous remainder goes to the Hungarian (Jonker-Volgenant) solver.
"""

from __future__ import annotations

import lap
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _pairwise(a: Array, b: Array) -> tuple[Array, Array, Array, Array]:
    """Intersection, union, and the enclosing box area of every pair of (N,4) and (M,4) corner boxes."""
    a = a[:, None, :]
    b = b[None, :, :]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return inter, union, iw, ih


def iou(a: Array, b: Array) -> Array:
    """(N, M) intersection over union of (N, 4) and (M, 4) ``x1, y1, x2, y2`` boxes (0 for empty boxes)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    inter, union, _, _ = _pairwise(a, b)
    return inter / np.maximum(union, 1e-9)


def giou(a: Array, b: Array) -> Array:
    """(N, M) generalised IoU in [-1, 1]: IoU minus the share of the enclosing box that neither covers.

    Unlike IoU it keeps ranking pairs that do not overlap: the further apart, the more negative.
    """
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    inter, union, _, _ = _pairwise(a, b)
    aa, bb = a[:, None, :], b[None, :, :]
    ew = np.maximum(aa[..., 2], bb[..., 2]) - np.minimum(aa[..., 0], bb[..., 0])
    eh = np.maximum(aa[..., 3], bb[..., 3]) - np.minimum(aa[..., 1], bb[..., 1])
    enclose = np.maximum(ew * eh, 1e-9)
    union = np.maximum(union, 1e-9)
    return inter / union - (enclose - union) / enclose


def direction_consistency(track_origin: Array, track_direction: Array, has_direction: npt.NDArray[np.bool_],
                          det_centres: Array) -> Array:
    """(N, M) OC-SORT velocity-direction agreement in [-0.5, 0.5].

    ``track_origin`` (N, 2) is an earlier observed centre of each track, ``track_direction`` (N, 2) the unit
    direction the track moved since then. For each detection, the direction from the origin to the detection
    centre is compared with it: 0.5 = same direction, -0.5 = opposite. Tracks without a direction score 0.
    """
    delta = det_centres[None, :, :] - track_origin[:, None, :]
    norm = np.sqrt((delta * delta).sum(axis=2)) + 1e-6
    cos = (delta * track_direction[:, None, :]).sum(axis=2) / norm
    angle = np.arccos(np.clip(cos, -1.0, 1.0))
    score = (np.pi / 2.0 - angle) / np.pi
    return np.where(has_direction[:, None], score, 0.0)


def assign(score: Array, gate: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Maximum-score one-to-one matching restricted to ``gate``. Returns matched (rows, cols) index arrays.

    Every gated pair is preferred to leaving both sides unmatched; among matchings the total score is
    maximal. Rows and columns whose only candidate is each other are matched without the solver.
    """
    n, m = gate.shape
    empty = np.zeros(0, np.int64)
    if n == 0 or m == 0 or not gate.any():
        return empty, empty
    row_deg = gate.sum(axis=1)
    col_deg = gate.sum(axis=0)
    best_col = gate.argmax(axis=1)
    trivial = (row_deg == 1) & (col_deg[best_col] == 1)
    rows0 = np.flatnonzero(trivial)
    cols0 = best_col[rows0]
    rest_rows = np.flatnonzero((row_deg > 0) & ~trivial)
    if rest_rows.size == 0:
        return rows0.astype(np.int64), cols0.astype(np.int64)
    col_open = col_deg > 0
    col_open[cols0] = False
    rest_cols = np.flatnonzero(col_open)
    sub_gate = gate[np.ix_(rest_rows, rest_cols)]
    sub_score = score[np.ix_(rest_rows, rest_cols)]
    rows1, cols1 = _solve(sub_score, sub_gate)
    rows = np.concatenate([rows0, rest_rows[rows1]]).astype(np.int64)
    cols = np.concatenate([cols0, rest_cols[cols1]]).astype(np.int64)
    return rows, cols


def _solve(score: Array, gate: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Jonker-Volgenant on ``cost = top - score`` (positive); gated-out pairs cost more than the limit."""
    top = float(score[gate].max()) + 1.0
    cost = np.where(gate, top - score, 1e9)
    limit = float(cost[gate].max()) + 1.0
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    rows = np.flatnonzero(x >= 0)
    cols = x[rows]
    ok = gate[rows, cols]
    return rows[ok].astype(np.int64), cols[ok].astype(np.int64)

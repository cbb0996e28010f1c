"""Association: sparse candidate pairs, per-pair similarities, and a gated assignment solve.

A stage never builds a dense (tracks x detections) matrix. ``candidate_pairs`` finds the pairs whose boxes
are close enough to pass a gate (sort-and-sweep on x, then a y check), the similarity is computed for those
pairs only, and ``assign`` matches them: pairs whose row and column have no other candidate are matched
directly; only the ambiguous remainder goes to the Jonker-Volgenant solver (``lap.lapjv``). Cost therefore
grows with the number of plausible pairs, about linearly in the number of objects.
"""

from __future__ import annotations

import lap
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_EMPTY = np.zeros(0, np.int64)


def candidate_pairs(a: Array, b: Array, expand: float = 0.0) -> tuple[IntArray, IntArray]:
    """Index pairs ``(i, j)`` where box ``a[i]`` overlaps box ``b[j]`` once ``a[i]`` is widened.

    ``a`` (N, 4) and ``b`` (M, 4) are ``x1, y1, x2, y2`` boxes. Each ``a[i]`` is grown on every side by
    ``expand`` times (its size + the largest size in ``b``), so pairs separated by a gap of up to that much
    are included (``expand=0``: touching or overlapping boxes only). Returns int64 arrays of equal length.
    """
    if a.shape[0] == 0 or b.shape[0] == 0:
        return _EMPTY, _EMPTY
    bw = b[:, 2] - b[:, 0]
    bw_max = float(bw.max())
    bounds = a.copy()  # x1, y1, x2, y2 of each widened a-box
    if expand:
        mx = expand * (a[:, 2] - a[:, 0] + bw_max)
        my = expand * (a[:, 3] - a[:, 1] + float((b[:, 3] - b[:, 1]).max()))
        bounds[:, 0] -= mx
        bounds[:, 2] += mx
        bounds[:, 1] -= my
        bounds[:, 3] += my
    order = np.argsort(b[:, 0], kind="stable")
    bx1 = b[order, 0]
    lo = np.searchsorted(bx1, bounds[:, 0] - bw_max, side="left")
    hi = np.searchsorted(bx1, bounds[:, 2], side="right")
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    if total == 0:
        return _EMPTY, _EMPTY
    ia = np.repeat(np.arange(a.shape[0]), counts)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    ib = order[starts + np.arange(total)]
    pa, pb = bounds[ia], b[ib]  # one gather each instead of one per comparison
    keep = (pb[:, 2] >= pa[:, 0]) & (pb[:, 0] <= pa[:, 2]) & (pb[:, 3] >= pa[:, 1]) & (pb[:, 1] <= pa[:, 3])
    return ia[keep].astype(np.int64), ib[keep].astype(np.int64)


def _pair_parts(a: Array, b: Array) -> tuple[Array, Array]:
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter, np.maximum(union, 1e-9)


def pair_iou(a: Array, b: Array) -> Array:
    """(P,) intersection over union of row-aligned (P, 4) box arrays ``a[k]`` vs ``b[k]``."""
    inter, union = _pair_parts(a, b)
    return inter / union


def pair_giou(a: Array, b: Array) -> Array:
    """(P,) generalised IoU in [-1, 1] of row-aligned boxes: IoU minus the share of the enclosing box
    covered by neither. Unlike IoU it keeps ranking boxes that no longer overlap (more negative = further)."""
    inter, union = _pair_parts(a, b)
    ew = np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])
    eh = np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1])
    enclose = np.maximum(ew * eh, 1e-9)
    giou: np.ndarray = inter / union - (enclose - union) / enclose
    return giou


def iou_matrix(a: Array, b: Array) -> Array:
    """Dense (N, M) IoU of (N, 4) and (M, 4) boxes; for small sets and tests."""
    ia, ib = np.meshgrid(np.arange(a.shape[0]), np.arange(b.shape[0]), indexing="ij")
    return pair_iou(a[ia.ravel()], b[ib.ravel()]).reshape(a.shape[0], b.shape[0])


def pair_direction(origin: Array, direction: Array, has_direction: npt.NDArray[np.bool_],
                   det_centres: Array) -> Array:
    """(P,) OC-SORT velocity-direction agreement in [-0.5, 0.5] for row-aligned pairs.

    ``origin`` (P, 2) is an earlier observed centre of the track, ``direction`` (P, 2) the unit direction
    it moved since then. The direction from the origin to the detection centre is compared with it:
    0.5 = same direction, -0.5 = opposite. Pairs whose track has no direction yet score 0.
    """
    delta = det_centres - origin
    norm = np.sqrt((delta * delta).sum(axis=1)) + 1e-6
    cos = (delta * direction).sum(axis=1) / norm
    score = (np.pi / 2.0 - np.arccos(np.clip(cos, -1.0, 1.0))) / np.pi
    return np.where(has_direction, score, 0.0)


def assign(n_rows: int, n_cols: int, rows: IntArray, cols: IntArray,
           score: Array) -> tuple[IntArray, IntArray]:
    """Maximum-score one-to-one matching over the candidate pairs ``(rows[k], cols[k])`` with ``score[k]``.

    Pairs not listed are never matched; every listed pair is preferred to leaving both sides unmatched, and
    among such matchings the total score is maximal. Returns matched (rows, cols).
    """
    if rows.size == 0:
        return _EMPTY, _EMPTY
    deg_r = np.bincount(rows, minlength=n_rows)
    deg_c = np.bincount(cols, minlength=n_cols)
    trivial = (deg_r[rows] == 1) & (deg_c[cols] == 1)
    if trivial.all():
        return rows, cols
    rest = ~trivial
    ur, ri = np.unique(rows[rest], return_inverse=True)
    uc, ci = np.unique(cols[rest], return_inverse=True)
    s = score[rest]
    top = float(s.max()) + 1.0
    cost = np.full((ur.size, uc.size), 1e9)
    cost[ri, ci] = top - s
    limit = float((top - s).max()) + 1.0
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    r = np.flatnonzero(x >= 0)
    c = x[r]
    ok = cost[r, c] < limit
    return (np.concatenate([rows[trivial], ur[r[ok]]]).astype(np.int64),
            np.concatenate([cols[trivial], uc[c[ok]]]).astype(np.int64))

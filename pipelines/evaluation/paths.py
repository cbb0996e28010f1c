"""How good are the predicted paths? Displacement errors against where the ground-truth object went.

Every reported track row that overlaps a ground-truth pedestrian (IoU >= 0.5, one-to-one per frame) is a
sample. Its predicted centre path (``Tracks.predicted_path``) is compared with that person's ground-truth
box centre at the same times ahead (linearly interpolated between gt frames; a sample counts for a horizon
only when the person is annotated through it):

* ADE@T: mean distance over the path points up to T seconds ahead; FDE@T: distance at T.
* both in pixels and in box heights (divided by the person's gt box height now, so near and far people
  weigh alike);
* next to the *constant-position* baseline: the object stays at the centre of the box reported now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.errors import UserError

HORIZONS = (0.5, 1.0)  # seconds ahead
MIN_IOU = 0.5


@dataclass(frozen=True)
class PathRecord:
    """Reported rows of one tracker over one sequence, with their predicted paths.

    ``frame`` int (M,), ``tlwh`` float (M, 4) reported boxes, ``path`` float (M, K, 2) predicted centres at
    ``times`` (K,) seconds ahead.
    """

    frame: np.ndarray
    tlwh: np.ndarray
    path: np.ndarray
    times: np.ndarray


@dataclass(frozen=True)
class PathError:
    """Mean displacement errors at one horizon; ``base_*`` are the constant-position baseline's."""

    horizon: float
    samples: int
    ade_px: float
    fde_px: float
    ade_h: float
    fde_h: float
    base_ade_px: float
    base_fde_px: float
    base_ade_h: float
    base_fde_h: float


def read_gt_people(path: Path) -> np.ndarray:
    """``frame, id, x, y, w, h`` (float (G, 6)) of gt rows that are evaluated pedestrians (flag 1, class 1).
    A file that cannot be read or holds a line of other than comma-separated numbers raises UserError naming it."""
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError:
        raise UserError(f"{path}: {_bad_line(path)}") from None
    if table.size == 0:
        return np.zeros((0, 6))
    keep = np.ones(len(table), bool)
    if table.shape[1] >= 7:
        keep &= table[:, 6] == 1
    if table.shape[1] >= 8:
        keep &= table[:, 7] == 1
    return table[keep, :6]


def _bad_line(path: Path) -> str:
    """What is wrong with a gt file ``np.loadtxt`` refused: its first line that is not comma-separated numbers,
    or lines of different lengths."""
    lines = [(i, line) for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if line.strip()]
    for number, line in lines:
        try:
            [float(v) for v in line.split(",")]
        except ValueError:
            return f"line {number} is not comma-separated numbers: {line[:60]!r}"
    return "its lines have different numbers of columns"


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense IoU of (N, 4) and (M, 4) tlwh boxes."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    iou: np.ndarray = inter / np.maximum(union, 1e-9)
    return iou


def _match(rec: PathRecord, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(record rows, gt rows) matched one-to-one per frame at IoU >= MIN_IOU."""
    from scipy.optimize import linear_sum_assignment
    rr, gg = [], []
    rec_bounds = np.searchsorted(rec.frame, np.arange(0, int(max(rec.frame.max(), 0)) + 2))
    gt_frames = gt[:, 0].astype(np.int64)
    order = np.argsort(gt_frames, kind="stable")
    gt_bounds = np.searchsorted(gt_frames[order], np.arange(0, int(max(rec.frame.max(), 0)) + 2))
    for f in np.unique(rec.frame):
        r = np.arange(rec_bounds[f], rec_bounds[f + 1])
        g = order[gt_bounds[f]:gt_bounds[f + 1]]
        if r.size == 0 or g.size == 0:
            continue
        iou = _iou(rec.tlwh[r], gt[g, 2:6])
        a, b = linear_sum_assignment(-iou)
        ok = iou[a, b] >= MIN_IOU
        rr.append(r[a[ok]])
        gg.append(g[b[ok]])
    if not rr:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rr), np.concatenate(gg)


def _along(path: np.ndarray, times: np.ndarray, t: float) -> np.ndarray:
    """(M, 2) points of (M, K, 2) paths at ``t`` seconds, linear between path points."""
    k = int(np.searchsorted(times, t - 1e-9))
    if k < len(times) and abs(times[k] - t) < 1e-9:
        return path[:, k]
    w = (t - times[k - 1]) / (times[k] - times[k - 1])
    point: np.ndarray = path[:, k - 1] + w * (path[:, k] - path[:, k - 1])
    return point


def path_errors(rec: PathRecord, gt: np.ndarray, frame_rate: float,
                horizons: Sequence[float] = HORIZONS) -> list[PathError]:
    """Displacement errors of ``rec``'s paths against ``gt`` (``read_gt_people``) at each horizon (s).

    Horizons beyond the paths' last point are skipped.
    """
    if len(rec.frame) == 0 or len(gt) == 0 or rec.times.size == 0:
        return []
    rows, grows = _match(rec, gt)
    ids, id_idx = np.unique(gt[:, 1].astype(np.int64), return_inverse=True)
    last_frame = int(gt[:, 0].max()) + 2
    centre = np.full((ids.size, last_frame + 1, 2), np.nan)
    gf = gt[:, 0].astype(np.int64)
    centre[id_idx, gf] = gt[:, 2:4] + 0.5 * gt[:, 4:6]
    g_id, g_frame = id_idx[grows], gf[grows]
    height = gt[grows, 5]
    now = rec.tlwh[rows, :2] + 0.5 * rec.tlwh[rows, 2:]
    out = []
    for horizon in horizons:
        if horizon > rec.times[-1] + 1e-9:
            continue
        ts = rec.times[rec.times <= horizon + 1e-9]
        err, base = [], []
        for t in ts:
            ft = g_frame + t * frame_rate
            lo = np.floor(ft + 1e-9).astype(np.int64)
            w = (ft - lo)[:, None]
            lo_c = np.clip(lo, 0, last_frame)
            hi_c = np.clip(lo + 1, 0, last_frame)
            hi_val = np.where(w > 1e-9, centre[g_id, hi_c], 0.0)
            truth = centre[g_id, lo_c] * (1 - w) + hi_val * w
            truth[(lo > last_frame)] = np.nan
            pred = _along(rec.path[rows], rec.times, float(t))
            err.append(np.hypot(*(pred - truth).T))
            base.append(np.hypot(*(now - truth).T))
        e, b = np.array(err), np.array(base)  # (T, S)
        valid = np.isfinite(e).all(axis=0)
        if not valid.any():
            continue
        e, b, h = e[:, valid], b[:, valid], height[valid]
        out.append(PathError(
            horizon, int(valid.sum()), float(e.mean()), float(e[-1].mean()), float((e / h).mean()),
            float((e[-1] / h).mean()), float(b.mean()), float(b[-1].mean()), float((b / h).mean()),
            float((b[-1] / h).mean())))
    return out


def combine(errors: Mapping[str, Sequence[PathError]]) -> list[PathError]:
    """Sample-weighted mean over sequences, per horizon."""
    by_h: dict[float, list[PathError]] = {}
    for per_seq in errors.values():
        for e in per_seq:
            by_h.setdefault(e.horizon, []).append(e)
    out = []
    for horizon, items in sorted(by_h.items()):
        n = np.array([e.samples for e in items], float)
        attrs = ("ade_px", "fde_px", "ade_h", "fde_h", "base_ade_px", "base_fde_px", "base_ade_h", "base_fde_h")
        values = np.array([[getattr(e, a) for a in attrs] for e in items])  # (sequences, attrs)
        out.append(PathError(horizon, int(n.sum()), *(float(v) for v in n @ values / n.sum())))
    return out

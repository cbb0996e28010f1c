"""Candidate pairs find every gated pair; the sparse assignment equals a dense Hungarian solve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from tracker.association import assign, candidate_pairs, iou_matrix, pair_giou


def _boxes(rng: np.random.Generator, n: int, spread: float = 400) -> np.ndarray:
    xy = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    return np.column_stack([xy, xy + wh])


@pytest.mark.parametrize("seed", range(5))
def test_candidate_pairs_are_exactly_the_overlapping_pairs(seed):
    rng = np.random.default_rng(seed)
    a, b = _boxes(rng, 60), _boxes(rng, 70)
    ia, ib = candidate_pairs(a, b)
    found = set(zip(ia.tolist(), ib.tolist()))
    expected = {tuple(p) for p in np.argwhere(iou_matrix(a, b) > 0).tolist()}
    assert expected <= found
    assert all(iou_matrix(a[[i]], b[[j]])[0, 0] > 0 or _touch(a[i], b[j]) for i, j in found)


def _touch(p: np.ndarray, q: np.ndarray) -> bool:
    return bool(p[2] >= q[0] and q[2] >= p[0] and p[3] >= q[1] and q[3] >= p[1])


def test_widened_candidates_reach_every_pair_above_a_negative_giou_gate():
    rng = np.random.default_rng(7)
    a, b = _boxes(rng, 50), _boxes(rng, 50)
    gate = -0.3
    ia, ib = candidate_pairs(a, b, expand=-gate / (1 + gate))
    ii, jj = np.meshgrid(np.arange(50), np.arange(50), indexing="ij")
    g = pair_giou(a[ii.ravel()], b[jj.ravel()]).reshape(50, 50)
    assert {tuple(p) for p in np.argwhere(g >= gate).tolist()} <= set(zip(ia.tolist(), ib.tolist()))


def test_giou_ranks_non_overlapping_boxes_by_distance():
    a = np.array([[0.0, 0, 10, 10]] * 3)
    b = np.array([[12.0, 0, 22, 10], [30, 0, 40, 10], [5, 0, 15, 10]])
    g = pair_giou(a, b)
    assert g[2] > 0 > g[0] > g[1]


@pytest.mark.parametrize("seed", range(8))
def test_sparse_assignment_matches_dense_hungarian(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 25, 2)
    score = rng.uniform(0, 1, (n, m))
    gate = rng.random((n, m)) < 0.25
    rows, cols = np.nonzero(gate)
    r, c = assign(int(n), int(m), rows.astype(np.int64), cols.astype(np.int64), score[rows, cols])
    assert len(set(r.tolist())) == r.size and len(set(c.tolist())) == c.size
    assert gate[r, c].all()
    # reference: maximise (#matches, total score) over gated pairs with a dense solve
    big = 1000.0
    dense = np.where(gate, big + score, 0.0)
    rr, cc = linear_sum_assignment(-dense)
    ok = gate[rr, cc]
    assert r.size == ok.sum()
    assert score[r, c].sum() == pytest.approx(score[rr[ok], cc[ok]].sum())

"""Leave-one-sequence-out cross-validation of trackstream configs, beside fixed peers.

With S scored sequences there are S folds. In each, every candidate config is judged on the other S - 1
sequences (mean of ``select_by`` over those sequences and over every condition, so one config must serve all
frame rates and noise levels) and the best one is scored on the held-out sequence. The figure of merit is
the *held-out fold mean*: the mean over folds of the held-out sequence's score. A tracker with fixed settings
(a peer, or one trackstream config) chooses nothing, so its held-out fold mean is simply the mean of its
per-sequence scores.

With detection schedules among the candidates (``--schedule-candidate``), ``max_detected`` is the budget: a fold
chooses only among candidates whose mean share of frames detected over its training sequences is within it
(the one that detected least when none is), so a setting that buys its score with more detector runs than the
budget allows is never chosen. The table's ``detected`` metric (%) holds each run's share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.errors import UserError
from pipelines.evaluation.counting import LineScore, count_metrics
from pipelines.evaluation.paths import PathError
from pipelines.evaluation.scoring import COMBINED, SeqScore

Key = tuple[str, str, str]  # (tracker label, condition, sequence)
SCORE_METRICS = {"HOTA": "hota", "DetA": "deta", "AssA": "assa", "MOTA": "mota", "IDF1": "idf1", "IDSW": "idsw"}
LOWER_IS_BETTER = ("IDSW", "ADE", "FDE", "CountErr")
SELECT_CHOICES = ("HOTA", "IDF1", "MOTA", "FDE1.0h", "CountErr")


def path_metrics(errors: Sequence[PathError]) -> dict[str, float]:
    """``ADE0.5px``, ``FDE1.0h``, ... and the constant-position baseline's (``base_`` prefix)."""
    out: dict[str, float] = {}
    for e in errors:
        for prefix, ade_px, fde_px, ade_h, fde_h in (
                ("", e.ade_px, e.fde_px, e.ade_h, e.fde_h),
                ("base_", e.base_ade_px, e.base_fde_px, e.base_ade_h, e.base_fde_h)):
            out[f"{prefix}ADE{e.horizon:.1f}px"] = ade_px
            out[f"{prefix}FDE{e.horizon:.1f}px"] = fde_px
            out[f"{prefix}ADE{e.horizon:.1f}h"] = ade_h
            out[f"{prefix}FDE{e.horizon:.1f}h"] = fde_h
    return out


def flatten(scores: Mapping[str, Mapping[str, Mapping[str, SeqScore]]],
            paths: Mapping[str, Mapping[str, Mapping[str, Sequence[PathError]]]],
            counts: Mapping[str, Mapping[str, Mapping[str, Sequence[LineScore]]]] | None = None,
            shares: Mapping[Key, float] | None = None) -> dict[Key, dict[str, float]]:
    """Per (tracker, condition, sequence): every metric as a float. COMBINED rows are left out. ``counts``
    (``--count-lines``) adds ``CountErr``/``CountP``/``CountR`` (``counting.count_metrics``); ``shares`` (0..1
    by key) adds ``detected`` (% of frames fed) to the scored rows."""
    table: dict[Key, dict[str, float]] = {}
    for cond, per_label in scores.items():
        for label, per_seq in per_label.items():
            for seq, s in per_seq.items():
                if seq != COMBINED:
                    table[(label, cond, seq)] = {k: float(getattr(s, a)) for k, a in SCORE_METRICS.items()}
    for cond, per_label_p in paths.items():
        for label, per_seq_p in per_label_p.items():
            for seq, errs in per_seq_p.items():
                table.setdefault((label, cond, seq), {}).update(path_metrics(errs))
    for cond, per_label_c in (counts or {}).items():
        for label, per_seq_c in per_label_c.items():
            for seq, rows in per_seq_c.items():
                table.setdefault((label, cond, seq), {}).update(count_metrics(rows))
    for key, share in (shares or {}).items():
        if key in table:
            table[key]["detected"] = 100.0 * share
    return table


@dataclass(frozen=True)
class Fold:
    """One fold: the held-out sequence, the candidate chosen on the others, its held-out metrics per condition."""

    held_out: str
    chosen: str
    scores: dict[str, dict[str, float]]


@dataclass(frozen=True)
class CrossValidation:
    """``fixed[label][condition][metric]``: held-out fold mean of each tracker with fixed settings;
    ``per_seq[label][condition][seq][metric]`` the per-fold values behind it; ``folds`` and ``selected``
    (held-out fold mean per condition) for the candidate chosen in each fold (empty without candidates)."""

    conditions: list[str]
    seqs: list[str]
    select_by: str
    fixed: dict[str, dict[str, dict[str, float]]]
    per_seq: dict[str, dict[str, dict[str, dict[str, float]]]]
    folds: list[Fold]
    selected: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {"conditions": self.conditions, "seqs": self.seqs, "select_by": self.select_by,
                "fixed": self.fixed, "per_seq": self.per_seq,
                "folds": [{"held_out": f.held_out, "chosen": f.chosen, "scores": f.scores} for f in self.folds],
                "selected": self.selected}


def _mean(values: Sequence[float]) -> float:
    """The mean of the finite ``values`` (NaN: a metric a sequence has none of, such as ``CountErr`` where
    nobody crosses, is left out, as in the printed tables); NaN when none is."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = set(rows[0]).intersection(*rows[1:]) if rows else set()
    return {k: _mean([r[k] for r in rows]) for k in sorted(keys)}


def _objective(table: Mapping[Key, Mapping[str, float]], label: str, conditions: Sequence[str],
               seqs: Sequence[str], metric: str) -> float:
    rows = [table.get((label, c, s), {}) for c in conditions for s in seqs]
    if any(metric not in row for row in rows):
        return -np.inf                           # not scored on every training sequence
    value = _mean([row[metric] for row in rows])
    if not np.isfinite(value):
        return -np.inf
    return -value if metric.startswith(LOWER_IS_BETTER) else value


def _choose(table: Mapping[Key, Mapping[str, float]], candidates: Sequence[str], conditions: Sequence[str],
            train: Sequence[str], select_by: str, max_detected: float | None) -> str:
    """The best candidate on ``train`` by ``select_by`` among those within the detection budget (0..1)."""
    eligible = list(candidates)
    if max_detected is not None:
        def share(c: str) -> float:
            values = [table.get((c, k, s), {}).get("detected", 100.0) for k in conditions for s in train]
            return float(np.mean(values)) / 100.0
        eligible = [c for c in candidates if share(c) <= max_detected + 1e-9] or [min(candidates, key=share)]
    return max(eligible, key=lambda c: _objective(table, c, conditions, train, select_by))


def cross_validate(table: Mapping[Key, Mapping[str, float]], candidates: Sequence[str],
                   conditions: Sequence[str], seqs: Sequence[str], select_by: str = "HOTA",
                   max_detected: float | None = None) -> CrossValidation:
    """Leave-one-sequence-out over ``seqs``; see the module docstring. Needs at least two scored sequences.
    ``max_detected`` (0..1, None: no budget) bounds the share of frames a chosen candidate may detect."""
    if len(seqs) < 2:
        raise UserError(f"--cross-validate needs at least 2 sequences with gt/gt.txt, got {len(seqs)}")
    labels = sorted({k[0] for k in table}, key=lambda x: (x.count("+"), x))
    fixed: dict[str, dict[str, dict[str, float]]] = {}
    per_seq: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for label in labels:
        for cond in conditions:
            rows = {s: table[(label, cond, s)] for s in seqs if (label, cond, s) in table}
            if len(rows) == len(seqs):
                per_seq.setdefault(label, {})[cond] = {s: dict(r) for s, r in rows.items()}
                fixed.setdefault(label, {})[cond] = _mean_metrics(list(rows.values()))
    folds: list[Fold] = []
    for held in seqs if candidates else []:
        train = [s for s in seqs if s != held]
        chosen = _choose(table, candidates, conditions, train, select_by, max_detected)
        folds.append(Fold(held, chosen, {c: dict(table[(chosen, c, held)]) for c in conditions}))
    selected = {c: _mean_metrics([f.scores[c] for f in folds]) for c in conditions} if folds else {}
    return CrossValidation(list(conditions), list(seqs), select_by, fixed, per_seq, folds, selected)

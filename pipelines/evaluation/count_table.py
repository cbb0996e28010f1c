"""Plain-text tables of counting accuracy (``--count-lines``) and predicted crossings (``--predict-horizon``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipelines.evaluation.counting import LINEZONE, LineScore, count_metrics
from pipelines.evaluation.crossval import CrossValidation
from pipelines.evaluation.forecast_eval import pooled
from pipelines.evaluation.runner import EvalReport


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.1f}"


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([title, fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def format_lines(report: EvalReport, condition: str, labels: Sequence[str]) -> str:
    """Per sequence, line and direction for each of ``labels``: true count, the tracker's count, error,
    crossing precision and recall (%)."""
    per_label = report.counts_by_condition.get(condition, {})
    rows = []
    for label in labels:
        for seq, scores in per_label.get(label, {}).items():
            rows += [[label, seq, s.line, s.direction, str(s.true), str(s.found), f"{s.error:+d}",
                      _pct(s.precision), _pct(s.recall)] for s in scores]
    if not rows:
        return ""
    return _table(f"line counts [{condition}] (our counting rule; P/R: crossings matched within 1 s and one box "
                  "height of a ground-truth crossing)",
                  ["tracker", "sequence", "line", "direction", "true", "count", "error", "P %", "R %"], rows, 4)


def format_count_totals(report: EvalReport, condition: str) -> str:
    """Per tracker (and ``+linezone`` rule): per sequence and over all sequences, true and counted crossings,
    total absolute count error (% of true; ``-`` and left out of the mean over sequences where nobody
    crosses), crossing precision and recall."""
    per_label = report.counts_by_condition.get(condition, {})
    rows = []
    for label, per_seq in per_label.items():
        everything: list[LineScore] = []
        errs = []
        for seq, scores in per_seq.items():
            m = count_metrics(scores)
            if m["CountTrue"] > 0:        # a sequence nobody crosses has no error % to average
                errs.append(m["CountErr"])
            everything += scores
            rows.append(_total_row(label, seq, scores, m))
        rows.append(_total_row(label, "ALL (pooled)", everything, count_metrics(everything)))
        rows.append([label, "mean over sequences", "", "", "", _pct(float(np.mean(errs)) if errs else float("nan")),
                     "", ""])
    if not rows:
        return ""
    return _table(f"counting accuracy [{condition}] ('{LINEZONE}': supervision's LineZone rule on the same tracks)",
                  ["tracker", "sequence", "true", "count", "|error|", "error %", "P %", "R %"], rows, 2)


def _total_row(label: str, seq: str, scores: Sequence[LineScore], m: Mapping[str, float]) -> list[str]:
    return [label, seq, str(sum(s.true for s in scores)), str(sum(s.found for s in scores)),
            str(sum(abs(s.error) for s in scores)), _pct(m["CountErr"] if m["CountTrue"] > 0 else float("nan")),
            _pct(m["CountP"]), _pct(m["CountR"])]


def format_count_cv(cv: CrossValidation) -> str:
    """Held-out fold mean of the count error, precision and recall per condition, every tracker and rule."""
    keys = ("CountErr", "CountP", "CountR")
    rows = []
    for label, per_cond in cv.fixed.items():
        if any("CountErr" in m for m in per_cond.values()):
            rows.append([label] + [_pct(per_cond.get(c, {}).get(k, float("nan"))) for c in cv.conditions for k in keys])
    if cv.folds and any("CountErr" in m for m in cv.selected.values()):
        rows.append([f"trackstream (chosen by {cv.select_by} per fold)"] +
                    [_pct(cv.selected[c].get(k, float("nan"))) for c in cv.conditions for k in keys])
    if not rows:
        return ""
    header = ["tracker"] + [f"{c} {k}" for c in cv.conditions for k in ("error %", "P %", "R %")]
    return _table(f"counting, cross-validated: held-out fold mean over {len(cv.seqs)} sequences", header, rows)


def format_predictions(report: EvalReport) -> str:
    """Predicted crossings per condition and sequence, and pooled: precision, recall, median lead."""
    rows = []
    for cond, per_seq in report.predictions_by_condition.items():
        for seq, p in [*per_seq.items(), ("ALL (pooled)", pooled(list(per_seq.values())))]:
            rows.append([cond, seq, f"{p.horizon:g} s", f"{p.min_probability:g}", str(p.predictions),
                         str(p.true_predictions), str(p.late), str(p.cancelled), str(p.gt_crossings),
                         str(p.warned_crossings),
                         _pct(p.precision), _pct(p.recall),
                         "-" if not np.isfinite(p.median_lead) else f"{p.median_lead:.2f}"])
    if not rows:
        return ""
    return _table("predicted crossings (trackstream; true: the person crosses that line that way within the "
                  "horizon; late: crosses it, but after the horizon)",
                  ["condition", "sequence", "horizon", "min p", "predicted", "true", "late", "cancelled",
                   "gt crossings", "warned", "P %", "R %", "median lead s"], rows, 2)

"""Plain-text tables of ``trackstream eval`` results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipelines.evaluation.crossval import CrossValidation
from pipelines.evaluation.paths import PathError, combine
from pipelines.evaluation.runner import EvalReport
from pipelines.evaluation.scoring import COMBINED, SeqScore

_HEADER = ("tracker", "sequence", "detected %", "HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN", "IDs",
           "GT IDs", "cpu us/frame")


def _fmt_row(cells: tuple[str, ...], widths: list[int]) -> str:
    left = cells[:2]
    right = cells[2:]
    return "  ".join([*(c.ljust(w) for c, w in zip(left, widths)),
                      *(c.rjust(w) for c, w in zip(right, widths[2:]))]).rstrip()


def format_report(report: EvalReport, condition: str | None = None) -> str:
    """One table for ``condition`` (default: the first): a row per tracker variant and sequence, then its
    COMBINED row; update() time per frame."""
    if condition is None:
        condition = next(iter(report.by_condition), "stride1")
    scores: Mapping[str, Mapping[str, SeqScore]] = report.by_condition.get(condition, report.scores)
    runs = [r for r in report.runs if r.condition == condition]
    timing: dict[tuple[str, str], float] = {(r.tracker, r.seq): r.us_per_frame for r in runs}
    share: dict[tuple[str, str], float] = {(r.tracker, r.seq): r.detected_share for r in runs}
    total: dict[str, tuple[float, int]] = {}
    fed: dict[str, float] = {}
    for r in runs:
        secs, frames = total.get(r.tracker, (0.0, 0))
        total[r.tracker] = (secs + r.seconds, frames + r.frames)
        fed[r.tracker] = fed.get(r.tracker, 0.0) + r.detected_share * r.frames
    rows: list[tuple[str, ...]] = []
    for label, per_seq in scores.items():
        base = label.split("+", 1)[0]
        for seq in [s for s in per_seq if s != COMBINED] + [COMBINED]:
            if seq not in per_seq:
                continue
            s = per_seq[seq]
            if seq == COMBINED:
                secs, frames = total.get(base, (0.0, 0))
                us = 1e6 * secs / max(frames, 1)
                detected = fed.get(base, float("nan")) / max(frames, 1)
            else:
                us = timing.get((base, seq), float("nan"))
                detected = share.get((base, seq), float("nan"))
            rows.append((label, seq, f"{100 * detected:.0f}", f"{s.hota:.1f}", f"{s.deta:.1f}", f"{s.assa:.1f}",
                         f"{s.mota:.1f}",
                         f"{s.idf1:.1f}", str(s.idsw), str(s.fp), str(s.fn), str(s.pred_ids), str(s.gt_ids),
                         "-" if "+" in label else f"{us:.0f}"))
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]
    lines = [_fmt_row(_HEADER, widths), _fmt_row(tuple("-" * w for w in widths), widths)]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        lines.append(_fmt_row(row, widths))
        previous = row[0]
    for seq in report.unscored:
        speeds = ", ".join(f"{r.tracker} {r.us_per_frame:.0f} cpu us/frame"
                           for r in runs if r.seq == seq)
        lines.append(f"{seq}: no gt/gt.txt, tracked but not scored ({speeds})")
    lines.append("")
    lines.append("detected % = share of frames whose detections the tracker was fed (--schedule; every frame "
                 "is scored); HOTA/DetA/AssA/MOTA/IDF1 in %; IDSW = identity switches; IDs = predicted track "
                 "ids; cpu us/frame = CPU time inside the tracker's update() per frame.")
    return "\n".join(lines)


def _cells(metrics: Mapping[str, float], keys: tuple[str, ...]) -> list[str]:
    return [f"{metrics[k]:.1f}" if k in metrics else "-" for k in keys]


def format_cv(cv: CrossValidation) -> str:
    """Held-out fold mean of HOTA/IDF1/MOTA per condition for every tracker, the folds' choices, and per-fold
    differences between trackstream and the best peer."""
    keys: tuple[str, ...] = ("HOTA", "IDF1", "MOTA")
    scheduled = any(m.get("detected", 100.0) < 100.0 - 1e-9 for per_cond in cv.fixed.values()
                    for m in per_cond.values())
    if scheduled:  # a detection schedule: the share of frames detected beside the scores
        keys = ("detected", *keys)
    header = ["tracker"] + [f"{c} {k}" for c in cv.conditions for k in keys]
    rows = []
    for label, per_cond in cv.fixed.items():
        if not any(k in m for m in per_cond.values() for k in keys):
            continue                 # a counting rule's row (+linezone): format_count_cv shows it
        rows.append([label] + [x for c in cv.conditions for x in _cells(per_cond.get(c, {}), keys)])
    if cv.folds:
        rows.append([f"trackstream (chosen by {cv.select_by} per fold)"] +
                    [x for c in cv.conditions for x in _cells(cv.selected[c], keys)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [(f"cross-validated: leave one sequence out over {len(cv.seqs)} sequences; "
              "held-out fold mean (%)" + ("; detected = share of frames fed" if scheduled else "")),
             "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header))]
    lines += ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
              for r in rows]
    for f in cv.folds:
        lines.append(f"fold {f.held_out}: chose {f.chosen}")
    paths = [(label, per_cond) for label, per_cond in cv.fixed.items()
             if any("FDE1.0h" in m for m in per_cond.values())]
    if cv.folds and any("FDE1.0h" in m for m in cv.selected.values()):
        paths.append(("trackstream (chosen per fold)", cv.selected))
    if paths:
        lines.append("held-out FDE@1s in box heights, predicted path / constant position:")
        for label, per_cond in paths:
            parts = [f"{c} {m['FDE1.0h']:.3f}/{m['base_FDE1.0h']:.3f}" for c in cv.conditions
                     if "FDE1.0h" in (m := per_cond.get(c, {}))]
            lines.append(f"  {label}: " + "; ".join(parts))
    ours = [lbl for lbl in cv.per_seq if lbl.startswith("trackstream") and "+" not in lbl]
    peers = [lbl for lbl in cv.per_seq if not lbl.startswith("trackstream") and "+" not in lbl]
    if ours and peers:
        lines.append("per-fold HOTA lead of each trackstream config over the best peer on that fold "
                     f"({', '.join(cv.seqs)}):")
        for label in ours:
            parts = []
            for c in cv.conditions:
                if c not in cv.per_seq[label]:
                    continue
                d = [cv.per_seq[label][c][s]["HOTA"] - max(cv.per_seq[p][c][s]["HOTA"] for p in peers
                                                          if c in cv.per_seq[p]) for s in cv.seqs]
                parts.append(f"{c} " + " ".join(f"{x:+.1f}" for x in d))
            lines.append(f"  {label}: " + "; ".join(parts))
    return "\n".join(lines)


def format_paths(report: EvalReport) -> str:
    """ADE/FDE of trackstream's predicted paths vs the constant-position baseline, per condition.

    Rows: each condition x horizon x trackstream config; mean over sequences (held-out fold mean) and the
    sample-weighted pooled value."""
    header = ("tracker", "condition", "horizon", "samples", "ADE px", "FDE px", "ADE h", "FDE h",
              "const ADE px", "const FDE px", "const ADE h", "const FDE h")
    rows = []
    for cond, per_label in report.paths_by_condition.items():
        for label, per_seq in per_label.items():
            pooled = {e.horizon: e for e in combine(per_seq)}
            for horizon, e in pooled.items():
                per = [x for errs in per_seq.values() for x in errs if x.horizon == horizon]
                def fold_mean(attr: str, items: list[PathError] = per) -> float:
                    return float(sum(getattr(x, attr) for x in items)) / len(items)
                rows.append((label, cond, f"{horizon:.1f} s", str(e.samples),
                             *(f"{fold_mean(a):.1f}" for a in ("ade_px", "fde_px")),
                             *(f"{fold_mean(a):.3f}" for a in ("ade_h", "fde_h")),
                             *(f"{fold_mean(a):.1f}" for a in ("base_ade_px", "base_fde_px")),
                             *(f"{fold_mean(a):.3f}" for a in ("base_ade_h", "base_fde_h"))))
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    def fmt(r: "Sequence[str]") -> str:
        return _fmt_row(tuple(r), widths)
    title = ("predicted paths (matched rows vs gt; mean over sequences; h = box heights; "
             "const = constant-position baseline)")
    return "\n".join([title, fmt(header), *map(fmt, rows)])

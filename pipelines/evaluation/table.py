"""Plain-text tables of ``trackstream eval`` results."""

from __future__ import annotations

from pipelines.evaluation.runner import EvalReport
from pipelines.evaluation.scoring import COMBINED

_HEADER = ("tracker", "sequence", "HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN", "IDs", "GT IDs",
           "cpu us/frame")


def _fmt_row(cells: tuple[str, ...], widths: list[int]) -> str:
    left = cells[:2]
    right = cells[2:]
    return "  ".join([*(c.ljust(w) for c, w in zip(left, widths)),
                      *(c.rjust(w) for c, w in zip(right, widths[2:]))]).rstrip()


def format_report(report: EvalReport) -> str:
    """One table: a row per tracker variant and sequence, then its COMBINED row; update() time per frame."""
    timing: dict[tuple[str, str], float] = {(r.tracker, r.seq): r.us_per_frame for r in report.runs}
    total: dict[str, tuple[float, int]] = {}
    for r in report.runs:
        secs, frames = total.get(r.tracker, (0.0, 0))
        total[r.tracker] = (secs + r.seconds, frames + r.frames)
    rows: list[tuple[str, ...]] = []
    for label, per_seq in report.scores.items():
        base = label.split("+", 1)[0]
        for seq in [s for s in per_seq if s != COMBINED] + [COMBINED]:
            if seq not in per_seq:
                continue
            s = per_seq[seq]
            if seq == COMBINED:
                secs, frames = total.get(base, (0.0, 0))
                us = 1e6 * secs / max(frames, 1)
            else:
                us = timing.get((base, seq), float("nan"))
            rows.append((label, seq, f"{s.hota:.1f}", f"{s.deta:.1f}", f"{s.assa:.1f}", f"{s.mota:.1f}",
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
                           for r in report.runs if r.seq == seq)
        lines.append(f"{seq}: no gt/gt.txt, tracked but not scored ({speeds})")
    lines.append("")
    lines.append("HOTA/DetA/AssA/MOTA/IDF1 in %; IDSW = identity switches; IDs = predicted track ids; "
                 "cpu us/frame = CPU time inside the tracker's update() per frame.")
    return "\n".join(lines)

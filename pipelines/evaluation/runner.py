"""Run trackers over MOTChallenge detections, write result files, score them, and summarise.

One fresh tracker per sequence and tracker name; detections are fed frame by frame in frame order with
timestamps ``(frame - 1) / frameRate`` seconds. Only the ``update`` calls are timed, in CPU time of the
calling thread, so other processes on a busy machine do not inflate the figures.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, TextIO

import numpy as np

from pipelines.errors import OutputError
from pipelines.evaluation import motio
from pipelines.evaluation.interpolate import interpolate_gaps
from pipelines.evaluation.scoring import SeqScore, score
from pipelines.evaluation.trackers import make_tracker


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate. ``interpolate_gap``: longest gap (frames) filled offline, or None for online only."""

    mot_root: Path
    out: Path
    benchmark: str = "MOT17"
    split: str = "train"
    seqs: tuple[str, ...] = ()
    trackers: tuple[str, ...] = ("trackstream",)
    tracker_config: Mapping[str, Any] = field(default_factory=dict)
    interpolate_gap: Optional[int] = None


@dataclass(frozen=True)
class SeqRun:
    """One tracker over one sequence: frames and detections fed, boxes written, CPU seconds in update()."""

    tracker: str
    seq: str
    frames: int
    detections: int
    boxes: int
    seconds: float

    @property
    def us_per_frame(self) -> float:
        return 1e6 * self.seconds / max(self.frames, 1)


@dataclass
class EvalReport:
    """All that ``trackstream eval`` found: ``scores[variant][seq]``, variant e.g. ``trackstream+interp``."""

    runs: list[SeqRun] = field(default_factory=list)
    scores: dict[str, dict[str, SeqScore]] = field(default_factory=dict)
    results_dirs: dict[str, Path] = field(default_factory=dict)
    unscored: list[str] = field(default_factory=list)


def results_dir(out: Path, trackers: tuple[str, ...], name: str, interpolated: bool = False) -> Path:
    """Where a tracker's result files go: ``OUT/data`` for the first tracker, ``OUT/<name>/data`` for others.

    Interpolated results sit next to them in ``data_interpolated``.
    """
    base = out if name == trackers[0] else out / name
    return base / ("data_interpolated" if interpolated else "data")


def track_sequence(tracker_name: str, seq: motio.MotSequence, dets: np.ndarray,
                   config: Mapping[str, Any]) -> tuple[np.ndarray, SeqRun]:
    """Feed one sequence to a fresh tracker; returns (M, 7) ``frame, id, x, y, w, h, conf`` rows, timing."""
    tracker = make_tracker(tracker_name, config)
    out: list[np.ndarray] = []
    spent = 0.0
    rate = seq.info.frame_rate
    for frame, rows in motio.frames(dets, seq.info.length):
        start = time.thread_time()
        tracked = tracker.update(rows[:, :4], rows[:, 4], (frame - 1) / rate)
        spent += time.thread_time() - start
        if len(tracked):
            out.append(np.column_stack([np.full(len(tracked), frame, np.float64), tracked]))
    result = np.concatenate(out) if out else np.zeros((0, 7))
    return result, SeqRun(tracker_name, seq.name, seq.info.length, len(dets), len(result), spent)


def evaluate(options: EvalOptions, progress: TextIO = sys.stderr) -> EvalReport:
    """Track every chosen sequence with every chosen tracker, write results, score those with gt."""
    seqs = motio.find_sequences(options.mot_root, options.benchmark, options.split, options.seqs)
    for name in options.trackers:  # fail on a bad config or tracker name before any work
        make_tracker(name, options.tracker_config)
    report = EvalReport(unscored=[s.name for s in seqs if s.gt is None])
    variants: dict[str, Path] = {}
    for seq in seqs:
        dets = motio.read_detections(seq.det, seq.info.length)
        for name in options.trackers:
            rows, run = track_sequence(name, seq, dets, options.tracker_config)
            report.runs.append(run)
            print(f"tracked {seq.name} with {name}: {run.frames} frames, {run.detections} detections, "
                  f"{run.us_per_frame:.0f} cpu us/frame", file=progress)
            variants[name] = results_dir(options.out, options.trackers, name)
            motio.write_results(variants[name] / f"{seq.name}.txt", rows)
            if options.interpolate_gap is not None:
                label = f"{name}+interp"
                variants[label] = results_dir(options.out, options.trackers, name, interpolated=True)
                motio.write_results(variants[label] / f"{seq.name}.txt",
                                    interpolate_gaps(rows, options.interpolate_gap))
    report.results_dirs = variants
    scored = {s.name: s.info.length for s in seqs if s.gt is not None}
    if scored:
        gt_folder = motio.split_folder(options.mot_root, options.benchmark, options.split)
        for label, folder in variants.items():
            report.scores[label] = score(gt_folder, folder, scored, options.benchmark)
    write_summary(options.out / "summary.json", report)
    return report


def write_summary(path: Path, report: EvalReport) -> None:
    """Save scores and timings as JSON (for scripts and for comparing runs)."""
    data = {
        "scores": {label: {seq: asdict(s) for seq, s in per_seq.items()}
                   for label, per_seq in report.scores.items()},
        "runs": [{**asdict(r), "us_per_frame": r.us_per_frame} for r in report.runs],
        "results_dirs": {label: str(p) for label, p in report.results_dirs.items()},
        "unscored": report.unscored,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None

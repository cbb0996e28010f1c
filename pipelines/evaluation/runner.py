"""Run trackers over MOTChallenge detections, write result files, score them, and summarise.

One fresh tracker per sequence and tracker name; detections are fed frame by frame in frame order with
timestamps ``(frame - 1) / frameRate`` seconds. Only the ``update`` calls are timed, in CPU time of the
calling thread, so other processes on a busy machine do not inflate the figures.

Each *condition* (``pipelines.evaluation.conditions``: frame stride, detection noise) derives its own copy of
the sequences; every tracker runs on every condition. trackstream may run with several candidate configs;
``pipelines.evaluation.crossval`` then chooses among them leave-one-sequence-out.

With a detection schedule (``--schedule interval:K|adaptive``) trackstream's schedule, driven by the tracker's
state alone (no pixels: no motion measure), picks the frames its detections are fed on; on the others the
tracker predicts. The peers are fed the very same frames with the same detections and report, on a frame
they were not fed, the boxes of their last one (what a user drawing their output would show). Every frame is
scored; ``SeqRun.detected`` counts the frames fed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from pipelines.errors import OutputError, UserError
from pipelines.evaluation.conditions import Condition, derive_sequence
from pipelines.evaluation.counting import LineScore, LineSets, count_metrics, score_sequence
from pipelines.evaluation.crossval import CrossValidation, cross_validate, flatten
from pipelines.evaluation.forecast_eval import PredictionScore, score_predictions
from pipelines.evaluation.interpolate import interpolate_gaps
from pipelines.evaluation.motio import (
    MotSequence,
    find_sequences,
    frames,
    read_detections,
    split_folder,
    write_results,
)
from pipelines.evaluation.paths import PathError, PathRecord, path_errors, read_gt_people
from pipelines.evaluation.scoring import SeqScore, score
from pipelines.evaluation.trackers import TRACKSTREAM, make_tracker
from pipelines.processing.schedule import DetectionSchedule, Schedule
from pipelines.processing.zones import LineConfig


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate. ``interpolate_gap``: longest gap (frames) filled offline, or None for online only.

    ``candidates``: extra trackstream configs ``(label, TrackerConfig keys)``, run as ``trackstream-<label>``;
    ``candidate_schedules``: a candidate's own detection schedule by label (else ``schedule``), so the folds
    can choose schedule settings too; ``max_detected``: with ``cross_validate``, a fold only chooses among
    candidates that detected at most this share of the training sequences' frames;
    ``conditions``: frame strides / detection noise to run (the first one's results go to ``out`` itself);
    ``cross_validate``: choose among trackstream and its candidates leave-one-sequence-out by ``select_by``.
    """

    mot_root: Path
    out: Path
    benchmark: str = "MOT17"
    split: str = "train"
    seqs: tuple[str, ...] = ()
    trackers: tuple[str, ...] = ("trackstream",)
    tracker_config: Mapping[str, Any] = field(default_factory=dict)
    interpolate_gap: int | None = None
    candidates: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    conditions: tuple[Condition, ...] = (Condition(),)
    cross_validate: bool = False
    select_by: str = "HOTA"
    schedule: Schedule | None = None
    candidate_schedules: Mapping[str, Schedule] = field(default_factory=dict)
    max_detected: float | None = None
    count_lines: str | None = None          # ``auto`` or a YAML file of lines per sequence (counting.py)
    predict_horizon: float | None = None    # seconds: score trackstream's predicted crossings (forecast_eval.py)
    predict_probability: float = 0.5        # their predict_min_probability


@dataclass(frozen=True)
class SeqRun:
    """One tracker over one sequence: frames and detections fed, boxes written, CPU seconds in update()."""

    tracker: str
    seq: str
    frames: int
    detections: int
    boxes: int
    seconds: float
    condition: str = "stride1"
    detected: int = -1  # frames whose detections were fed (-1: every frame, no schedule)

    @property
    def us_per_frame(self) -> float:
        return 1e6 * self.seconds / max(self.frames, 1)

    @property
    def detected_share(self) -> float:
        """Share of the frames whose detections the tracker was fed (1 without a schedule)."""
        return 1.0 if self.detected < 0 else self.detected / max(self.frames, 1)


@dataclass
class EvalReport:
    """All that ``trackstream eval`` found.

    ``scores[variant][seq]`` (variant e.g. ``trackstream+interp``) and ``paths[variant][seq]`` are those of
    the first condition; ``by_condition[condition]`` and ``paths_by_condition[condition]`` hold every
    condition's; ``cv`` is the cross-validation (None unless asked for).
    """

    runs: list[SeqRun] = field(default_factory=list)
    scores: dict[str, dict[str, SeqScore]] = field(default_factory=dict)
    results_dirs: dict[str, Path] = field(default_factory=dict)
    unscored: list[str] = field(default_factory=list)
    by_condition: dict[str, dict[str, dict[str, SeqScore]]] = field(default_factory=dict)
    paths: dict[str, dict[str, list[PathError]]] = field(default_factory=dict)
    paths_by_condition: dict[str, dict[str, dict[str, list[PathError]]]] = field(default_factory=dict)
    cv: CrossValidation | None = None
    counts_by_condition: dict[str, dict[str, dict[str, list[LineScore]]]] = field(default_factory=dict)
    predictions_by_condition: dict[str, dict[str, PredictionScore]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Spec:
    label: str        # shown in tables and used as the results folder name
    name: str         # tracker kind for make_tracker
    config: Mapping[str, Any]
    schedule: Schedule | None = None  # trackstream's own; None: every frame (a peer: the frames it is fed)


def _specs(options: EvalOptions) -> list[_Spec]:
    own = options.schedule
    specs = [_Spec(n, n, options.tracker_config if n == TRACKSTREAM else {}, own if n == TRACKSTREAM else None)
             for n in options.trackers]
    specs += [_Spec(f"{TRACKSTREAM}-{label}", TRACKSTREAM, cfg, options.candidate_schedules.get(label, own))
              for label, cfg in options.candidates]
    return specs


def results_dir(out: Path, trackers: tuple[str, ...], name: str, interpolated: bool = False) -> Path:
    """Where a tracker's result files go: ``OUT/data`` for the first tracker, ``OUT/<name>/data`` for others.

    Interpolated results sit next to them in ``data_interpolated``.
    """
    base = out if name == trackers[0] else out / name
    return base / ("data_interpolated" if interpolated else "data")


class Tracked(NamedTuple):
    """One tracker's run over one sequence (``track_sequence``)."""

    rows: np.ndarray            # (M, 7) frame, id, x, y, w, h, conf: what the tracker reports (the MOT file)
    run: SeqRun
    record: PathRecord | None   # the rows' predicted paths (trackstream), else None
    fed: np.ndarray             # bool by frame number: the frames the tracker was fed
    counted: np.ndarray         # (K, 7) the rows crossings are counted on, on fed frames only


def track_sequence(tracker_name: str, seq: MotSequence, dets: np.ndarray, config: Mapping[str, Any],
                   schedule: Schedule | None = None, fed: np.ndarray | None = None,
                   lines: Sequence[LineConfig] = ()) -> Tracked:
    """Feed one sequence to a fresh tracker.

    ``schedule`` (trackstream only): its decisions pick the frames fed, the tracker predicts the others;
    ``lines``: the counting lines it plans around (``--count-lines``), as ``trackstream run``'s does.
    ``fed`` bool (length + 1,) by frame number: feed only those frames and report the last fed frame's boxes
    on the others (a peer given trackstream's frames).

    Returns the reported rows, timing, the rows' predicted paths, the fed frames and the rows counted: on fed
    frames, what ``trackstream run`` counts on for trackstream (``TrackstreamTracker.counted``), a peer's
    reported boxes for a peer (what its user counts on).
    """
    rate = seq.info.frame_rate
    tracker = make_tracker(tracker_name, config, rate)
    planner = DetectionSchedule(schedule) if schedule is not None and schedule.mode != "every" else None
    mask = np.ones(seq.info.length + 1, bool) if fed is None else fed.copy()
    out: list[np.ndarray] = []
    counted: list[np.ndarray] = []
    paths: list[np.ndarray] = []
    spent = 0.0
    last = np.zeros((0, 6))
    for frame, rows in frames(dets, seq.info.length):
        stamp = (frame - 1) / rate
        start = time.thread_time()
        if planner is not None:
            mask[frame] = planner.decide(stamp)
        if mask[frame]:
            tracked = tracker.update(rows[:, :4], rows[:, 4], stamp)
            if planner is not None:
                planner.observe(tracker.plan(stamp, planner.schedule, lines))  # type: ignore[attr-defined]
            seen = tracker.counted() if hasattr(tracker, "counted") else tracked
            counted.append(np.column_stack([np.full(len(seen), frame, np.float64), seen]))
        elif planner is not None:
            tracked = tracker.predict(stamp)  # type: ignore[attr-defined]
        else:
            tracked = last  # a peer not fed this frame: its last boxes
        last = tracked
        spent += time.thread_time() - start
        if len(tracked):
            out.append(np.column_stack([np.full(len(tracked), frame, np.float64), tracked]))
            path = getattr(tracker, "last_path", None)
            if path is not None:
                paths.append(np.asarray(path, np.float64))
    result = np.concatenate(out) if out else np.zeros((0, 7))
    record = None
    times = getattr(tracker, "path_times", None)
    if times is not None:
        k = len(times)
        path_arr = np.concatenate(paths) if paths else np.zeros((0, k, 2))
        record = PathRecord(result[:, 0].astype(np.int64), result[:, 2:6], path_arr, np.asarray(times))
    scheduled = planner is not None or fed is not None
    run = SeqRun(tracker_name, seq.name, seq.info.length, len(dets), len(result), spent,
                 detected=int(mask[1:].sum()) if scheduled else -1)
    return Tracked(result, run, record, mask, np.concatenate(counted) if counted else np.zeros((0, 7)))


def _run_condition(options: EvalOptions, cond: Condition, seqs: list[MotSequence], out: Path,
                   report: EvalReport, progress: TextIO) -> None:
    specs = _specs(options)
    labels = tuple(s.label for s in specs)
    if not cond.identity:
        derived_split = out / "mot" / options.benchmark / options.split
        seqs = [derive_sequence(seq, cond, derived_split) for seq in seqs]
        gt_folder = derived_split
    else:
        gt_folder = split_folder(options.mot_root, options.benchmark, options.split)
    variants: dict[str, Path] = {}
    records: dict[str, dict[str, PathRecord]] = {}
    line_sets = LineSets(options.count_lines) if options.count_lines else None
    for seq in seqs:
        dets = read_detections(seq.det, seq.info.length)
        lines = line_sets.lines(seq.name, seq.info.width, seq.info.height) if line_sets is not None else ()
        fed = _scheduled_frames(options, seq, dets, lines)
        tracked: dict[str, np.ndarray] = {}
        for spec in specs:
            ours = spec.name == TRACKSTREAM
            rows, run, record, _, counted = track_sequence(spec.name, seq, dets, spec.config,
                                                           schedule=spec.schedule, fed=None if ours else fed,
                                                           lines=lines)
            run = replace(run, tracker=spec.label, condition=cond.name)
            report.runs.append(run)
            print(f"[{cond.name}] tracked {seq.name} with {spec.label}: {run.frames} frames, "
                  f"{run.detections} detections, {run.us_per_frame:.0f} cpu us/frame", file=progress)
            variants[spec.label] = results_dir(out, labels, spec.label)
            write_results(variants[spec.label] / f"{seq.name}.txt", rows)
            tracked[spec.label] = counted  # as run counts: fed frames only (trackstream: detected boxes)
            if record is not None:
                records.setdefault(spec.label, {})[seq.name] = record
            if options.interpolate_gap is not None:
                label = f"{spec.label}+interp"
                variants[label] = results_dir(out, labels, spec.label, interpolated=True)
                write_results(variants[label] / f"{seq.name}.txt", interpolate_gaps(rows, options.interpolate_gap))
        if line_sets is not None and seq.gt is not None:
            _count_sequence(options, cond, seq, seq.gt, dets, tracked, line_sets, report, progress, fed)
    scored = {s.name: s.info.length for s in seqs if s.gt is not None}
    report.by_condition[cond.name] = {label: score(gt_folder, folder, scored, options.benchmark)
                                      for label, folder in variants.items()} if scored else {}
    report.paths_by_condition[cond.name] = _path_scores(seqs, records)
    if not report.results_dirs:
        report.results_dirs = variants


def _count_sequence(options: EvalOptions, cond: Condition, seq: MotSequence, gt_path: Path, dets: np.ndarray,
                    tracked: Mapping[str, np.ndarray], line_sets: LineSets, report: EvalReport,
                    progress: TextIO, fed: np.ndarray | None) -> None:
    """Count crossings of the sequence's lines by gt and by every tracker; score trackstream's predicted
    crossings when asked (``--predict-horizon``), warned on the frames its schedule feeds (``fed``; None:
    every frame)."""
    lines = line_sets.lines(seq.name, seq.info.width, seq.info.height)
    gt = read_gt_people(gt_path)
    scores = score_sequence(gt, tracked, lines, seq.info.frame_rate)
    per_label = report.counts_by_condition.setdefault(cond.name, {})
    for label, rows in scores.items():
        per_label.setdefault(label, {})[seq.name] = rows
    if options.predict_horizon is not None:
        config = dict(options.tracker_config)
        report.predictions_by_condition.setdefault(cond.name, {})[seq.name] = score_predictions(
            seq, dets, gt, lines, config, options.predict_horizon, options.predict_probability, fed)
    print(f"[{cond.name}] counted crossings of {len(lines)} lines on {seq.name}", file=progress)


def _scheduled_frames(options: EvalOptions, seq: MotSequence, dets: np.ndarray,
                      lines: Sequence[LineConfig]) -> np.ndarray | None:
    """The frames trackstream's schedule (with ``--config``'s settings, planning around ``lines``) feeds on
    this sequence, which the peers are fed too; None without a schedule."""
    if options.schedule is None or options.schedule.mode == "every":
        return None
    return track_sequence(TRACKSTREAM, seq, dets, options.tracker_config, schedule=options.schedule,
                          lines=lines).fed


def _path_scores(seqs: list[MotSequence], records: Mapping[str, Mapping[str, PathRecord]]
                 ) -> dict[str, dict[str, list[PathError]]]:
    """ADE/FDE per tracker label and sequence, for the sequences that have ground truth."""
    gt = {s.name: (read_gt_people(s.gt), s.info.frame_rate) for s in seqs if s.gt is not None}
    return {label: {name: path_errors(record, *gt[name]) for name, record in per_seq.items() if name in gt}
            for label, per_seq in records.items()}


def evaluate(options: EvalOptions, progress: TextIO = sys.stderr) -> EvalReport:
    """Track every chosen sequence with every chosen tracker under every condition, write and score results."""
    seqs = find_sequences(options.mot_root, options.benchmark, options.split, options.seqs)
    for spec in _specs(options):  # fail on a bad config or tracker name before any work
        make_tracker(spec.name, spec.config)
    scored = [s for s in seqs if s.gt is not None]
    for gt in [s.gt for s in seqs if s.gt is not None]:   # a malformed gt.txt: one line now, not a traceback
        read_gt_people(gt)                                   # once everything is tracked
    if options.cross_validate and len(scored) < 2:
        raise UserError(f"--cross-validate needs at least 2 sequences with gt/gt.txt, got {len(scored)}")
    report = EvalReport(unscored=[s.name for s in seqs if s.gt is None])
    for i, cond in enumerate(options.conditions):
        out = options.out if i == 0 else options.out / "conditions" / cond.name
        _run_condition(options, cond, seqs, out, report, progress)
    first = options.conditions[0].name
    report.scores = report.by_condition[first]
    report.paths = report.paths_by_condition[first]
    if options.cross_validate:
        shares = {(r.tracker, r.condition, r.seq): r.detected_share for r in report.runs}
        table = flatten(report.by_condition, report.paths_by_condition, report.counts_by_condition, shares)
        candidates = [TRACKSTREAM] * (TRACKSTREAM in options.trackers) + \
            [f"{TRACKSTREAM}-{label}" for label, _ in options.candidates]
        report.cv = cross_validate(table, candidates, [c.name for c in options.conditions],
                                   sorted(s.name for s in scored), options.select_by, options.max_detected)
    write_summary(options.out / "summary.json", report)
    return report


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN or infinite float made null (a precision with nothing counted), so the file is
    strict JSON that any parser reads."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def _json_floats(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {k: None if not np.isfinite(v) else round(v, 3) for k, v in metrics.items()}


def write_summary(path: Path, report: EvalReport) -> None:
    """Save scores and timings as JSON (for scripts and for comparing runs)."""
    data = {
        "scores": {label: {seq: asdict(s) for seq, s in per_seq.items()}
                   for label, per_seq in report.scores.items()},
        "runs": [{**asdict(r), "us_per_frame": r.us_per_frame} for r in report.runs],
        "results_dirs": {label: str(p) for label, p in report.results_dirs.items()},
        "unscored": report.unscored,
        "by_condition": {cond: {label: {seq: asdict(s) for seq, s in per_seq.items()}
                                for label, per_seq in scores.items()}
                         for cond, scores in report.by_condition.items()},
        "paths_by_condition": {cond: {label: {seq: [asdict(e) for e in errs] for seq, errs in per_seq.items()}
                                      for label, per_seq in paths.items()}
                               for cond, paths in report.paths_by_condition.items()},
        "cross_validation": None if report.cv is None else report.cv.to_json(),
        "counts_by_condition": {cond: {label: {seq: {"lines": [s.to_json() for s in rows],
                                                     **_json_floats(count_metrics(rows))}
                                               for seq, rows in per_seq.items()}
                                       for label, per_seq in per_label.items()}
                                for cond, per_label in report.counts_by_condition.items()},
        "count_totals": {cond: {label: _json_floats(count_metrics([r for rows in per_seq.values() for r in rows]))
                                for label, per_seq in per_label.items()}
                         for cond, per_label in report.counts_by_condition.items()},
        "predicted_crossings": {cond: {seq: p.to_json() for seq, p in per_seq.items()}
                                for cond, per_seq in report.predictions_by_condition.items()},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_no_nan(data), indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None

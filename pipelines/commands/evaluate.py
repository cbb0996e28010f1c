"""``trackstream eval``: score trackers on MOTChallenge sequences from their public detections.

    trackstream eval MOT_ROOT --benchmark MOT17 [--seqs SEQ ...] --out DIR [--overwrite] [--config FILE]
                     [--tracker trackstream] [--tracker ultralytics-bytetrack] [--interpolate [GAP]]
                     [--cross-validate] [--candidate FILE ...] [--frame-stride K ...]
                     [--drop-detections P] [--jitter S] [--noise-seed N] [--schedule interval:K|adaptive]
                     [--detections public|gt] [--max-detected PCT]
                     [--count-lines auto|FILE [--predict-horizon S [--predict-probability P]]]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pipelines.errors import UserError

if TYPE_CHECKING:
    from pipelines.evaluation.conditions import Condition
    from pipelines.processing.schedule import Schedule

DEFAULT_GAP = 20
CLAIM = ".trackstream-eval.lock"   # the claim on an --out folder, inside it (engine/claims.py)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    from pipelines.evaluation.crossval import SELECT_CHOICES
    from pipelines.evaluation.trackers import TRACKER_NAMES

    p = sub.add_parser(
        name, help="score trackers on MOTChallenge sequences (HOTA, MOTA, IDF1, IDSW)",
        description="Feed each sequence's public detections (det/det.txt) to the tracker(s) frame by frame, "
                    "write MOTChallenge result files and score them against gt/gt.txt with TrackEval.")
    p.add_argument("mot_root", type=Path, metavar="MOT_ROOT",
                   help="folder holding <benchmark>/<split>/<seq>/{det/det.txt,gt/gt.txt,seqinfo.ini}")
    p.add_argument("--benchmark", default="MOT17", help="benchmark folder under MOT_ROOT (default MOT17)")
    p.add_argument("--split", default="train", help="split folder under the benchmark (default train)")
    p.add_argument("--seqs", nargs="+", default=[], metavar="SEQ",
                   help="sequences to run (default: every sequence with det/det.txt)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="results: DIR/data/<seq>.txt (first tracker), DIR/<tracker>/data/<seq>.txt (others), "
                        "DIR/summary.json; held while the eval runs: a second eval into DIR is refused, naming it")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that holds files already (an earlier eval's results there "
                        "are replaced); without it such a folder is refused")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TrackerConfig YAML for trackstream (flat keys, or a full config's tracker: section); "
                        "a schedule: section there sets --schedule's settings (adaptive's knobs)")
    p.add_argument("--tracker", action="append", choices=TRACKER_NAMES, metavar="NAME",
                   help=f"tracker to score; repeat to score several in one run ({', '.join(TRACKER_NAMES)}; "
                        "default trackstream)")
    p.add_argument("--interpolate", nargs="?", type=int, const=DEFAULT_GAP, default=None, metavar="GAP",
                   help="also score an offline variant with gaps of up to GAP frames "
                        f"(default {DEFAULT_GAP}) "
                        "filled by linear interpolation; reported separately as <tracker>+interp")
    p.add_argument("--cross-validate", action="store_true",
                   help="leave one sequence out: each trackstream config (--config and every --candidate) is "
                        "chosen on the other sequences and scored on the held-out one; prints the held-out fold "
                        "mean of every tracker")
    p.add_argument("--candidate", action="append", type=Path, default=[], metavar="FILE",
                   help="another TrackerConfig YAML to run as trackstream-<file stem> (repeatable); with "
                        "--cross-validate the folds choose among them. A file with a schedule: section "
                        "(adaptive's settings) and/or detector: {schedule: S} is a schedule candidate: "
                        "trackstream runs with that schedule (tracker keys under tracker:)")
    p.add_argument("--max-detected", type=float, default=None, metavar="PCT",
                   help="with --cross-validate: a fold chooses only among candidates that detected at most PCT%% "
                        "of the frames of its training sequences (the detection budget; 0 < PCT <= 100)")
    p.add_argument("--select-by", default=None, choices=SELECT_CHOICES,
                   help="metric the folds choose by (mean over training sequences and conditions; "
                        "FDE1.0h = final displacement error at 1 s in box heights, lower wins; default HOTA)")
    p.add_argument("--frame-stride", nargs="+", type=int, default=[1], metavar="K",
                   help="run at 1/K of the frame rate for each K given (default 1): keep every K-th frame "
                        "of det.txt and gt.txt (e.g. --frame-stride 1 2 3)")
    p.add_argument("--drop-detections", type=float, default=0.0, metavar="P",
                   help="add a noisy condition (with --jitter, --score-power, --camera-pan) at the smallest "
                        "stride, dropping "
                        "each detection with probability P (seeded)")
    p.add_argument("--jitter", type=float, default=0.0, metavar="S",
                   help="noisy condition: move box centres by N(0, S) box sizes and scale w/h by 1+N(0, S)")
    p.add_argument("--score-power", type=float, default=1.0, metavar="P",
                   help="noisy condition: detection scores c become c**P (a more or less confident detector)")
    p.add_argument("--camera-pan", type=float, default=0.0, metavar="A",
                   help="noisy condition: pan a virtual camera by up to A image widths (a 4 s sine; detections "
                        "and gt move alike), like footage from a moving camera")
    p.add_argument("--noise-seed", type=int, default=0, metavar="N", help="seed of the detection noise")
    p.add_argument("--detections", choices=("public", "gt"), default="public",
                   help="what the trackers are fed: public = det/det.txt (default); gt = the ground-truth "
                        "pedestrians, confidence 1 (a detector that misses no one: what tracking and counting "
                        "lose on their own; with --drop-detections/--jitter a detector of known recall)")
    p.add_argument("--schedule", default="every", metavar="S",
                   help="detection schedule: every (default), interval:K, interval:Ss or adaptive (driven by the "
                        "tracker's state and the --count-lines: no pixels); trackstream predicts the frames not "
                        "fed, the peers are fed the same frames and keep their last boxes on the others; every "
                        "frame is scored and the share of frames fed is printed")
    p.add_argument("--count-lines", metavar="auto|FILE",
                   help="also measure counting accuracy: count crossings of lines on each sequence by the "
                        "ground truth and by every tracker (our rule, and supervision's LineZone as "
                        "<tracker>+linezone); auto = the centre lines and two seeded diagonals, FILE = YAML "
                        "{SEQ: [{name, points: [[x, y], [x, y]]}], '*': [...]} (docs/evaluation.md)")
    p.add_argument("--predict-horizon", type=float, metavar="S",
                   help="with --count-lines: score trackstream's crossing_predicted warnings S seconds ahead "
                        "(precision, recall, median lead time)")
    p.add_argument("--predict-probability", type=float, default=None, metavar="P",
                   help="with --predict-horizon: the warnings' predict_min_probability (default 0.5)")


def _checked_keys(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    from pipelines.evaluation.trackers import make_tracker
    from tracker.configutil import ConfigError

    try:
        make_tracker("trackstream", config)
    except ConfigError as exc:
        raise UserError(f"{path}: {exc}") from None
    return config


def _conditions(args: argparse.Namespace) -> tuple[Condition, ...]:
    from pipelines.evaluation.conditions import Condition

    strides = list(dict.fromkeys(args.frame_stride))
    oracle = args.detections == "gt"
    conditions = [Condition(stride=k, oracle=oracle) for k in strides]
    if args.drop_detections or args.jitter or args.score_power != 1.0 or args.camera_pan:
        conditions.append(Condition(min(strides), args.drop_detections, args.jitter, args.noise_seed,
                                    args.score_power, args.camera_pan, oracle))
    return tuple(conditions)


def _check_partners(args: argparse.Namespace) -> None:
    """A flag that does something only beside another is refused without it, rather than silently ignored (as
    ``run`` does): the user meant something by it."""
    if not args.cross_validate:
        for flag, given, what in (("--select-by", args.select_by, "what the folds choose by"),
                                  ("--max-detected", args.max_detected, "the folds' detection budget")):
            if given is not None:
                raise UserError(f"{flag} is {what}: add --cross-validate")
    if args.select_by == "CountErr" and args.count_lines is None:
        raise UserError("--select-by CountErr chooses by the counting error: add --count-lines")
    if args.predict_probability is not None and args.predict_horizon is None:
        raise UserError("--predict-probability is the minimum of the warnings --predict-horizon scores: "
                        "add --predict-horizon")
    args.select_by = args.select_by or "HOTA"
    args.predict_probability = 0.5 if args.predict_probability is None else args.predict_probability


def _check_counting(args: argparse.Namespace) -> None:
    if args.count_lines is None:
        if args.predict_horizon is not None:
            raise UserError("--predict-horizon scores predicted crossings of counting lines: add --count-lines")
        return
    from pipelines.evaluation.counting import LineSets, require_supervision

    LineSets(args.count_lines)          # a bad file ends here, before any tracking
    require_supervision()
    if args.predict_horizon is not None and not 0 < args.predict_horizon <= 60:
        raise UserError(f"--predict-horizon: seconds in (0, 60], got {args.predict_horizon}")
    if not 0 < args.predict_probability <= 1:
        raise UserError(f"--predict-probability: a probability in (0, 1], got {args.predict_probability}")


def _print_counts(report: Any, first: str) -> None:
    from pipelines.evaluation.count_table import format_count_totals, format_lines, format_predictions

    for condition in report.counts_by_condition:
        labels = [label for label in report.counts_by_condition[condition] if label.startswith(first)
                  and "+" not in label]
        for text in (format_lines(report, condition, labels), format_count_totals(report, condition)):
            if text:
                print(text)
                print()
    text = format_predictions(report)
    if text:
        print(text)
        print()


def main(args: argparse.Namespace) -> int:
    _check_partners(args)
    if args.interpolate is not None and args.interpolate < 1:
        raise UserError(f"--interpolate: gap must be at least 1 frame, got {args.interpolate}")
    if args.max_detected is not None and not 0.0 < args.max_detected <= 100.0:
        raise UserError(f"--max-detected: a share of frames in % (0 < PCT <= 100), got {args.max_detected:g}")
    from pipelines.evaluation.trackers import load_candidate
    from pipelines.processing.schedule import Schedule
    from tracker.configutil import ConfigError

    try:
        schedule = Schedule.parse(args.schedule, key="--schedule")
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    tracker_config: dict[str, Any] = {}
    if args.config:  # its schedule: section (if any) is --schedule's settings, and so the frames peers are fed
        keys, own = load_candidate(args.config, schedule)
        tracker_config = _checked_keys(args.config, keys)
        schedule = own if own is not None else schedule
    candidates: list[tuple[str, dict[str, Any]]] = []
    schedules: dict[str, Schedule] = {}
    for path in args.candidate:
        label = path.stem
        if label in {c[0] for c in candidates}:
            raise UserError(f"--candidate: two files named {label!r}; candidates are labelled by file stem")
        keys, own = load_candidate(path, schedule)
        candidates.append((label, _checked_keys(path, keys)))
        if own is not None:
            schedules[label] = own
    trackers = tuple(dict.fromkeys(args.tracker or ["trackstream"]))
    if args.cross_validate and "trackstream" not in trackers and not candidates:
        raise UserError("--cross-validate chooses among trackstream configs: add --tracker trackstream "
                        "or --candidate FILE")
    _check_counting(args)
    from pipelines.evaluation.scoring import require_trackeval

    require_trackeval()  # now, not after every sequence was tracked
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():   # found now, not after the first sequence was tracked
        raise UserError(f"--out {args.out}: is a file; eval writes a folder of results there")
    with _claimed(out, args.out):   # another eval writing there is refused first, naming its PID, even with --overwrite
        if _results(out) and not args.overwrite:   # an earlier eval's results, or the user's files
            raise UserError(f"--out {args.out}: holds files already; refusing to write results into it (choose a "
                            "new or empty folder, or --overwrite)")
        return _evaluate(args, trackers, tracker_config, schedule, candidates, schedules)


def _evaluate(args: argparse.Namespace, trackers: tuple[str, ...], tracker_config: dict[str, Any],
              schedule: Schedule, candidates: list[tuple[str, dict[str, Any]]], schedules: dict[str, Schedule]) -> int:
    from pipelines.evaluation import EvalOptions, evaluate
    from pipelines.evaluation.count_table import format_count_cv
    from pipelines.evaluation.table import format_cv, format_paths, format_report

    options = EvalOptions(
        mot_root=args.mot_root, out=args.out, benchmark=args.benchmark, split=args.split,
        seqs=tuple(args.seqs), trackers=trackers, tracker_config=tracker_config,
        interpolate_gap=args.interpolate, candidates=tuple(candidates), conditions=_conditions(args),
        cross_validate=args.cross_validate, select_by=args.select_by,
        schedule=None if schedule.mode == "every" else schedule, candidate_schedules=schedules,
        max_detected=None if args.max_detected is None else args.max_detected / 100.0,
        count_lines=args.count_lines,
        predict_horizon=args.predict_horizon, predict_probability=args.predict_probability)
    report = evaluate(options)
    for condition in report.by_condition:
        if len(report.by_condition) > 1:
            print(f"== {condition} ==")
        print(format_report(report, condition))
        print()
    paths = format_paths(report)
    if paths:
        print(paths)
        print()
    _print_counts(report, trackers[0])
    if report.cv is not None:
        print(format_cv(report.cv))
        counted = format_count_cv(report.cv)
        if counted:
            print(counted)
    print(f"results: {', '.join(f'{k}: {v}' for k, v in report.results_dirs.items())}")
    return 0


@contextlib.contextmanager
def _claimed(out: Path, shown: object) -> Iterator[None]:
    """Hold the folder ``out`` for this eval until the block ends, as ``run`` holds its outputs
    (``pipelines/engine/claims.py``): a second eval into it refuses at start in one line naming this one's PID,
    where both wrote and their results mixed. The claim lies inside the folder (eval may write there, maybe not
    beside it) and goes at the end; a killed eval's is taken over.

    Fails now when eval cannot write in ``out`` (a read-only place, a parent that is a file): it said so only
    after tracking every sequence. Folders made here are removed again when the eval leaves them empty."""
    from pipelines.engine.claims import Claims

    claims, made = Claims(), []
    try:
        try:
            made = [p for p in (out, *out.parents) if not p.exists()]   # innermost first
            out.mkdir(parents=True, exist_ok=True)
            real = Path(os.path.realpath(out))   # one claim for every spelling of the folder
            if not claims.claim(real / CLAIM, "--out", Path(str(shown))):   # a file system without locks
                with tempfile.TemporaryFile(dir=out):
                    pass
        except OSError as exc:
            raise UserError(f"--out {shown}: cannot write results there: {exc.strerror or exc}") from None
        yield
    finally:
        claims.release()
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _results(out: Path) -> list[Path]:
    """What ``out`` holds besides the claims on it (this eval's, and a killed eval's left behind)."""
    from pipelines.engine.claims import TOKEN_PREFIX

    return [p for p in out.iterdir() if p.name != CLAIM and not p.name.startswith(TOKEN_PREFIX)]

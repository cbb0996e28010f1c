"""``trackstream eval``: score trackers on MOTChallenge sequences from their public detections.

    trackstream eval MOT_ROOT --benchmark MOT17 [--seqs SEQ ...] --out DIR [--config FILE]
                     [--tracker trackstream] [--tracker ultralytics-bytetrack] [--interpolate [GAP]]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.errors import UserError

DEFAULT_GAP = 20


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
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
                        "DIR/summary.json")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TrackerConfig YAML for trackstream (flat keys, or a full config's tracker: section)")
    p.add_argument("--tracker", action="append", choices=TRACKER_NAMES, metavar="NAME",
                   help=f"tracker to score; repeat to score several in one run ({', '.join(TRACKER_NAMES)}; "
                        "default trackstream)")
    p.add_argument("--interpolate", nargs="?", type=int, const=DEFAULT_GAP, default=None, metavar="GAP",
                   help="also score an offline variant with gaps of up to GAP frames "
                        f"(default {DEFAULT_GAP}) "
                        "filled by linear interpolation; reported separately as <tracker>+interp")


def main(args: argparse.Namespace) -> int:
    from pipelines.evaluation import EvalOptions, evaluate
    from pipelines.evaluation.table import format_report
    from pipelines.evaluation.trackers import load_tracker_config, make_tracker
    from tracker.configutil import ConfigError

    if args.interpolate is not None and args.interpolate < 1:
        raise UserError(f"--interpolate: gap must be at least 1 frame, got {args.interpolate}")
    tracker_config = load_tracker_config(args.config) if args.config else {}
    if args.config:
        try:
            make_tracker("trackstream", tracker_config)
        except ConfigError as exc:
            raise UserError(f"{args.config}: {exc}") from None
    options = EvalOptions(
        mot_root=args.mot_root, out=args.out, benchmark=args.benchmark, split=args.split,
        seqs=tuple(args.seqs), trackers=tuple(dict.fromkeys(args.tracker or ["trackstream"])),
        tracker_config=tracker_config, interpolate_gap=args.interpolate)
    report = evaluate(options)
    print(format_report(report))
    print(f"results: {', '.join(f'{k}: {v}' for k, v in report.results_dirs.items())}")
    return 0

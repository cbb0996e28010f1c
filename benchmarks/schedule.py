"""Detection schedules with the real detector: what each costs and how far its tracks stay from ``every``'s.

    python benchmarks/schedule.py [--frames 250] [--still-seconds 20] [--imgsz 320] [--repeat N]
                                  [--schedules every interval:3 interval:5 adaptive]

Clips: bikes.mp4 (bundled), the two shared 1280x720 videos (first ``--frames`` frames), and of each a *quiet*
clip: its first frame still for ``--still-seconds`` (60 in the issue's figure), then ``--frames`` frames of the
video, then still again; the first still part alone is reported as ``still``, without its first quarter
(start-up: the model's other copy loads then, once per run). people-walking's still frame has
people standing in it (tracks, no motion); in cars_highway's the person model finds nobody (no motion, no
tracks: the issue's quiet scene). Every clip gets a counting
line down its middle. Each schedule runs the whole pipeline (PyAV decode, YOLO, tracker, events) through the
Python API, one run after another in this process, and reports:

- ``det/frame``: detector calls per frame (frames detected / frames);
- ``cpu ms/frame``: CPU time of the process per frame (every thread: decode, detector, tracker), and its ratio
  to ``every`` on the same clip;
- ``fps``: frames per second (wall clock) of the whole run and its ratio to ``every``; ``fps run``: the same
  from the first result on, without the start-up (the model loading, once per process: on a 10 s clip it
  weighs as much as a sixth of the run, on a camera running for days nothing);
- agreement with ``every`` (the reference): HOTA and IDF1 by TrackEval with ``every``'s tracks as ground
  truth, and each counting line's totals (``=`` when identical).

Figures are ratios within one run (the machine may be shared). Defaults are short; raise ``--frames`` and
``--still-seconds`` for the issue's full figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.clips import decode_frames, write_clip  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


@dataclass
class Run:
    clip: str
    schedule: str
    frames: int
    detected: int
    cpu_s: float
    wall_s: float
    mot: np.ndarray            # (M, 7) frame, id, x, y, w, h, conf
    lines: dict[str, tuple[int, int]]
    still_frames: int = 0      # quiet clip: frames of its first still part (less its first quarter)
    still_detected: int = 0
    still_cpu_s: float = 0.0
    first_s: float = 0.0       # wall seconds to the first result (start-up: the model loads, once per run)


ULTRAFAST = {"preset": "ultrafast", "crf": "20"}   # libx264 options of the clips written here


def clips(workdir: Path, frames: int, still_seconds: float) -> dict[str, tuple[Path, int]]:
    """name -> (path, frames of the first still part, for the quiet clip; else 0)."""
    from pipelines.assets import demo_video

    out: dict[str, tuple[Path, int]] = {"bikes": (demo_video(), 0)}
    for name in ("people-walking", "cars_highway"):
        src = SHARED / f"{name}_1280x720.mp4"
        if not src.exists():
            print(f"missing {src}: skipped", file=sys.stderr)
            continue
        head = decode_frames(src, frames)
        short = workdir / f"{name}.mp4"
        write_clip(short, head, options=ULTRAFAST)
        out[name] = (short, 0)
        # quiet clips: a still frame, the video, still again; people-walking's still frame has people standing
        # in it (tracks, no motion), cars_highway's has nobody the person model finds (no tracks, no motion)
        still = [head[0]] * int(still_seconds * 25)
        quiet = workdir / f"quiet-{name}.mp4"
        write_clip(quiet, still + head + still, options=ULTRAFAST)
        out[f"quiet-{name.split('_')[0].split('-')[0]}"] = (quiet, len(still))
    return out


def run_once(clip: str, path: Path, schedule: str, imgsz: int, model: str, still: int) -> Run:
    from pipelines.api import process
    from pipelines.sources.file import FileSource

    width, height = FileSource(path).size or (640, 360)
    line = {"name": "middle", "points": [[width / 2, 0], [width / 2, height]]}
    rows: list[np.ndarray] = []
    detected = frames = 0
    still_detected, still_cpu, still_cpu0 = 0, 0.0, 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    last = None
    first = 0.0
    for result in process(path, model=model, imgsz=imgsz, schedule=schedule, lines=[line]):
        frames += 1
        if frames == 1:
            first = time.perf_counter() - wall0
        detected += int(result.detected)
        if frames == still // 4:
            still_cpu0 = time.process_time()
        if still // 4 < frames <= still:  # the still part after start-up (the model's copies load meanwhile)
            still_detected += int(result.detected)
            if frames == still:
                still_cpu = time.process_time() - still_cpu0
        t = result.tracks
        if len(t):
            box = t.best_xyxy.astype(np.float64)
            rows.append(np.column_stack([np.full(len(t), result.frame.index + 1.0), t.track_id, box[:, :2],
                                         box[:, 2:] - box[:, :2], np.ones(len(t))]))
        last = result
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    counts = last.counts if last is not None else None
    lines = {name: (c.left_to_right, c.right_to_left) for name, c in (counts.lines.items() if counts else [])}
    mot = np.concatenate(rows) if rows else np.zeros((0, 7))
    return Run(clip, schedule, frames, detected, cpu, wall, mot, lines, still - still // 4, still_detected,
               still_cpu, first)


def median_run(runs: list[Run]) -> Run:
    """One run's outputs (the same in every repeat: the schedule decides by the video, not by time) with the
    median of each time."""
    import dataclasses
    import statistics

    times = {name: statistics.median(getattr(r, name) for r in runs)
             for name in ("cpu_s", "wall_s", "still_cpu_s", "first_s")}
    return dataclasses.replace(runs[0], **times)


def running_fps(run: Run) -> float:
    """Frames per second from the first result to the last: the rate of a run going on, start-up left out."""
    return (run.frames - 1) / max(run.wall_s - run.first_s, 1e-9)


def agreement(reference: Run, run: Run, workdir: Path) -> tuple[float, float]:
    """HOTA and IDF1 of ``run`` with ``reference``'s tracks as ground truth (TrackEval)."""
    from pipelines.evaluation.motio import write_results
    from pipelines.evaluation.scoring import COMBINED, score

    if reference.schedule == run.schedule:
        return 100.0, 100.0
    if len(reference.mot) == 0:
        return float("nan"), float("nan")  # nothing tracked in the reference: nothing to agree on
    seq = f"{run.clip}"
    gt = workdir / "gt" / seq / "gt" / "gt.txt"
    gt.parent.mkdir(parents=True, exist_ok=True)
    ref = reference.mot
    gt.write_text("".join(f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},1,1,1\n"
                          for r in ref))
    label = run.schedule.replace(":", "_").replace(".", "_")
    results = workdir / "res" / label / "data"
    write_results(results / f"{seq}.txt", run.mot)
    scores = score(workdir / "gt", results, {seq: reference.frames})[COMBINED]
    return scores.hota, scores.idf1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=250, help="frames of each shared video (default 250)")
    parser.add_argument("--still-seconds", type=float, default=20.0,
                        help="seconds of still picture before and after the video in the quiet clip (default 20)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--model", default=None, help="weights (default: the bundled YOLO11n-pose)")
    parser.add_argument("--schedules", nargs="+", default=["every", "interval:3", "interval:5", "adaptive"])
    parser.add_argument("--clips", nargs="+", default=None, help="only these clips")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every schedule N times, interleaved, and report the median times (default 1)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from pipelines.assets import demo_pose_model

    model = args.model or str(demo_pose_model())
    schedules = ["every", *[s for s in args.schedules if s != "every"]]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        found = clips(workdir, args.frames, args.still_seconds)
        print(f"model {Path(model).name} imgsz {args.imgsz}; {os.cpu_count()} CPUs; clips: "
              + ", ".join(f"{k} ({v[0].name})" for k, v in found.items()))
        header = (f"{'clip':<15} {'schedule':<13} {'frames':>6} {'det/frame':>9} {'cpu ms/frame':>12} "
                  f"{'x every':>7} {'fps':>6} {'x every':>7} {'fps run':>7} {'x every':>7} {'HOTA':>6} {'IDF1':>6}"
                  "  lines (l>r, r>l)")
        print(header)
        print("-" * len(header))
        for clip, (path, still) in found.items():
            if args.clips and clip not in args.clips:
                continue
            rounds = [[run_once(clip, path, s, args.imgsz, model, still) for s in schedules]
                      for _ in range(args.repeat)]   # interleaved: a slow spell of the machine hits every schedule
            runs = [median_run([r[k] for r in rounds]) for k in range(len(schedules))]
            ref = runs[0]
            for run in runs:
                hota, idf1 = agreement(ref, run, workdir / clip)
                cpu = 1000 * run.cpu_s / max(run.frames, 1)
                cpu_ref = 1000 * ref.cpu_s / max(ref.frames, 1)
                fps, fps_ref = run.frames / run.wall_s, ref.frames / ref.wall_s
                steady, steady_ref = running_fps(run), running_fps(ref)
                same = "=" if run.lines == ref.lines else "DIFFERENT"
                print(f"{clip:<15} {run.schedule:<13} {run.frames:>6} {run.detected / run.frames:>9.3f} "
                      f"{cpu:>12.1f} {cpu / cpu_ref:>7.2f} {fps:>6.1f} {fps / fps_ref:>7.2f} {steady:>7.1f} "
                      f"{steady / steady_ref:>7.2f} {hota:>6.1f} {idf1:>6.1f}  {run.lines} {same}")
            if still:
                for run in runs:
                    seconds = run.still_frames / 25.0
                    per_2s = run.still_detected / seconds * 2.0
                    cpu = 1000 * run.still_cpu_s / max(run.still_frames, 1)
                    cpu_ref = 1000 * ref.still_cpu_s / max(ref.still_frames, 1)
                    print(f"{'still':<15} {run.schedule:<13} {run.still_frames:>6} "
                          f"{run.still_detected / run.still_frames:>9.3f} {cpu:>12.2f} {cpu / cpu_ref:>7.3f}"
                          f"   ({per_2s:.2f} detections per 2 s of video)")
            print()
    print("det/frame = detector calls per frame; cpu = process CPU (all threads) per frame; fps = frames per "
          "second of the whole run; fps run = the same from the first result on (without start-up: the model "
          "loading, once per run); x every = ratio to "
          "every on the same clip in this run; HOTA/IDF1 = agreement with every's tracks (TrackEval); lines = "
          "counting-line totals, '=' when equal to every's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

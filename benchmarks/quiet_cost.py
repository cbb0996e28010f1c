"""What a still, empty scene costs per frame with a detection schedule, thread by thread (issue 23).

    python benchmarks/quiet_cost.py [--seconds 60] [--schedule adaptive] [--repeat 3] [--quiet-max 2 10]
                                    [--no-every] [--encoder ultrafast|skips]

Writes a clip of cars_highway's first frame held still for ``--seconds`` (no motion, nobody the person model
finds) with libx264: ``ultrafast`` (the default; it codes a few hundred macroblocks of every still frame again,
so every picture is decoded) or ``skips`` (veryfast at x264's default CRF 23, without psychovisual tuning or
adaptive quantisation, one reference frame, no B frames: 73 of 75 still frames come out all macroblocks skipped,
as from an encoder that does not keep refining a still picture; those are handed on undecoded,
``pipelines/sources/unchanged.py``; at CRF 20 only 3 of 75 do). It runs the clip through the Python API
(YOLO11n-pose at 320 px, a counting line) and reports, over the clip's last three quarters less its last 120
frames (the model loads during the first quarter; the stages finish the file ahead of the API's reader during the
last frames), the process's CPU time per frame and each thread's (``/proc/self/task/*/schedstat``): the reader
(demuxing, decoding on one thread, the motion measure), FFmpeg's frame threads (when used), the detector thread
(the quiet checks and the scheduling), OpenVINO's own workers, processing, and the sink and API threads; detector
calls per minute of video; and the ratio of the process's CPU per frame to ``every``'s on the same clip (the
issue's target: at most 0.05). One column per ``schedule.quiet_max`` (2 s: every quiet check detects, as before
that knob; 10 s: the default). Medians over ``--repeat`` alternating runs; the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ENCODERS = {"ultrafast": {"preset": "ultrafast", "crf": "20"},
            "skips": {"preset": "veryfast", "crf": "23", "x264-params": "bframes=0:ref=1:psy=0:aq-mode=0"}}
PARTS = ("reader", "ffmpeg threads", "detector", "openvino", "processing", "sinks+api")


def thread_ns() -> dict[int, tuple[str, int]]:
    """Kernel thread id -> (name, CPU ns so far) of every thread of this process."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            ns = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out[int(tid)] = (names.get(int(tid), comm), ns)
    return out


def part_of(name: str) -> str:
    if name.startswith("av:"):
        return "ffmpeg threads"
    for key, part in (("reader", "reader"), ("detector", "detector"), ("tracker", "processing")):
        if key in name:
            return part
    return "sinks+api" if name.startswith("trackstream") or name == "MainThread" else "openvino"


def run_once(clip: Path, frames: int, schedule: str, model: str,
             tuning: dict[str, float] | None = None) -> dict[str, float]:
    from pipelines.api import process
    from pipelines.frames import StatusKind, StreamStatus

    # end well before the last frame: the stages run ahead of the API's reader by up to their queues (the inbox,
    # 32 per sink, 8 results) and their threads end with the file, uncounted if they ended before ``end``
    start, end = frames // 4, frames - 120
    before: dict[int, tuple[str, int]] = {}
    after: dict[int, tuple[str, int]] = {}
    cpu0 = cpu1 = 0.0
    detected = n = undecoded = 0
    for result in process(clip, model=model, imgsz=320, schedule=schedule, config={"schedule": dict(tuning or {})},
                          lines=[{"name": "middle", "points": [[640, 0], [640, 720]]}], statuses=True):
        if isinstance(result, StreamStatus):
            if result.kind is StatusKind.ENDED:
                undecoded = int(str(result.detail.get("undecoded", 0)))
            continue
        n += 1
        detected += int(start < n <= end and result.detected)
        if n == start:
            before, cpu0 = thread_ns(), time.process_time()
        elif n == end:
            after, cpu1 = thread_ns(), time.process_time()
    count = end - start
    out = dict.fromkeys(PARTS, 0.0)
    for tid, (name, ns) in after.items():
        if tid in before:
            out[part_of(name if name.startswith(("trackstream", "MainThread")) else before[tid][0])] += \
                (ns - before[tid][1]) / 1e6 / count
    out["process"] = 1000 * (cpu1 - cpu0) / count
    out["unattributed"] = out["process"] - sum(out[part] for part in PARTS)  # threads that came or went
    out["detections/min"] = detected / (count / 25.0) * 60.0
    out["undecoded %"] = 100.0 * undecoded / frames   # frames handed on without decoding (the whole clip)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the still clip (default 60)")
    parser.add_argument("--schedule", default="adaptive")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quiet-max", type=float, nargs="*", default=[2.0, 10.0],
                        help="schedule.quiet_max of each run (s; default 2, the rule before it existed, and 10, the "
                             "default); each is a column")
    parser.add_argument("--no-every", action="store_true", help="leave out the every run the ratios are to")
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="ultrafast",
                        help="how the still clip is encoded (default ultrafast; see the module docstring)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from pipelines.assets import demo_pose_model
    from schedule import SHARED
    from tests.clips import decode_frames, write_clip

    frames = int(args.seconds * 25)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "still.mp4"
        write_clip(clip, decode_frames(SHARED / "cars_highway_1280x720.mp4", 1) * frames,
                   options=ENCODERS[args.encoder])
        kinds = ([] if args.no_every else [("every", "every", {})]) + [
            (f"{args.schedule} qmax {q:g}", args.schedule, {"quiet_max": q}) for q in args.quiet_max]
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in kinds}
        for _ in range(args.repeat):  # alternating, so a busier spell of the machine weighs on each alike
            for label, schedule, tuning in kinds:
                runs[label].append(run_once(clip, frames, schedule, str(demo_pose_model()), tuning))
    print(f"a still, empty 1280x720 clip of {args.seconds:g} s ({args.encoder}), its last three quarters less 120 "
          f"frames: CPU ms per frame, medians of {args.repeat} alternating runs")
    print(f"  {'':<15}" + "".join(f"{label:>18}" for label in runs))
    for key in ("process", *PARTS, "unattributed", "detections/min", "undecoded %"):
        print(f"  {key:<15}" + "".join(f"{statistics.median(r[key] for r in rs):18.3f}" for rs in runs.values()))
    if "every" in runs:
        every = statistics.median(r["process"] for r in runs["every"])
        print(f"  {'x every':<15}" + "".join(
            f"{statistics.median(r['process'] for r in rs) / every:18.3f}" for rs in runs.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a still, empty scene costs per frame with a detection schedule, thread by thread (issue 23).

    python benchmarks/quiet_cost.py [--seconds 60] [--schedule adaptive] [--repeat 3]

Writes a clip of cars_highway's first frame held still for ``--seconds`` (no motion, nobody the person model
finds), runs it through the Python API (YOLO11n-pose at 320 px, a counting line) and reports, over the clip's
last three quarters (the model loads during the first), the process's CPU time per frame and each thread's
(``/proc/self/task/*/schedstat``): the reader (demuxing, decoding on one thread, the motion measure), FFmpeg's
frame threads (when used), the detector thread (the quiet checks and the scheduling), OpenVINO's own workers,
processing, and the sink and API threads. Medians over ``--repeat`` runs; the machine may be shared, so compare
runs made one after another.
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


def run_once(clip: Path, frames: int, schedule: str, model: str) -> dict[str, float]:
    from pipelines.api import process

    start, end = frames // 4, frames - 5
    before: dict[int, tuple[str, int]] = {}
    after: dict[int, tuple[str, int]] = {}
    cpu0 = cpu1 = 0.0
    for n, _ in enumerate(process(clip, model=model, imgsz=320, schedule=schedule,
                                  lines=[{"name": "middle", "points": [[640, 0], [640, 720]]}]), start=1):
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
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the still clip (default 60)")
    parser.add_argument("--schedule", default="adaptive")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from pipelines.assets import demo_pose_model
    from schedule import SHARED, read_frames, write_clip

    frames = int(args.seconds * 25)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "still.mp4"
        write_clip(clip, read_frames(SHARED / "cars_highway_1280x720.mp4", 1) * frames)
        runs = [run_once(clip, frames, args.schedule, str(demo_pose_model())) for _ in range(args.repeat)]
    print(f"{args.schedule}, a still empty 1280x720 clip, CPU ms per frame (median of {args.repeat}):")
    for key in ("process", *PARTS, "unattributed"):
        print(f"  {key:<15} {statistics.median(r[key] for r in runs):6.3f}   "
              + " ".join(f"{r[key]:.3f}" for r in runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

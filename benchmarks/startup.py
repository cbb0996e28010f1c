"""Start-up: time from launch to the first result, ``trackstream run CLIP --max-frames 1`` against Ultralytics'
``YOLO(m).track(CLIP)``, both whole fresh processes with the same ``.pt`` model.

- trackstream: ``python -m pipelines.cli run CLIP --max-frames 1 --jsonl OUT``, once per ``detector.runtime``
  given (default ``auto`` -- on a CPU the model exported to OpenVINO/ONNX, from a warm cache -- and ``torch``,
  the path before the runtime choice); the first result is the first JSONL line appearing on disk (polled every
  5 ms), and the process's exit is timed too.
- Ultralytics: a fresh interpreter running ``YOLO(m).track(CLIP, stream=True)``; the first result is when the
  first frame's result comes out of the generator (it prints the wall-clock time then and exits).

Rounds alternate the contenders (best of ``--repeat`` kept), so load from other work on a shared machine hits
all of them. The model cache is warmed (not timed) first. Usage::

    python benchmarks/startup.py [--video FILE] [--model FILE.pt] [--repeat 3] [--runtimes auto,torch]

Target (issue 22): trackstream's time to first result <= Ultralytics' (ratio >= 1.0x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ULTRALYTICS = """
import sys, time
from ultralytics import YOLO
for _ in YOLO(sys.argv[1]).track(source=sys.argv[2], stream=True, verbose=False):
    print(f"FIRST {time.time()}", flush=True)
    break
"""


def _env(cache: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TRACKSTREAM_MODEL_CACHE": cache, "YOLO_OFFLINE": "true",
            "YOLO_AUTOINSTALL": "false"}


def trackstream(video: str, model: str, runtime: str, cache: str) -> tuple[float, float]:
    """(seconds to the first JSONL line, seconds to exit) of one fresh ``trackstream run``."""
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        out = Path(tmp) / "out.jsonl"
        cmd = [sys.executable, "-m", "pipelines.cli", "run", video, "--model", model, "--runtime", runtime,
               "--max-frames", "1", "--jsonl", str(out), "--quiet"]
        start = time.time()
        proc = subprocess.Popen(cmd, cwd=str(REPO), env=_env(cache), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        first = None
        while proc.poll() is None:
            if first is None and out.exists() and out.stat().st_size > 0:
                first = time.time() - start
            time.sleep(0.005)
        end = time.time() - start
        if proc.returncode != 0:
            sys.exit(f"trackstream failed:\n{proc.stderr.read() if proc.stderr else ''}")
        return (first if first is not None else end), end


def ultralytics(video: str, model: str, cache: str) -> tuple[float, float]:
    """(seconds to the first tracked frame, seconds to exit) of one fresh interpreter running YOLO.track."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", ULTRALYTICS, model, video], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env=_env(cache))
    end = time.time() - start
    stamps = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("FIRST ")]
    if proc.returncode != 0 or not stamps:
        sys.exit(f"ultralytics failed:\n{proc.stderr[-3000:]}")
    return float(stamps[0]) - start, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None, help="default: the bundled bikes.mp4")
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled YOLO11n-pose .pt")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtimes", default="auto,torch", help="detector.runtime values to time")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from pipelines.assets import demo_pose_model, demo_video

    video, model = str(args.video or demo_video()), str(args.model or demo_pose_model())
    runtimes = args.runtimes.split(",")
    with tempfile.TemporaryDirectory(prefix="trackstream-models-") as cache:
        for runtime in runtimes:
            trackstream(video, model, runtime, cache)  # warm the cache (and the OS's file cache): not timed
        ultralytics(video, model, cache)
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):
            rounds = {f"trackstream --runtime {rt}": trackstream(video, model, rt, cache) for rt in runtimes}
            rounds["ultralytics YOLO.track"] = ultralytics(video, model, cache)
            for name, (first, end) in rounds.items():
                if name not in best or first < best[name][0]:
                    best[name] = (first, end)
    print(f"{Path(video).name}, {Path(model).name}, load average {os.getloadavg()[0]:.1f}, "
          f"best of {args.repeat} (whole processes, from launch)")
    peer = best["ultralytics YOLO.track"][0]
    for name, (first, end) in best.items():
        print(f"{name:30s} first result {first:6.2f} s   exit {end:6.2f} s   "
              f"ratio Ultralytics / this: {peer / first:.2f}x")


if __name__ == "__main__":
    main()

"""Frames per second of `trackstream run` (annotated MP4 + JSONL) against Ultralytics on the same clip.

Peers, measured in the same invocation, each in its own fresh process, with the same model and input size:

- ``ultralytics-track-save``: ``model.track(source, stream=True, save=True)`` (decode, detect, ByteTrack,
  draw, encode), the usual way to get an annotated tracking video out of Ultralytics;
- ``ultralytics-predict``: ``model.predict(source, stream=True)``, detection only, nothing written.

Every contender loads its model and runs it once on a blank frame before the clock starts, so the times
cover processing the clip only. Usage::

    python benchmarks/pipeline_speed.py [--video FILE] [--model FILE] [--imgsz 640] [--frames N]

Prints each contender's frames/s and the ratios trackstream / peer. Targets: >= 1.2x track+save and
>= 0.95x detector-only. On a shared machine use ``--repeat 3``: rounds alternate the contenders and the
best of each is kept, so a burst of load from elsewhere does not decide the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRACKSTREAM_DATA", REPO.parent / "shared" / "data"))
DEFAULT_VIDEO = DATA / "videos" / "people-walking_1280x720.mp4"
DEFAULT_MODEL = DATA / "weights" / "yolov8n_int8_640.onnx"
MODES = ("trackstream", "ultralytics-track-save", "ultralytics-predict")


def _trackstream(video: str, model: str, imgsz: int, frames: int | None,
                 out: Path) -> tuple[int, float, float, str]:
    from pipelines.engine.launch import open_sources
    from pipelines.config import build_config
    from pipelines.detection.detector import Detector
    from pipelines.engine.runner import Runner

    config = build_config({"sources": [{"url": video}], "detector": {"model": model, "imgsz": imgsz},
                           "output": {"video": str(out / "trackstream.mp4"),
                                      "jsonl": str(out / "trackstream.jsonl")}})
    sources = open_sources(config)
    detector = Detector(config.detector)  # loads and warms up every worker's copy of the model
    runner = Runner(sources, detector, config, max_frames=frames)
    start, cpu = time.perf_counter(), time.process_time()
    stats = runner.run()
    detail = f"{detector.workers} detector workers x {detector.threads or 'default'} threads"
    return stats[0].frames_out, time.perf_counter() - start, time.process_time() - cpu, detail


def _ultralytics(mode: str, video: str, model_path: str, imgsz: int, frames: int | None,
                 out: Path) -> tuple[int, float, float, str]:
    import numpy as np
    from ultralytics import YOLO

    model = YOLO(model_path, task="detect")
    model.predict(np.zeros((imgsz, imgsz, 3), np.uint8), imgsz=imgsz, verbose=False)  # load + warm up
    if mode == "ultralytics-track-save":
        results = model.track(source=video, stream=True, save=True, imgsz=imgsz, project=str(out),
                              name="track", verbose=False, persist=True)
    else:
        results = model.predict(source=video, stream=True, imgsz=imgsz, verbose=False)
    count = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in results:
        count += 1
        if frames is not None and count >= frames:
            break
    if hasattr(results, "close"):
        results.close()  # lets Ultralytics release (and finish writing) its video
    return count, time.perf_counter() - start, time.process_time() - cpu, "Ultralytics defaults"


def child(mode: str, video: str, model: str, imgsz: int, frames: int | None) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "true")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as tmp:
        if mode == "trackstream":
            count, seconds, cpu, detail = _trackstream(video, model, imgsz, frames, Path(tmp))
        else:
            count, seconds, cpu, detail = _ultralytics(mode, video, model, imgsz, frames, Path(tmp))
    print(json.dumps({"mode": mode, "frames": count, "seconds": seconds, "cpu_seconds": cpu, "detail": detail}))


def measure(mode: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", mode, "--video", str(args.video), "--model", str(args.model),
           "--imgsz", str(args.imgsz)] + (["--frames", str(args.frames)] if args.frames else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result["fps"] = result["frames"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--frames", type=int, default=None,
                        help="only the first N frames (default: whole clip)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over the three contenders (best of each kept; use >1 on a busy machine)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, str(args.video), str(args.model), args.imgsz, args.frames)
        return
    for path in (args.video, args.model):
        if not path.exists():
            sys.exit(f"missing {path} (set TRACKSTREAM_DATA to the shared data folder)")
    import torch

    print(f"clip {args.video.name}, model {args.model.name}, imgsz {args.imgsz}, "
          f"frames {args.frames or 'all'}, CPU threads {torch.get_num_threads()}, "
          f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):  # rounds alternate the contenders so a change in machine load hits all
        for mode in MODES:
            runs[mode].append(measure(mode, args))
    results = {mode: max(rs, key=lambda r: r["fps"]) for mode, rs in runs.items()}
    if args.repeat > 1:
        for mode, rs in runs.items():
            rounds = ", ".join(f"{r['fps']:.2f}" for r in rs)
            print(f"{mode:24s} rounds: {rounds} frames/s (best kept)")
    for mode, r in results.items():
        print(f"{mode:24s} {r['frames']:5d} frames {r['seconds']:7.2f} s {r['fps']:7.2f} frames/s "
              f"({1000 * r['cpu_seconds'] / max(r['frames'], 1):.0f} ms CPU per frame, all threads; "
              f"{r['detail']})")
    ours = results["trackstream"]["fps"]
    track_save, predict = results["ultralytics-track-save"]["fps"], results["ultralytics-predict"]["fps"]
    print(f"ratio trackstream / ultralytics track+save: {ours / track_save:.2f}x (target >= 1.2x)")
    print(f"ratio trackstream / ultralytics predict:    {ours / predict:.2f}x (target >= 0.95x)")


if __name__ == "__main__":
    main()

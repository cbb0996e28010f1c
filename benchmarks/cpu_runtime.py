"""What each detector runtime gives on this CPU: frames/s in trackstream's pipeline, agreement with PyTorch,
export and start-up times, and ``trackstream demo`` end to end against Ultralytics.

Sections (each contender in its own fresh process; rounds alternate the contenders so a burst of load from
other work on a shared machine hits all of them; the best round of each is kept and ratios are taken within
this run):

0. ``detector``: the detector alone (``Detector.detect``, one frame per call from as many threads as model
   copies) over the first ``--frames`` decoded frames of each clip: detector frames/s per runtime and the
   ratio to torch (the issue's target is on this figure).
1. ``pipeline``: ``Runner`` over the first ``--frames`` frames of each clip (the bundled bikes.mp4 and the
   shared 720p videos), JSONL written, workers as configured, per ``detector.runtime`` (torch, onnx, openvino);
   model load and warm-up are not timed. Prints ms/frame, frames/s and the ratio to torch.
2. ``agreement``: detections of each exported runtime against PyTorch's on ``--agree-frames`` frames of each
   clip: the share of PyTorch's confident detections (conf > 0.35) found with the same class at IoU >= 0.9,
   and the largest box-corner difference in pixels.
3. ``export``: the first run's export into an empty cache (once per runtime), and the detector start-up from a
   warm cache against PyTorch's (constructing ``Detector``: load and warm-up of the first copy).
4. ``demo``: ``trackstream demo`` (bundled clip and model, annotated MP4 + JSONL, cache warm) against
   ``YOLO(pt).track(clip, save=True)`` of the same ``.pt``, both whole processes from launch to exit.

Usage::

    python benchmarks/cpu_runtime.py [--frames 48] [--repeat 2] [--imgsz 640] [--sections pipeline,demo]

Targets (issue 26): >= 2x detector frames/s over PyTorch for the bundled model; demo >= 2x Ultralytics;
cached start-up no slower than PyTorch's; export <= 60 s, once.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRACKSTREAM_DATA", REPO.parent / "shared" / "data"))
RUNTIMES = ("torch", "onnx", "openvino")
SECTIONS = ("detector", "pipeline", "agreement", "export", "demo")


def _env(cache: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TRACKSTREAM_MODEL_CACHE": cache, "YOLO_OFFLINE": "true",
            "YOLO_AUTOINSTALL": "false"}


def _clips() -> list[Path]:
    from pipelines.assets import demo_video

    shared = sorted((DATA / "videos").glob("*.mp4"))
    if not shared:
        print(f"note: no shared videos in {DATA / 'videos'} (set TRACKSTREAM_DATA); bundled clip only")
    return [demo_video(), *shared]


# -- children (each runs in a fresh process) ---------------------------------------------------------------

def _child_pipeline(clip: str, model: str, runtime: str, imgsz: int, frames: int) -> dict[str, Any]:
    from pipelines.engine.launch import open_sources
    from pipelines.config import build_config
    from pipelines.detection.detector import Detector
    from pipelines.engine.runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        config = build_config({"sources": [{"url": clip}], "metrics": {"log_interval": 0},
                               "detector": {"model": model, "imgsz": imgsz, "runtime": runtime},
                               "output": {"jsonl": str(Path(tmp) / "out.jsonl")}})
        sources = open_sources(config)
        detector = Detector(config.detector)
        if detector.loading is not None:
            detector.loading.join()  # every copy ready: the clock measures detection, not loading
        runner = Runner(sources, detector, config, max_frames=frames)
        start, cpu = time.perf_counter(), time.process_time()
        stats = runner.run()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"frames": stats[0].frames_out, "seconds": seconds, "cpu": cpu,
            "detail": f"{detector.runtime}, {detector.workers} workers x {detector.threads} threads"}


def _child_detector(clip: str, model: str, runtime: str, imgsz: int, frames: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector
    from pipelines.frames import VideoFrame
    from pipelines.sources.file import FileSource

    source = FileSource(clip)
    images = [f for f in source.frames() if isinstance(f, VideoFrame)][:frames]
    source.close()
    detector = Detector(DetectorConfig(model=model, imgsz=imgsz, runtime=runtime))
    detector.detect(images[:1])  # the first call lets the other copies load
    if detector.loading is not None:
        detector.loading.join()  # every copy ready: the clock measures detection, not loading
    with ThreadPoolExecutor(detector.workers) as pool:
        start, cpu = time.perf_counter(), time.process_time()
        list(pool.map(lambda f: detector.detect([f]), images))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"frames": len(images), "seconds": seconds, "cpu": cpu,
            "detail": f"{detector.runtime}, {detector.workers} workers x {detector.threads} threads"}


def _frames_of(clip: str, count: int) -> list[Any]:
    from pipelines.frames import VideoFrame
    from pipelines.sources.file import FileSource

    source = FileSource(clip)
    total = source.frame_count or count
    step = max(1, total // count)
    out = [f for f in source.frames() if isinstance(f, VideoFrame) and f.index % step == 0][:count]
    source.close()
    return out


def _child_agreement(clips: list[str], model: str, imgsz: int, count: int) -> dict[str, Any]:
    import numpy as np

    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector

    detectors = {rt: Detector(DetectorConfig(model=model, imgsz=imgsz, runtime=rt, workers=1)) for rt in RUNTIMES}
    report: dict[str, Any] = {}
    for clip in clips:
        frames = _frames_of(clip, count)
        ref = [detectors["torch"].detect([f])[0] for f in frames]
        for rt in RUNTIMES[1:]:
            found = total = 0
            worst = 0.0
            for frame, r in zip(frames, ref):
                got = detectors[rt].detect([frame])[0]
                for box, cls in zip(r.xyxy[r.confidence > 0.35], r.class_id[r.confidence > 0.35]):
                    total += 1
                    if not len(got):
                        continue
                    lo, hi = np.maximum(box[:2], got.xyxy[:, :2]), np.minimum(box[2:], got.xyxy[:, 2:])
                    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
                    union = np.prod(box[2:] - box[:2]) + np.prod(got.xyxy[:, 2:] - got.xyxy[:, :2], axis=1) - inter
                    j = int(np.argmax(inter / union))
                    if inter[j] / union[j] >= 0.9 and got.class_id[j] == cls:
                        found += 1
                        worst = max(worst, float(np.abs(got.xyxy[j] - box).max()))
            report[f"{Path(clip).name} {rt}"] = {"found": found, "total": total, "worst_px": worst}
    return report


def _child_startup(model: str, runtime: str, imgsz: int, cache: str) -> dict[str, Any]:
    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector

    start = time.perf_counter()
    detector = Detector(DetectorConfig(model=model, imgsz=imgsz, runtime=runtime, cache_dir=cache))
    ready = time.perf_counter() - start
    choice = detector.runtime_choice
    if detector.loading is not None:
        detector.loading.join()
    return {"seconds": ready, "export": choice.exported_seconds, "runtime": detector.runtime}


def _child_ultralytics_track(model: str, clip: str, out: str) -> dict[str, Any]:
    from ultralytics import YOLO

    for _ in YOLO(model).track(source=clip, stream=True, save=True, project=out, name="track", verbose=False):
        pass
    return {}


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    kind, *rest = args.child.split(":", 1)
    spec: dict[str, Any] = json.loads(rest[0]) if rest else {}
    if kind == "detector":
        result = _child_detector(spec["clip"], spec["model"], spec["runtime"], args.imgsz, args.frames)
    elif kind == "pipeline":
        result = _child_pipeline(spec["clip"], spec["model"], spec["runtime"], args.imgsz, args.frames)
    elif kind == "agreement":
        result = _child_agreement(spec["clips"], spec["model"], args.imgsz, args.agree_frames)
    elif kind == "startup":
        result = _child_startup(spec["model"], spec["runtime"], args.imgsz, spec["cache"])
    else:
        result = _child_ultralytics_track(spec["model"], spec["clip"], spec["out"])
    print(json.dumps(result))


def _run_child(spec_kind: str, spec: dict[str, Any], args: argparse.Namespace, cache: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", f"{spec_kind}:{json.dumps(spec)}", "--imgsz", str(args.imgsz),
           "--frames", str(args.frames), "--agree-frames", str(args.agree_frames)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), env=_env(cache))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{spec_kind} {spec} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def _timed(cmd: list[str], cache: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO), env=_env(cache))
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


# -- sections ----------------------------------------------------------------------------------------------

def detector(args: argparse.Namespace, model: str, cache: str) -> None:
    print(f"\n== detector alone: the first {args.frames} decoded frames of each clip, one per call from as many "
          f"threads as model copies, imgsz {args.imgsz}, best of {args.repeat}")
    _per_runtime("detector", args, model, cache)


def pipeline(args: argparse.Namespace, model: str, cache: str) -> None:
    print(f"\n== pipeline: first {args.frames} frames of each clip, imgsz {args.imgsz}, best of {args.repeat}")
    _per_runtime("pipeline", args, model, cache)


def _per_runtime(kind: str, args: argparse.Namespace, model: str, cache: str) -> None:
    for clip in _clips():
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):
            for rt in RUNTIMES:
                r = _run_child(kind, {"clip": str(clip), "model": model, "runtime": rt}, args, cache)
                r["fps"] = r["frames"] / r["seconds"]
                if rt not in best or r["fps"] > best[rt]["fps"]:
                    best[rt] = r
        base = best["torch"]["fps"]
        for rt, r in best.items():
            print(f"{clip.name:32s} {rt:9s} {1000 / r['fps']:6.1f} ms/frame {r['fps']:6.2f} frames/s "
                  f"x{r['fps'] / base:.2f} vs torch ({r['detail']})")


def agreement(args: argparse.Namespace, model: str, cache: str) -> None:
    print(f"\n== agreement with PyTorch: {args.agree_frames} frames spread over each clip, imgsz {args.imgsz}")
    report = _run_child("agreement", {"clips": [str(c) for c in _clips()], "model": model}, args, cache)
    for name, r in report.items():
        share = r["found"] / r["total"] if r["total"] else 1.0
        print(f"{name:42s} {r['found']:4d}/{r['total']:<4d} PyTorch detections found ({100 * share:.1f}%), "
              f"largest box difference {r['worst_px']:.2f} px")


def export(args: argparse.Namespace, model: str, cache: str) -> None:
    print(f"\n== export and start-up (imgsz {args.imgsz}, detector ready = first copy loaded and warmed up)")
    with tempfile.TemporaryDirectory(prefix="cache-") as empty:
        for rt in RUNTIMES[1:]:
            r = _run_child("startup", {"model": model, "runtime": rt, "cache": empty}, args, empty)
            print(f"first run, {rt:8s}: export {r['export']:.1f} s once, detector ready after {r['seconds']:.1f} s")
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for rt in RUNTIMES:
            r = _run_child("startup", {"model": model, "runtime": rt, "cache": cache}, args, cache)
            best[rt] = min(best.get(rt, 1e9), r["seconds"])
    for rt, seconds in best.items():
        print(f"cached start-up, {rt:8s}: detector ready after {seconds:.2f} s "
              f"(x{best['torch'] / seconds:.2f} faster than torch)")


def demo(args: argparse.Namespace, model: str, cache: str) -> None:
    from pipelines.assets import demo_video

    print(f"\n== demo end to end (whole processes, bundled clip and model, best of {args.repeat})")
    with tempfile.TemporaryDirectory(prefix="demo-") as out:
        ours_cmd = [sys.executable, "-m", "pipelines.cli", "demo", "--quiet", "--out-dir", out]
        _timed(ours_cmd, cache)  # fills the cache if it is empty: later runs are what a user sees
        theirs_spec = json.dumps({"model": model, "clip": str(demo_video()), "out": out})
        theirs_cmd = [sys.executable, __file__, "--child", f"track:{theirs_spec}"]
        ours = theirs = 1e9
        for _ in range(args.repeat):
            ours = min(ours, _timed(ours_cmd, cache))
            theirs = min(theirs, _timed(theirs_cmd, cache))
    print(f"trackstream demo: {ours:.1f} s; Ultralytics track+save: {theirs:.1f} s; "
          f"ratio {theirs / ours:.2f}x (target >= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="frames of each clip in the pipeline section")
    parser.add_argument("--agree-frames", type=int, default=12, help="frames of each clip compared")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeat", type=int, default=2, help="rounds (best kept); more on a busy machine")
    parser.add_argument("--model", default=None, help=".pt weights (default: the bundled YOLO11n-pose)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(REPO))
    from pipelines.assets import demo_pose_model
    from pipelines.detection.detector import cpu_cores

    model = args.model or str(demo_pose_model())
    print(f"model {Path(model).name}, {cpu_cores()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="trackstream-models-") as cache:
        for section in args.sections.split(","):
            sections = {"detector": detector, "pipeline": pipeline, "agreement": agreement, "export": export,
                        "demo": demo}
            sections[section](args, model, cache)


if __name__ == "__main__":
    main()

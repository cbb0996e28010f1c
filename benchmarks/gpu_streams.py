"""Many 1080p H.264 streams on one machine: trackstream vs Ultralytics one-thread-per-stream, same run, same model.

What is measured, and how:

- The input is bikes.mp4 upscaled to 1920x1080 and re-encoded as H.264 at 30 fps with PyAV (looped to cover
  ``--seconds``), written once into ``--clip-dir``. Every stream reads its own copy of that file.
- **trackstream**, for each N in ``--streams``: one ``Runner`` over N file sources (``source.decoder`` from
  ``--decoder``; ``detector.batch`` automatic: on CUDA a call takes the newest frame of every live stream,
  16 frames of a file in fast mode; ``detector.preprocess`` from ``--preprocess``), in two modes:
  ``realtime`` (``source.realtime: true``: each file is played at 30 fps with the latest-frame policy, like
  a camera; what cannot be processed in time is dropped and counted) and ``fast`` (every frame, as fast as
  possible). Per stream and in total: output frames/s; p50/p95 **capture -> output** latency (decode
  finished -> tracked result handed to the sinks); dropped frames. The sink only records (no drawing or
  encoding), so the figures are decode + pre-processing + detection + tracking.
- **ultralytics**: N threads, each with its own ``YOLO(model)`` and ``model.track(source=clip, stream=True)``
  (the way its docs advise for several streams). Its file reader hands frames over as they are consumed, so
  it has no real-time mode and no drop count; its per-stream frames/s is what it sustains, and a stream
  count is *sustained* when every stream gets >= 30 frames/s.
- At the largest N, when the batch was letterboxed on the device, fast mode once more with ``preprocess:
  cpu`` (row ``fast-cpu``: Ultralytics' per-frame CPU letterbox): what the device letterbox gains, same run.
- Sustained N for trackstream: realtime mode with no drops and p95 <= 100 ms (the issue's goal); the ratio of
  the largest sustained N of both is printed. The first ``WARMUP_S`` seconds of every run are not counted.
- GPU utilisation/memory from ``nvidia-smi`` (sampled each second, when present); CPU as this process's
  CPU time over wall time, in % of all cores.

Run on a GPU: ``python benchmarks/gpu_streams.py`` (N = 1 4 8 16 32, 30 s per run); smoke test on a CPU:
``python benchmarks/gpu_streams.py --streams 1 2 --seconds 10``. ``--json FILE`` also writes every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")

import numpy as np  # noqa: E402

from pipelines.frames import BaseSink, FrameResult  # noqa: E402

WARMUP_S = 3.0
FPS = 30
TARGET_P95_MS = 100.0


def make_clip(src: Path, dst_dir: Path, seconds: float, width: int, height: int) -> Path:
    """bikes.mp4 upscaled to ``width`` x ``height``, H.264 at 30 fps, looped to last ``seconds`` (cached)."""
    import av

    frames_needed = int(math.ceil(seconds * FPS)) + FPS
    dst = dst_dir / f"bikes_{width}x{height}_{frames_needed}f.mp4"
    if dst.exists():
        return dst
    dst_dir.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part.mp4")
    with av.open(str(src)) as inp:
        pictures = [f.reformat(width=width, height=height, format="yuv420p", interpolation="BILINEAR")
                    for f in inp.decode(video=0)]
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": str(2 * FPS), "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames_needed):
            picture = pictures[i % len(pictures)]
            picture.pts, picture.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    tmp.rename(dst)
    return dst


class Latencies(BaseSink):
    """Records (wall time, capture -> output seconds) of every result of one stream."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.rows: list[tuple[float, float]] = []

    def write(self, result: FrameResult) -> None:
        now = time.time()
        self.rows.append((now - self.start, now - result.frame.capture_time))  # list.append: thread-safe


class Usage:
    """CPU (this process) and GPU (nvidia-smi, when present) utilisation over a run."""

    def __init__(self) -> None:
        self.gpu: list[tuple[float, float]] = []  # (util %, memory MiB)
        self._stop = threading.Event()
        self._smi = shutil.which("nvidia-smi")
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "Usage":
        self._t0, self._cpu0 = time.monotonic(), _cpu_seconds()
        if self._smi:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.monotonic() - self._t0
        self.cpu_pct = 100.0 * (_cpu_seconds() - self._cpu0) / max(self.wall, 1e-9) / (os.cpu_count() or 1)
        self._stop.set()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                line = subprocess.run([str(self._smi), "--query-gpu=utilization.gpu,memory.used",
                                       "--format=csv,noheader,nounits"], capture_output=True, text=True,
                                      timeout=5).stdout.splitlines()[0]
                util, mem = (float(x) for x in line.split(","))
                self.gpu.append((util, mem))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return

    def figures(self) -> dict[str, Optional[float]]:
        util = [u for u, _ in self.gpu]
        return {"cpu_pct": round(self.cpu_pct, 1),
                "gpu_util_mean": round(float(np.mean(util)), 1) if util else None,
                "gpu_util_max": max(util) if util else None,
                "gpu_mem_mib_max": max(m for _, m in self.gpu) if self.gpu else None}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class BatchSizes:
    """The detector the runner calls, recording how many frames each call took."""

    def __init__(self, detector: Any) -> None:
        self.inner = detector
        self.sizes: list[int] = []
        self.class_names, self.workers, self.device = detector.class_names, detector.workers, detector.device

    def detect_counted(self, frames: Sequence[Any]) -> Any:
        self.sizes.append(len(frames))  # list.append: safe from several detector threads
        return self.inner.detect_counted(frames)


def run_trackstream(clip: Path, n: int, mode: str, args: argparse.Namespace,
                    preprocess: Optional[str] = None) -> dict[str, Any]:
    from pipelines.config import load_config
    from pipelines.detection.detector import Detector, quiet_ultralytics
    from pipelines.engine.runner import Runner
    from pipelines.settings import SourceSettings
    from pipelines.sinks import BuiltSink, DropPolicy
    from pipelines.sources import open_source

    config = load_config(overrides={"detector.model": args.model, "detector.imgsz": args.imgsz,
                                    "detector.device": args.device,
                                    "detector.preprocess": preprocess or args.preprocess,
                                    "source.realtime": mode == "realtime", "source.decoder": args.decoder})
    with quiet_ultralytics():
        model = Detector(config.detector, args.model)
    detector = BatchSizes(model)
    pairs = []
    for i in range(n):
        settings = SourceSettings(url=str(clip), id=f"cam{i:02d}", options=config.source)
        pairs.append((settings, open_source(settings)))
    decoder = getattr(pairs[0][1], "decoder", None)
    start = time.time()
    sinks = {s.id: Latencies(start) for s, _ in pairs}
    def factory(_config: Any, settings: Any, *_: Any) -> list[BuiltSink]:
        return [BuiltSink("latency", DropPolicy.BLOCK, sinks[settings.id])]

    runner = Runner(pairs, detector, config, sink_factory=factory)  # type: ignore[arg-type]
    timer = threading.Timer(args.seconds, runner.stop)
    with Usage() as usage:
        timer.start()
        stats = runner.run()
        timer.cancel()
    window = max(min(usage.wall, args.seconds) - WARMUP_S, 1e-9)
    per_stream, latencies = [], []
    for sink in sinks.values():
        rows = [r for r in sink.rows if r[0] >= WARMUP_S]
        per_stream.append(len(rows) / window)
        latencies += [lat for _, lat in rows]
    dropped = sum(s.dropped for s in stats)
    p95 = _pct(latencies, 95) * 1000
    return {"peer": "trackstream", "mode": mode, "streams": n, "device": model.device, "half": model.half,
            "preprocess": model.preprocess, "batch_mean": round(float(np.mean(detector.sizes or [0])), 1),
            "batch_max": max(detector.sizes, default=0),
            "decoder": getattr(decoder, "name", "?"), "fps_total": round(sum(per_stream), 1),
            "fps_min_stream": round(min(per_stream), 1), "fps_mean_stream": round(float(np.mean(per_stream)), 1),
            "p50_ms": round(_pct(latencies, 50) * 1000, 1), "p95_ms": round(p95, 1), "dropped": dropped,
            "sustained": mode == "realtime" and dropped == 0 and p95 <= TARGET_P95_MS
            and min(per_stream) >= FPS - 1, **usage.figures()}


def run_ultralytics(clip: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from ultralytics import YOLO

    device = args.device if args.device != "auto" else None
    counts = [0] * n
    start = time.monotonic()
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            model = YOLO(args.model)
            for _ in model.track(source=str(clip), stream=True, imgsz=args.imgsz, device=device, verbose=False,
                                 persist=True):
                t = time.monotonic() - start
                if t >= WARMUP_S:
                    counts[i] += 1
                if t >= args.seconds:
                    break
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    with Usage() as usage:
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 120)
    window = max(min(usage.wall, args.seconds) - WARMUP_S, 1e-9)
    per_stream = [c / window for c in counts]
    return {"peer": "ultralytics", "mode": "fast", "streams": n, "fps_total": round(sum(per_stream), 1),
            "fps_min_stream": round(min(per_stream), 1), "fps_mean_stream": round(float(np.mean(per_stream)), 1),
            "p50_ms": None, "p95_ms": None, "dropped": None, "sustained": not errors and min(per_stream) >= FPS - 1,
            "errors": errors[:3], **usage.figures()}


def show(row: dict[str, Any]) -> None:
    def f(v: Any, spec: str) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    extra = (f" decoder {row['decoder']} {row['device']}{' fp16' if row['half'] else ''} letterbox "
             f"{row['preprocess']} batch mean {row['batch_mean']:g} max {row['batch_max']}") if "decoder" in row else ""
    gpu = (f"  gpu {f(row['gpu_util_mean'], '.0f')}% (max {f(row['gpu_util_max'], '.0f')}%, "
           f"{f(row['gpu_mem_mib_max'], '.0f')} MiB)") if row.get("gpu_util_mean") is not None else "  gpu n/a"
    print(f"{row['peer']:<11} {row['mode']:<8} N={row['streams']:<3} total {row['fps_total']:7.1f} fps  "
          f"per stream min {row['fps_min_stream']:5.1f} mean {row['fps_mean_stream']:5.1f}  "
          f"p50 {f(row['p50_ms'], '6.1f')} p95 {f(row['p95_ms'], '6.1f')} ms  dropped {f(row['dropped'], 'd')}  "
          f"cpu {row['cpu_pct']:.0f}%{gpu}{extra}  {'SUSTAINED' if row['sustained'] else '-'}"
          + (f"  errors {row['errors']}" if row.get("errors") else ""), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of every run (default 30)")
    parser.add_argument("--modes", nargs="+", choices=("realtime", "fast"), default=["realtime", "fast"])
    parser.add_argument("--model", default=None, help="model file (default: the bundled yolo11n-pose.pt)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="auto", help="detector.device for both peers (default auto)")
    parser.add_argument("--decoder", default="auto", choices=("auto", "cpu", "cuda"), help="source.decoder")
    parser.add_argument("--preprocess", default="auto", choices=("auto", "cpu", "device"),
                        help="detector.preprocess (default auto: on the GPU with CUDA)")
    parser.add_argument("--no-preprocess-compare", action="store_true",
                        help="skip the extra fast run with preprocess cpu at the largest N")
    parser.add_argument("--size", default="1920x1080", help="WxH of the generated H.264 clip")
    parser.add_argument("--clip-dir", default=str(Path(tempfile.gettempdir()) / "trackstream-gpu-bench"))
    parser.add_argument("--skip-ultralytics", action="store_true")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipelines").setLevel(logging.WARNING)
    logging.getLogger("pipelines.sources.hwdecode").setLevel(logging.INFO)  # say once which decoder is used
    from pipelines.assets import demo_pose_model, demo_video

    args.model = args.model or str(demo_pose_model())
    width, height = (int(x) for x in args.size.lower().split("x"))
    t0 = time.monotonic()
    clip = make_clip(demo_video(), Path(args.clip_dir), args.seconds, width, height)
    print(f"clip {clip.name} ({width}x{height} H.264 {FPS} fps; made/cached in {time.monotonic() - t0:.1f} s); "
          f"model {Path(args.model).name} imgsz {args.imgsz}; {args.seconds:g} s per run, first {WARMUP_S:g} s "
          f"not counted; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[dict[str, Any]] = []
    first = True
    for n in args.streams:
        for mode in args.modes:
            rows.append(run_trackstream(clip, n, mode, args))
            if first:
                logging.getLogger("pipelines.sources.hwdecode").setLevel(logging.WARNING)
                first = False
            show(rows[-1])
        if not args.skip_ultralytics:
            rows.append(run_ultralytics(clip, n, args))
            show(rows[-1])
    fast = next((r for r in rows if r["peer"] == "trackstream" and r["mode"] == "fast"
                 and r["streams"] == args.streams[-1]), None)
    if fast is not None and fast["preprocess"] == "device" and not args.no_preprocess_compare:
        rows.append({**run_trackstream(clip, args.streams[-1], "fast", args, preprocess="cpu"), "mode": "fast-cpu"})
        show(rows[-1])
        print(f"N={args.streams[-1]}: letterbox on {fast['device']} vs Ultralytics' CPU letterbox, total fps "
              f"{fast['fps_total']:.1f} vs {rows[-1]['fps_total']:.1f} "
              f"({fast['fps_total'] / max(rows[-1]['fps_total'], 1e-9):.2f}x)")
    best = {peer: max([r["streams"] for r in rows if r["peer"] == peer and r["sustained"]], default=0)
            for peer in ("trackstream", "ultralytics")}
    print(f"largest N sustained (30 fps per stream; trackstream also no drops, p95 <= {TARGET_P95_MS:g} ms): "
          f"trackstream {best['trackstream']}, ultralytics {best['ultralytics']}"
          + (f", ratio {best['trackstream'] / best['ultralytics']:.2f}x" if best["ultralytics"] else ""))
    for n in args.streams:
        ts = next((r for r in rows if r["peer"] == "trackstream" and r["mode"] == "fast" and r["streams"] == n), None)
        ul = next((r for r in rows if r["peer"] == "ultralytics" and r["streams"] == n), None)
        if ts and ul and ul["fps_total"]:
            ratio = ts["fps_total"] / ul["fps_total"]
            print(f"N={n}: as-fast-as-possible total fps trackstream/ultralytics {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"clip": str(clip), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

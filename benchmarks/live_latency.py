"""Live latency: trackstream vs Ultralytics ``model.track(source=rtsp_url, stream=True)`` on one RTSP camera.

What is measured, and how (the same way for both):

- A local RTSP server (``tests/rtsp_server.py``, GStreamer, started with the system python) serves bikes.mp4 in a
  loop at its real rate, 25 fps, like a camera. Into every frame it writes, as a block code in the top-left
  corner, the wall-clock time (ms) at which it handed that frame to its encoder.
- Both pipelines run on this machine, so when a result comes out its frame's **age** is ``time.time()`` minus that
  stamp: the delay a person watching the camera would see, including encoding, network, decoding, waiting in
  queues, inference and tracking. No pipeline-specific bookkeeping is trusted; both are read off the pixels.
- For trackstream the **capture -> output** latency (decode finished -> tracked result handed to the sinks, what
  its metrics histogram shows) is reported too; the difference is the camera/network/decoder part.
- The detector is slower than the camera (checked and printed: one inference > 40 ms), so a pipeline that queues
  frames falls further behind every second; one that always takes the newest frame stays flat. **Slope** is the
  least-squares slope of age against run time, in ms per minute: about 0 means no lag builds up.
- Same model file, image size and device for both. The two runs take turns (trackstream first), each
  ``--seconds`` long on its own connection to the same server, so they never compete for the CPU.
- Target for trackstream: p95 capture -> output <= 1.5 x one inference time, and a flat slope.

Run: ``python benchmarks/live_latency.py [--seconds 180] [--model PATH] [--imgsz 640]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")
# OpenCV (used by Ultralytics for streams) reads RTSP over TCP too, as trackstream does by default.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

import numpy as np  # noqa: E402

from pipelines.frames import BaseSink, FrameResult  # noqa: E402
from tests.live.conftest import RtspServer  # noqa: E402
from tests.rtsp_server import read_stamp  # noqa: E402

WARMUP_S = 5.0  # results in the first seconds (connection, first inference) are not counted


class Samples:
    """(run time s, frame age s, capture->output s or None) per result after the warm-up."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.rows: list[tuple[float, float, Optional[float]]] = []
        self.unreadable = 0

    def add(self, image: np.ndarray, capture_time: Optional[float] = None) -> None:
        now, t = time.time(), time.monotonic() - self.start
        stamp = read_stamp(image)
        if stamp is None:
            self.unreadable += 1
            return
        if t >= WARMUP_S:
            self.rows.append((t, now - stamp, None if capture_time is None else now - capture_time))


class StampSink(BaseSink):
    """A trackstream sink that records the age of every frame whose result reaches it."""

    def __init__(self, samples: Samples) -> None:
        self.samples = samples

    def write(self, result: FrameResult) -> None:
        self.samples.add(result.frame.image, result.frame.capture_time)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def slope_ms_per_min(rows: Sequence[tuple[float, float, Optional[float]]]) -> float:
    if len(rows) < 3:
        return float("nan")
    t = np.array([r[0] for r in rows])
    age = np.array([r[1] for r in rows])
    return float(np.polyfit(t, age, 1)[0] * 1000 * 60)


class TimedDetector:
    """Wraps trackstream's detector and records how long each call takes, during the run itself (on a shared
    machine the inference time varies with load, so the ratio uses the time measured in the same minutes)."""

    def __init__(self, detector: object) -> None:
        self.inner = detector
        self.class_names = detector.class_names  # type: ignore[attr-defined]
        self.workers = int(getattr(detector, "workers", 1))  # the runner runs this many detector threads
        self.device = str(getattr(detector, "device", "cpu"))  # and sizes batches by it
        self.durations: list[float] = []

    def detect_counted(self, frames: list) -> tuple[list, int]:  # type: ignore[type-arg]
        t0 = time.perf_counter()
        out = self.inner.detect_counted(frames)  # type: ignore[attr-defined]
        if frames:
            self.durations.append(time.perf_counter() - t0)  # list.append: safe from several workers
        return out  # type: ignore[no-any-return]


def run_trackstream(url: str, model: str, imgsz: int, seconds: float,
                    workers: Optional[int] = None) -> tuple[Samples, TimedDetector, dict]:
    from pipelines.config import load_config
    from pipelines.detection.detector import Detector
    from pipelines.engine.runner import Runner
    from pipelines.settings import SourceSettings
    from pipelines.sinks import BuiltSink, DropPolicy
    from pipelines.sources import open_source

    config = load_config(overrides={"detector.model": model, "detector.imgsz": imgsz, "detector.batch": 1,
                                    "detector.workers": workers})
    detector = TimedDetector(Detector(config.detector, model))
    settings = SourceSettings(url=url, id="camera", options=config.source)
    source = open_source(settings)
    samples = Samples()
    runner = Runner([(settings, source)], detector, config,  # type: ignore[arg-type]
                    sink_factory=lambda *_: [BuiltSink("stamp", DropPolicy.BLOCK, StampSink(samples))])
    timer = threading.Timer(seconds, runner.stop)
    timer.start()
    stats = runner.run()
    timer.cancel()
    snapshot = stats[0].doc()
    return samples, detector, snapshot


def run_ultralytics(url: str, model: str, imgsz: int, seconds: float) -> tuple[Samples, list[float]]:
    from ultralytics import YOLO

    yolo = YOLO(model)
    samples = Samples()
    inference_ms: list[float] = []
    stream = yolo.track(source=url, stream=True, imgsz=imgsz, verbose=False, persist=True)
    for result in stream:
        samples.add(result.orig_img)
        inference_ms.append(float(result.speed.get("inference", float("nan"))))
        if time.monotonic() - samples.start >= seconds:
            break
    stream.close()
    dataset = getattr(getattr(yolo, "predictor", None), "dataset", None)
    if dataset is not None and hasattr(dataset, "close"):
        dataset.close()
    return samples, inference_ms


def report(name: str, samples: Samples, seconds: float) -> dict[str, float]:
    ages = [r[1] for r in samples.rows]
    fig = {"p50": percentile(ages, 50) * 1000, "p95": percentile(ages, 95) * 1000,
           "slope": slope_ms_per_min(samples.rows), "fps": len(samples.rows) / max(seconds - WARMUP_S, 1e-9)}
    print(f"{name:<12} frame age p50 {fig['p50']:7.1f} ms  p95 {fig['p95']:7.1f} ms  "
          f"slope {fig['slope']:+7.1f} ms/min  output {fig['fps']:5.1f} fps  results {len(samples.rows)}"
          + (f"  (unreadable stamps {samples.unreadable})" if samples.unreadable else ""))
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="length of each run (default 180)")
    parser.add_argument("--model", default=None, help="model file (default: the bundled yolo11n-pose.pt)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--workers", type=int, default=None,
                        help="trackstream detector workers (default: auto, as `trackstream run`)")
    parser.add_argument("--skip-ultralytics", action="store_true")
    args = parser.parse_args()

    from pipelines.assets import demo_pose_model, demo_video

    model = args.model or str(demo_pose_model())
    server = RtspServer(demo_video()).start()
    try:
        print(f"camera: {server.url} (bikes.mp4 looped at 25 fps, frame period 40 ms); model {Path(model).name} "
              f"imgsz {args.imgsz}; {args.seconds:g} s per run, first {WARMUP_S:g} s not counted")
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        samples, detector, stats = run_trackstream(server.url, model, args.imgsz, args.seconds, args.workers)
        infer = statistics.median(detector.durations[3:] or detector.durations)
        infer_p95 = percentile(detector.durations[3:], 95)
        print(f"one inference (trackstream detector call, 1 frame, during the run): median {infer * 1000:.1f} ms, "
              f"p95 {infer_p95 * 1000:.1f} ms ({'slower' if infer > 0.04 else 'NOT slower'} than the 40 ms "
              f"frame period)")
        ts = report("trackstream", samples, args.seconds)
        cap = [r[2] for r in samples.rows if r[2] is not None]
        cap_p50, cap_p95 = percentile(cap, 50) * 1000, percentile(cap, 95) * 1000
        print(f"trackstream  capture->output p50 {cap_p50:7.1f} ms  p95 {cap_p95:7.1f} ms  "
              f"= {cap_p95 / (infer * 1000):.2f} x median inference (target <= 1.50), "
              f"{cap_p95 / (infer_p95 * 1000):.2f} x p95 inference; dropped {stats['dropped']} (latest-frame policy)")
        if not args.skip_ultralytics:
            try:
                ul_samples, ul_infer = run_ultralytics(server.url, model, args.imgsz, args.seconds)
            except ConnectionError as exc:  # OpenCV's stream reader gives up after 30 s without a picture
                print(f"ultralytics  could not read the stream: {exc}")
                return 1
            ul = report("ultralytics", ul_samples, args.seconds)
            print(f"ultralytics  reported inference median {statistics.median(ul_infer):.1f} ms")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            print(f"ratio ultralytics/trackstream: p50 {ul['p50'] / ts['p50']:.2f}x  p95 {ul['p95'] / ts['p95']:.2f}x"
                  f"  output fps {ul['fps'] / max(ts['fps'], 1e-9):.2f}x")
    finally:
        server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How many live cameras one box serves: ``every`` vs ``adaptive`` on N real RTSP cameras.

    python benchmarks/live_capacity.py [--still 6] [--busy 2] [--seconds 30] [--imgsz 320]
                                       [--schedules every adaptive] [--runtimes auto torch] [--batches auto 1]

Two GStreamer RTSP servers (``tests/rtsp_server.py``, system python) serve 1280x720 at 25 fps: one a still picture
(the first frame of people-walking, looped) on ``--still`` mounts, one the people-walking video on ``--busy``
mounts. trackstream runs all of them in one process (one Runner, latest-frame policy, one detector) for
``--seconds`` per schedule and detector runtime (``--runtimes``: ``auto`` is the default one, on a CPU the model
exported to OpenVINO and run natively; ``torch`` is PyTorch through Ultralytics) and detector batch size
(``--batches``: ``auto`` is 4 frames per call on a CPU) and reports, per kind of camera:

- processed fps per camera (frames that came out, detected or predicted) and the share detected;
- p95 capture-to-output latency (network, decoding and every queue included), and its ratio to one inference
  (the detector call time measured in the same run); ``p95 in``: the part of it inside trackstream, from the
  frame's decoding to its output;
- CPU seconds per second of this process (decode, detector, tracker; the servers are not counted).

A real camera encodes on its own chip, so by default the servers encode their loop once at start
(``rtsp_server.py --encode-once``): each frame carries its index and the servers log when each went out, which
gives its capture time. ``--server-encodes`` encodes every frame as it is served, with a wall-clock stamp in
it, as the tests' server does: on a small machine that x264 takes cores from trackstream.

Before the runs, a bare PyAV client (no trackstream) reads a mount of its own for a few seconds: its p95 is the
floor of any client built on FFmpeg, which hands an RTSP H.264 frame over only once the next one begins (one
frame period, 40 ms at 25 fps). Compare the schedules within one run (ratios), not against other machines.
"""

from __future__ import annotations

import argparse
import bisect
import os
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.frames import BaseSink, FrameResult  # noqa: E402
from tests.live.conftest import RtspServer  # noqa: E402
from tests.rtsp_server import read_index, stamp_seconds  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
WARMUP_S = 5.0


Row = tuple[float, float, bool, float]  # run time, capture-to-output age, detected, decoded-to-output age


class PushLog:
    """When an ``--encode-once`` server handed out each frame of a mount: index -> the times, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.times: dict[str, dict[int, list[float]]] = {}

    def capture_time(self, mount: str, index: int, out_time: float) -> float | None:
        """The latest time frame ``index`` of ``mount`` went out before ``out_time`` (a loop repeats indices)."""
        if mount not in self.times:  # read once, after the run: the log is complete for every frame out by then
            table: dict[int, list[float]] = {}
            path = self.folder / f"{mount}.log"
            for line in path.read_text().splitlines() if path.exists() else []:
                i, millis = line.split()
                table.setdefault(int(i), []).append(int(millis) / 1000.0)
            self.times[mount] = {i: sorted(times) for i, times in table.items()}
        times = self.times[mount].get(index, [])
        at = bisect.bisect_right(times, out_time)
        return times[at - 1] if at else None


class StampSink(BaseSink):
    """Records (run time, output time, the frame's stamp, detected, decoded-to-output age) of every result after
    the warm-up; ``capture_ages`` turns them into rows once the servers' logs are complete."""

    def __init__(self, start: float, raw: list[tuple[float, float, int, bool, float]]) -> None:
        self.start, self.raw = start, raw

    def write(self, result: FrameResult) -> None:
        t = time.monotonic() - self.start
        luma = result.frame.luma()   # the stamp is in the luma plane: no BGR picture made for it
        value = read_index(luma[0] if luma is not None else result.frame.image)
        if value is not None and t >= WARMUP_S:
            now = time.time()
            self.raw.append((t, now, value, result.detected, now - result.frame.capture_time))


def capture_ages(camera: str, raw: list[tuple[float, float, int, bool, float]], log: PushLog | None) -> list[Row]:
    """Capture-to-output ages: from the frame's index and its server's log, or its wall-clock stamp."""
    rows: list[Row] = []
    for t, now, value, detected, inside in raw:
        captured = captured_at(log, camera, value, now)
        if captured is not None:
            rows.append((t, now - captured, detected, inside))
    return rows


def captured_at(log: PushLog | None, mount: str, value: int, now: float) -> float | None:
    """When the frame whose corner holds ``value`` left its server: from the server's log by its index
    (``--encode-once``), else the wall-clock stamp itself."""
    return log.capture_time(mount, value, now) if log else stamp_seconds(value)


def bare_client_p95(url: str, log: PushLog | None, mount: str, seconds: float = 6.0) -> float:
    """p95 capture-to-frame age seen by a plain PyAV client: FFmpeg's floor, before any trackstream work."""
    import av

    with av.open(url, options={"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay"}) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        seen: list[tuple[float, int]] = []
        end = time.monotonic() + seconds
        for frame in container.decode(stream):
            value = read_index(frame.to_ndarray(format="gray"))
            if value is not None:
                seen.append((time.time(), value))
            if time.monotonic() > end:
                break
    found = [(now, captured_at(log, mount, v, now)) for now, v in seen[25:]]
    return float(np.percentile([now - c for now, c in found if c is not None], 95))


class TimedDetector:
    """The detector, timing each call (inference time on a loaded machine is measured in the same run)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.class_names = inner, inner.class_names
        self.workers, self.device = int(getattr(inner, "workers", 1)), str(getattr(inner, "device", "cpu"))
        self.durations: list[float] = []

    def detect_counted(self, frames: list) -> tuple[list, int]:  # type: ignore[type-arg]
        t0 = time.perf_counter()
        out = self.inner.detect_counted(frames)
        if frames:
            self.durations.append((time.perf_counter() - t0) / len(frames))
        return out  # type: ignore[no-any-return]


def still_video(path: Path, seconds: int = 10) -> Path:
    import av

    with av.open(str(SHARED / "people-walking_1280x720.mp4")) as inp:
        image = next(inp.decode(video=0)).to_ndarray(format="bgr24")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.height, stream.width, stream.pix_fmt = image.shape[0], image.shape[1], "yuv420p"
        for i in range(25 * seconds):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def run(urls: dict[str, str], schedule: str, model: str, imgsz: int, seconds: float, runtime: str = "auto",
        batch: str = "auto") -> dict[str, Any]:
    from pipelines.config import load_config
    from pipelines.detection.detector import Detector
    from pipelines.engine.runner import Runner
    from pipelines.sinks import BuiltSink, DropPolicy
    from pipelines.sources import open_source

    config = load_config(overrides={"detector.model": model, "detector.imgsz": imgsz,
                                    "detector.schedule": schedule, "detector.runtime": runtime,
                                    "detector.batch": None if batch == "auto" else int(batch),
                                    "sources": [{"id": k, "url": u} for k, u in urls.items()]})
    detector = TimedDetector(Detector(config.detector, model))
    start = time.monotonic()
    raw: dict[str, list[tuple[float, float, int, bool, float]]] = {k: [] for k in urls}
    pairs = [(s, open_source(s)) for s in config.sources]
    runner = Runner(pairs, detector, config,  # type: ignore[arg-type]
                    sink_factory=lambda _c, s, *_: [BuiltSink("stamp", DropPolicy.BLOCK,
                                                              StampSink(start, raw[s.id]))])
    cpu0 = time.process_time()
    timer = threading.Timer(seconds, runner.stop)
    timer.start()
    runner.run()
    timer.cancel()
    cpu = time.process_time() - cpu0
    span = max(seconds - WARMUP_S, 1e-9)
    return {"raw": raw, "cpu_per_s": cpu / seconds, "span": span,
            "inference_s": float(np.median(detector.durations)) if detector.durations else float("nan")}


def label(schedule: str, runtime: str, batch: str, args: argparse.Namespace) -> str:
    """``adaptive``, with `` torch`` / `` batch 1`` when several runtimes or batch sizes are compared."""
    parts = [schedule, runtime if len(args.runtimes) > 1 else "", f"batch {batch}" if len(args.batches) > 1 else ""]
    return " ".join(p for p in parts if p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--still", type=int, default=6, help="still cameras (default 6)")
    parser.add_argument("--busy", type=int, default=2, help="busy cameras (default 2)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per schedule (default 30)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--model", default=None)
    parser.add_argument("--schedules", nargs="+", default=["every", "adaptive"])
    parser.add_argument("--runtimes", nargs="+", default=["auto"], help="detector runtimes (default auto)")
    parser.add_argument("--batches", nargs="+", default=["auto"],
                        help="detector batch sizes (default auto: 4 frames per call on a CPU)")
    parser.add_argument("--server-encodes", action="store_true",
                        help="the servers encode every frame as they serve it (on this machine's cores)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from pipelines.assets import demo_pose_model

    model = args.model or str(demo_pose_model())
    with tempfile.TemporaryDirectory() as tmp:
        log = None if args.server_encodes else PushLog(Path(tmp))
        once = None if log is None else str(log.folder)
        still = RtspServer(still_video(Path(tmp) / "still.mp4"), encode_once=once,
                           mounts=tuple(f"/still{i}" for i in range(args.still)) or ("/none",)).start()
        busy = RtspServer(SHARED / "people-walking_1280x720.mp4", encode_once=once, fps=25.0,
                          mounts=(*(f"/busy{i}" for i in range(args.busy)), "/floor")).start()
        try:
            urls = {**{f"still{i}": still.url_for(f"/still{i}") for i in range(args.still)},
                    **{f"busy{i}": busy.url_for(f"/busy{i}") for i in range(args.busy)}}
            print(f"{args.still} still + {args.busy} busy RTSP cameras, 1280x720 at 25 fps, "
                  f"{'encoded as served on this machine' if log is None else 'encoded once at start'}; model "
                  f"{Path(model).name} imgsz {args.imgsz}; {os.cpu_count()} CPUs; {args.seconds:.0f} s each "
                  f"({WARMUP_S:.0f} s warm-up not counted)")
            # its own mount: a server may keep a session a client left without TEARDOWN, feeding it on
            floor = bare_client_p95(busy.url_for("/floor"), log, "floor")
            print(f"a bare PyAV client gets each frame p95 {1000 * floor:.0f} ms after capture (FFmpeg's floor)")
            results = {label(s, r, b, args): run(urls, s, model, args.imgsz, args.seconds, r, b)
                       for r in args.runtimes for b in args.batches for s in args.schedules}
            for res in results.values():  # the servers' logs are complete once the runs are over
                res["rows"] = {k: capture_ages(k, v, log) for k, v in res["raw"].items()}

        finally:
            still.kill()
            busy.kill()
    base: dict[tuple[str, str], float] = {}  # (runtime, kind) -> fps of that runtime's first schedule
    width = max(10, *(len(k) for k in results))
    print(f"{'schedule':<{width}} {'cameras':<6} {'fps/camera':>10} {'x every':>7} {'detected':>8} {'p95 ms':>7} "
          f"{'x inference':>11} {'p95 in ms':>9} {'cpu s/s':>7}")
    for schedule, res in results.items():
        for kind in ("still", "busy"):
            cams = [k for k in res["rows"] if k.startswith(kind)]
            if not cams:
                continue
            fps = float(np.mean([len(res["rows"][k]) / res["span"] for k in cams]))
            ages = [a for k in cams for _, a, _, _ in res["rows"][k]]
            det = [d for k in cams for _, _, d, _ in res["rows"][k]]
            inside = [a for k in cams for _, _, _, a in res["rows"][k]]
            p95 = float(np.percentile(ages, 95)) if ages else float("nan")
            p95_in = float(np.percentile(inside, 95)) if inside else float("nan")
            runtime = schedule.partition(" ")[2]  # the runtime and batch: ratios against every's of the same
            base.setdefault((runtime, kind), fps)
            print(f"{schedule:<{width}} {kind:<6} {fps:>10.1f} {fps / base[(runtime, kind)]:>7.2f} "
                  f"{(np.mean(det) if det else float('nan')):>8.2f} {1000 * p95:>7.0f} "
                  f"{p95 / res['inference_s']:>11.1f} {1000 * p95_in:>9.0f} {res['cpu_per_s']:>7.2f}")
        print(f"{'':<{width}} one inference (median, this run): {1000 * res['inference_s']:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

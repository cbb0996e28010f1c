"""Soak test: does anything grow with running time? RSS and Python object counts over a long realtime run.

Runs ``trackstream run`` in this process (so its Python objects can be counted) on a looping file
(``source.loop``) played at its own rate (``source.realtime``), with the real detector and every output
on: annotated video, JSONL (rotated every minute), MOT, events file, Redis Streams, zones and a counting
line, state snapshots and the Prometheus endpoint. Everything is written to a temporary folder that is
deleted at the end. Usage::

    python benchmarks/soak.py [--video FILE] [--model FILE] [--imgsz 320] [--minutes 20] [--warmup 3]
                              [--interval 30] [--redis URL] [--tracemalloc]

Redis: ``--redis URL`` publishes there; without it a private ``redis-server`` is started on a free
loopback port when the binary is installed (else Redis is left out, and the output says so).

Every ``--interval`` seconds it samples the resident set size (``VmRSS``), ``len(gc.get_objects())`` and the
frames processed (read from the metrics endpoint, as an operator would). It prints the samples, then, for
the samples after the warm-up (the first ``--warmup`` minutes of processing, counted from the first processed
frame, so a slow model load does not eat into it): RSS growth first -> last, the least-squares slopes of RSS
(MB/min) and object count (objects/min), the object types that grew most, and the verdict against the
target: growth after warm-up <= 5 MB over the run. ``--tracemalloc`` also lists the source lines whose
allocations grew most after warm-up (slower: use it on a short run to find what grows).

Quick check that it works: ``python benchmarks/soak.py --minutes 1.5 --warmup 0.5 --interval 10``.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

TARGET_MB = 5.0
JSONL_ROTATE_S = 60.0


@dataclass
class Sample:
    minutes: float      # since the run was started (model loading included)
    rss_mb: float       # VmRSS = anon_mb + file_mb (+ shmem)
    anon_mb: float      # RssAnon: heap, stacks, anonymous maps -- where a leak shows
    file_mb: float      # RssFile: pages of mapped files (shared libraries' code paged in as it is first used)
    objects: int        # objects tracked by the garbage collector
    frames_in: int      # frames read from the source (realtime: one per video frame due)
    frames_out: int     # frames fully processed
    dropped: int        # frames the detector could not keep up with (latest-frame policy)


def memory_mb() -> tuple[float, float, float]:
    """(VmRSS, RssAnon, RssFile) of this process in MB, from /proc/self/status."""
    values: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024.0
    if "VmRSS" not in values:
        raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")
    return values["VmRSS"], values.get("RssAnon", 0.0), values.get("RssFile", 0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


_METRIC = re.compile(r"^(trackstream_frames_(?:in|out|dropped)_total)\{[^}]*\}\s+([0-9.e+]+)$", re.MULTILINE)


def scrape(port: int) -> dict[str, int] | None:
    """Frames in/out/dropped (summed over sources) from the Prometheus endpoint; None while it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return None
    totals = {"in": 0, "out": 0, "dropped": 0}
    for name, value in _METRIC.findall(text):
        key = name[len("trackstream_frames_"):-len("_total")]
        totals[key] += int(float(value))
    return totals


def type_counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


class RedisServer:
    """A private ``redis-server`` on a free loopback port, nothing persisted; stopped by ``close()``."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def video_size(path: str) -> tuple[int, int]:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def build(args: argparse.Namespace, video: str, model: str, out: Path, redis_url: str | None,
          metrics_port: int) -> Any:
    """The soak config: looping realtime file, every output, a zone and a line across the frame."""
    from pipelines.config import build_config

    w, h = video_size(video)
    data: dict[str, Any] = {
        "source": {"loop": True, "realtime": True},
        "sources": [{"url": video, "id": "soak"}],
        "detector": {"model": model, "imgsz": args.imgsz},
        "output": {"video": str(out / "soak.mp4"), "jsonl": str(out / "soak.jsonl"),
                   "jsonl_rotate_seconds": JSONL_ROTATE_S, "mot": str(out / "soak_mot.txt"),
                   "events": str(out / "soak_events.jsonl")},
        "zones": [{"name": "left", "polygon": [[0, 0], [w // 2, 0], [w // 2, h - 1], [0, h - 1]]}],
        "lines": [{"name": "middle", "points": [[w // 2, 0], [w // 2, h - 1]]}],
        "state": {"dir": str(out / "state")},
        "metrics": {"port": metrics_port},
    }
    if redis_url:
        data["redis"] = {"url": redis_url}
    for part in args.without:  # "redis" is left out by passing no redis_url
        if part in ("zones", "lines", "state"):
            data.pop(part)
        elif part in data["output"]:
            data["output"].pop(part)
    return build_config(data)


class Sampler(threading.Thread):
    """Samples every ``interval`` seconds; after ``minutes`` sends this process SIGINT, which the run's own
    signal handling turns into a graceful stop (outputs flushed), exactly as Ctrl-C would."""

    def __init__(self, args: argparse.Namespace, metrics_port: int, done: threading.Event) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.args, self.port, self.done = args, metrics_port, done
        self.samples: list[Sample] = []
        self.types_after_warmup: collections.Counter[str] | None = None
        self.trace_after_warmup: Any = None
        self.traced_after_warmup = 0  # bytes the Python allocator held then (tracemalloc)
        self.stop_sent_at: float | None = None
        self.first_frame_min: float | None = None  # minutes from the start to the first processed frame
        self.started = time.monotonic()

    @property
    def warmup_end(self) -> float | None:
        """Minutes from the start after which samples count (None before the first frame was processed)."""
        return None if self.first_frame_min is None else self.first_frame_min + self.args.warmup

    def sample(self) -> Sample:
        minutes = (time.monotonic() - self.started) / 60.0
        frames = scrape(self.port) or {"in": 0, "out": 0, "dropped": 0}
        s = Sample(minutes, *memory_mb(), len(gc.get_objects()), frames["in"], frames["out"], frames["dropped"])
        self.samples.append(s)
        print(f"  {s.minutes:7.2f} {s.rss_mb:9.1f} {s.anon_mb:9.1f} {s.file_mb:9.1f} {s.objects:10d} "
              f"{s.frames_in:9d} {s.frames_out:9d} {s.dropped:9d}", flush=True)
        return s

    def run(self) -> None:
        interval, total_s = self.args.interval, self.args.minutes * 60.0
        next_at = self.started
        while not self.done.is_set():
            now = time.monotonic()
            if self.first_frame_min is None and (scrape(self.port) or {}).get("out"):
                self.first_frame_min = (now - self.started) / 60.0
            if now >= next_at:
                s = self.sample()
                next_at += interval
                end = self.warmup_end
                if self.types_after_warmup is None and end is not None and s.minutes >= end:
                    self.types_after_warmup = type_counts()
                    if self.args.tracemalloc:
                        import tracemalloc

                        self.trace_after_warmup = tracemalloc.take_snapshot()
                        self.traced_after_warmup = tracemalloc.get_traced_memory()[0]
            elapsed = time.monotonic() - self.started
            # Stop once the time is up -- but not before the run is under way (its SIGINT handler installed).
            if elapsed >= total_s and self.stop_sent_at is None and (self.samples[-1].frames_out or
                                                                      elapsed >= total_s + 120):
                if elapsed / 60.0 - self.samples[-1].minutes > 1 / 60.0:
                    self.sample()  # the last one, at the end of the run
                self.stop_sent_at = time.monotonic()
                os.kill(os.getpid(), signal.SIGINT)
            self.done.wait(min(1.0, max(0.05, next_at - time.monotonic())))


def report(args: argparse.Namespace, sampler: Sampler, run_seconds: float) -> bool:
    """Print the analysis; True when the target is met."""
    samples = sampler.samples
    end = sampler.warmup_end
    post = [s for s in samples if end is not None and s.minutes >= end]
    print()
    last = samples[-1] if samples else None
    if last is not None:
        active = max(1e-9, last.minutes * 60.0)
        print(f"frames: {last.frames_out} processed, {last.frames_in} read, {last.dropped} dropped "
              f"in {last.minutes:.2f} min = {last.frames_out / active:.2f} fps processed "
              f"({last.frames_in / active:.2f} fps read; model loading included)")
    if len(post) < 2:
        print(f"too few samples after the {args.warmup} min warm-up ({len(post)}): run longer or sample more "
              "often")
        print(f"target: growth after warm-up <= {TARGET_MB:g} MB: FAIL (not measured)")
        return False
    xs = [s.minutes for s in post]
    growth = post[-1].rss_mb - post[0].rss_mb
    rss_slope = slope(xs, [s.rss_mb for s in post])
    obj_slope = slope(xs, [float(s.objects) for s in post])
    span = post[-1].minutes - post[0].minutes
    fps_post = (post[-1].frames_out - post[0].frames_out) / max(1e-9, span * 60.0)
    print(f"after warm-up (first frame at {sampler.first_frame_min:.2f} min, then {args.warmup:g} min excluded; "
          f"{len(post)} samples over {span:.2f} min, "
          f"{fps_post:.2f} fps processed):")
    print(f"  RSS:     {post[0].rss_mb:.1f} -> {post[-1].rss_mb:.1f} MB, growth {growth:+.1f} MB, "
          f"slope {rss_slope:+.3f} MB/min (peak {max(s.rss_mb for s in post):.1f} MB)")
    for label, values in (("anon", [s.anon_mb for s in post]), ("file", [s.file_mb for s in post])):
        print(f"    {label}:  {values[0]:.1f} -> {values[-1]:.1f} MB, growth {values[-1] - values[0]:+.1f} MB, "
              f"slope {slope(xs, values):+.3f} MB/min")
    print(f"  objects: {post[0].objects} -> {post[-1].objects}, growth {post[-1].objects - post[0].objects:+d}, "
          f"slope {obj_slope:+.1f} objects/min")
    if sampler.types_after_warmup is not None:
        grown = type_counts()
        grown.subtract(sampler.types_after_warmup)
        top = [(name, n) for name, n in grown.most_common(8) if n > 0]
        print("  object types grown most since warm-up: " +
              (", ".join(f"{name} {n:+d}" for name, n in top) if top else "none"))
    if sampler.trace_after_warmup is not None:
        import tracemalloc

        stats = tracemalloc.take_snapshot().compare_to(sampler.trace_after_warmup, "lineno")
        traced = tracemalloc.get_traced_memory()[0]
        print(f"  tracemalloc: Python allocations {sampler.traced_after_warmup / 2**20:.1f} -> {traced / 2**20:.1f} MB "
              f"({(traced - sampler.traced_after_warmup) / 2**20:+.2f} MB); lines grown most since warm-up:")
        for stat in [st for st in stats if st.size_diff > 0][:15]:
            print(f"    {stat}")
    passed = growth <= TARGET_MB
    print(f"target: growth after warm-up <= {TARGET_MB:g} MB: {'PASS' if passed else 'FAIL'} "
          f"({growth:+.1f} MB over {span:.1f} min; run took {run_seconds / 60:.1f} min)")
    return passed


PARTS = ("video", "jsonl", "mot", "events", "zones", "lines", "state", "redis")


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p for p in text.replace(" ", "").split(",") if p)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--video", help="video file (default: the bundled bikes.mp4)")
    parser.add_argument("--model", help="weights (default: the bundled YOLO11n-pose model)")
    parser.add_argument("--imgsz", type=int, default=320, help="detector input size (default 320)")
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the run (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="minutes at the start left out of the growth figures (default 3)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--redis", metavar="URL", help="publish to this Redis (default: a private redis-server "
                                                       "if installed)")
    parser.add_argument("--without", type=_parts, default=(), metavar="PARTS",
                        help=f"leave these out, comma-separated, to find what grows: {', '.join(PARTS)}")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace allocations and list the lines that grew most after warm-up (slow)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.warmup < 0:
        parser.error("--minutes and --interval must be > 0, --warmup >= 0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ultralytics").setLevel(logging.WARNING)

    from pipelines.assets import demo_pose_model, demo_video
    from pipelines.commands.run import execute

    video = args.video or str(demo_video())
    model = args.model or str(demo_pose_model())
    out = Path(tempfile.mkdtemp(prefix="trackstream-soak-"))
    server: RedisServer | None = None
    redis_url = args.redis
    redis_note = f"given ({redis_url})" if redis_url else ""
    if "redis" in args.without:
        redis_url, redis_note = None, "OFF (--without redis)"
    elif not redis_url:
        binary = shutil.which("redis-server")
        if binary:
            server = RedisServer(binary)
            redis_url = server.url
            redis_note = f"private redis-server {binary} on 127.0.0.1:{server.port}"
        else:
            redis_note = "OFF: no --redis URL and no redis-server binary installed"
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(10)
    try:
        metrics_port = free_port()
        config = build(args, video, model, out, redis_url, metrics_port)
        print(f"soak: {Path(video).name} looping in realtime, model {Path(model).name} imgsz {args.imgsz}, "
              f"{args.minutes:g} min (warm-up {args.warmup:g} min), sample every {args.interval:g} s")
        print(f"outputs: annotated video, JSONL (rotated every {JSONL_ROTATE_S:g} s), MOT, events, zone + line, "
              f"state snapshots, metrics :{metrics_port}; Redis: {redis_note}; in {out} (deleted at the end)"
              + (f"; WITHOUT {', '.join(args.without)}" if args.without else ""))
        print(f"  {'minutes':>7} {'RSS MB':>9} {'anon MB':>9} {'file MB':>9} {'objects':>10} "
              f"{'frames_in':>9} {'frames_out':>9} {'dropped':>9}", flush=True)
        done = threading.Event()
        sampler = Sampler(args, metrics_port, done)
        sampler.start()
        started = time.monotonic()
        try:
            code = execute(config, quiet=True)
        finally:
            done.set()
            sampler.join(timeout=30)
        run_seconds = time.monotonic() - started
        if sampler.stop_sent_at is None:
            print(f"the run ended on its own after {run_seconds / 60:.2f} min (exit code {code}), before "
                  f"--minutes {args.minutes:g}: the figures cover a shorter run")
        passed = report(args, sampler, run_seconds)
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(out, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

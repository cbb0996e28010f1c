"""Cost of publishing tracks to Redis Streams: the RedisSink against a naive one-XADD-per-call peer.

Starts its own redis-server on a free port (no persistence), publishes frames with 50 tracks each
(box, velocity, predicted path, 17 pose keypoints) through

- ``RedisSink``: documents built in the caller's thread, JSON + pipelined ``XADD``s (``transaction=False``)
  in the sink's background thread;
- the naive peer: the same documents and JSON encoder, one blocking ``XADD`` round trip per entry in the
  caller's thread,

and prints per-frame costs, frames/s and their ratio. Usage::

    python benchmarks/redis_publish.py [--frames 2000] [--tracks 50] [--no-keypoints]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.processing.events import EventGenerator  # noqa: E402
from pipelines.frames import FrameResult, VideoFrame  # noqa: E402
from pipelines.sinks.records import frame_record  # noqa: E402
from pipelines.sinks.redis_conn import RedisConfig  # noqa: E402
from pipelines.sinks.redis_publisher import _dumps  # noqa: E402
from pipelines.sinks.redis_sink import RedisSink  # noqa: E402
from tracker.types import Detections, Tracks  # noqa: E402


def results(n_frames: int, n_tracks: int, keypoints: bool) -> list[FrameResult]:
    rng = np.random.default_rng(0)
    image = np.zeros((720, 1280, 3), np.uint8)[:1, :1]   # records need the size only; keep memory small
    out = []
    base = rng.uniform(0, 1200, (n_tracks, 2)).astype(np.float32)
    for i in range(n_frames):
        xy = base + i * 0.5
        xyxy = np.concatenate([xy, xy + 40], axis=1)
        path = np.repeat(xy[:, None, :] + 20, 10, axis=1) + np.arange(10)[None, :, None]
        kpts = np.concatenate([np.repeat(xy[:, None, :], 17, axis=1),
                               np.full((n_tracks, 17, 1), 0.9, np.float32)], axis=2) if keypoints else None
        tracks = Tracks(xyxy, rng.uniform(0.3, 1.0, n_tracks), np.zeros(n_tracks), np.arange(1, n_tracks + 1),
                        np.arange(n_tracks), rng.normal(0, 20, (n_tracks, 2)), path,
                        np.full(n_tracks, i / 25), np.ones(n_tracks), keypoints=kpts)
        frame = VideoFrame(image, i, i / 25, "bench", time.time())
        out.append(FrameResult(frame, Detections.empty(), tracks, {0: "person"}))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit("redis-server did not start")


def bench_sink(url: str, frames: list[FrameResult]) -> tuple[list[float], float, float]:
    sink = RedisSink(RedisConfig(url=url, source_id="sink", on_unreachable="fail",
                                 buffer_max_entries=len(frames) * 2), "bench")
    costs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for r in frames:
        t = time.perf_counter()
        sink.write(r)
        costs.append(time.perf_counter() - t)
    sink.close()                      # waits until Redis has stored everything
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    if sink.stats.dropped:
        raise SystemExit(f"sink dropped {sink.stats.dropped} entries")
    return costs, total, cpu


def bench_naive(port: int, frames: list[FrameResult]) -> tuple[list[float], float, float]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    events = EventGenerator("naive")
    costs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for r in frames:
        t = time.perf_counter()
        rec = frame_record(r, with_times=True, numpy_values=True)
        rec["publish_time"] = time.time()
        client.xadd("trackstream:naive:frames", {"data": _dumps(rec)}, maxlen=10000, approximate=True)
        for ev in events.update(r):
            ev["publish_time"] = time.time()
            client.xadd("trackstream:naive:events", {"data": _dumps(ev)}, maxlen=100000, approximate=True)
        costs.append(time.perf_counter() - t)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    client.close()
    return costs, total, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--no-keypoints", action="store_true")
    args = ap.parse_args()
    frames = results(args.frames, args.tracks, not args.no_keypoints)
    size = len(json.dumps(frame_record(frames[0], with_times=True), separators=(",", ":")))
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(tmp)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            bench_sink(url, frames[:100])                                   # warm-up
            sink_costs, sink_total, sink_cpu = bench_sink(url, frames)
            naive_costs, naive_total, naive_cpu = bench_naive(port, frames)
        finally:
            proc.kill()
            proc.wait()
    n = len(frames)
    sink_med, naive_med = statistics.median(sink_costs) * 1e3, statistics.median(naive_costs) * 1e3
    print(f"{n} frames x {args.tracks} tracks, {size / 1024:.1f} KiB JSON per frame; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"RedisSink (pipelined, background thread): write() median {sink_med:.3f} ms/frame "
          f"(p99 {np.percentile(sink_costs, 99) * 1e3:.3f} ms); end to end {sink_total / n * 1e3:.3f} ms/frame, "
          f"{n / sink_total:.0f} frames/s; CPU {sink_cpu / n * 1e3:.3f} ms/frame")
    print(f"naive (one XADD per call, caller's thread): median {naive_med:.3f} ms/frame; "
          f"{n / naive_total:.0f} frames/s; CPU {naive_cpu / n * 1e3:.3f} ms/frame")
    print(f"ratio naive/sink: {naive_med / sink_med:.1f}x per frame in the pipeline thread, "
          f"{(n / sink_total) / (n / naive_total):.2f}x end-to-end throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main())

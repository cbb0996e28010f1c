"""Cost of publishing a source's results to MQTT, next to the Redis sink, on the same frames in the same run.

Starts its own mosquitto and redis-server on free loopback ports (no persistence) and feeds each sink the
same precomputed results: 50 tracks per frame (box, velocity, predicted path, 17 pose keypoints), tracks
that start and end all the time, one zone and one counting line, with the events and counts a source's
processor attaches (computed before timing: the processor's work is not the sink's). Measured per sink:

- ``write()`` in the pipeline's thread (median and p99): what the camera's lane pays per frame;
- end to end (until ``close()`` has delivered everything): frames/s one sink sustains;
- CPU of the whole process (caller and background threads) per frame.

Sinks: ``MqttSink`` (events, QoS 1; counts retained on change), the same with the per-frame tracks summary,
``RedisSink`` with events only, and ``RedisSink`` as configured by default (frame records and events).
Usage::

    python benchmarks/mqtt_publish.py [--frames 2000] [--tracks 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.frames import FrameResult, StatusKind, StreamStatus, VideoFrame  # noqa: E402
from pipelines.processing.events import EventGenerator  # noqa: E402
from pipelines.processing.zones import LineConfig, ZoneConfig  # noqa: E402
from pipelines.sinks.mqtt import MqttSink  # noqa: E402
from pipelines.sinks.mqtt_conn import MqttConfig  # noqa: E402
from pipelines.sinks.redis_conn import RedisConfig  # noqa: E402
from pipelines.sinks.redis_sink import RedisSink  # noqa: E402
from tracker.types import Detections, Tracks  # noqa: E402

ZONE = ZoneConfig("middle", ((400, 200), (880, 200), (880, 520), (400, 520)))
LINE = LineConfig("road", ((640, 0), (640, 720)))
LIFE = 100          # frames each track lives: with 50 tracks about one starts and one ends per frame


def results(n_frames: int, n_tracks: int) -> list[FrameResult]:
    """Frames of ``n_tracks`` walkers crossing the picture left to right; each is replaced by a new id after
    ``LIFE`` frames (staggered), so events flow every frame. Events and counts attached as a processor does."""
    rng = np.random.default_rng(0)
    image = np.zeros((720, 1280, 3), np.uint8)[:1, :1]   # the sinks need no pixels
    rows = rng.uniform(0, 680, n_tracks)
    gen = EventGenerator("bench", (ZONE,), (LINE,))
    out = []
    for i in range(n_frames):
        k = np.arange(n_tracks)
        age = (i + k * LIFE // n_tracks) % LIFE
        ids = 1 + k + n_tracks * ((i + k * LIFE // n_tracks) // LIFE)
        x = age * (1240 / LIFE)
        xy = np.stack([x, rows], axis=1).astype(np.float32)
        xyxy = np.concatenate([xy, xy + 40], axis=1)
        path = np.repeat(xy[:, None, :] + 20, 10, axis=1) + np.arange(10)[None, :, None]
        kpts = np.concatenate([np.repeat(xy[:, None, :], 17, axis=1),
                               np.full((n_tracks, 17, 1), 0.9, np.float32)], axis=2)
        removed = ids[age == LIFE - 1]
        tracks = Tracks(xyxy, rng.uniform(0.3, 1.0, n_tracks), np.zeros(n_tracks), ids, np.arange(n_tracks),
                        rng.normal(0, 20, (n_tracks, 2)), path, np.full(n_tracks, i / 25), np.ones(n_tracks),
                        keypoints=kpts, removed_ids=removed.astype(np.int64))
        frame = VideoFrame(image, i, i / 25, "bench", time.time())
        result = FrameResult(frame, Detections.empty(), tracks, {0: "person"})
        out.append(dataclasses.replace(result, events=tuple(gen.update(result)), counts=gen.counts()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, what: str) -> None:
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} did not start")


def start_servers(workdir: str) -> tuple[list[subprocess.Popen[bytes]], int, int]:
    mq_port, redis_port = free_port(), free_port()
    conf = Path(workdir) / "mosquitto.conf"
    conf.write_text(f"listener {mq_port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
                    f"user {getpass.getuser()}\n")   # started as root, mosquitto would switch to its own user
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    redis = shutil.which("redis-server") or "/usr/bin/redis-server"
    procs = [subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    wait_port(mq_port, "mosquitto")
    wait_port(redis_port, "redis-server")
    return procs, mq_port, redis_port


def bench(make: Callable[[], Any], frames: list[FrameResult]) -> tuple[list[float], float, float, int]:
    """Per-frame write() costs, end-to-end seconds, CPU seconds, and the messages published."""
    sink = make()
    sink.status(StreamStatus(StatusKind.STARTED, "bench", time.time()))
    costs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for r in frames:
        t = time.perf_counter()
        sink.write(r)
        costs.append(time.perf_counter() - t)
    sink.close()                      # waits until the server has everything
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = sink.stats
    if stats.dropped:
        raise SystemExit(f"{type(sink).__name__} dropped {stats.dropped} entries")
    return costs, total, cpu, stats.published


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--tracks", type=int, default=50)
    args = ap.parse_args()
    frames = results(args.frames, args.tracks)
    n = len(frames)
    events = sum(len(r.events) for r in frames)
    with tempfile.TemporaryDirectory() as tmp:
        procs, mq_port, redis_port = start_servers(tmp)
        mq, rd = f"mqtt://127.0.0.1:{mq_port}", f"redis://127.0.0.1:{redis_port}/0"
        big = n * 60
        sinks = {
            "MqttSink (events QoS 1, counts on change)":
                lambda: MqttSink(MqttConfig(url=mq, buffer_max_entries=big), "bench", ["middle"], ["road"]),
            "MqttSink + tracks summary every frame":
                lambda: MqttSink(MqttConfig(url=mq, buffer_max_entries=big, tracks_interval=0), "bench",
                                 ["middle"], ["road"]),
            "RedisSink events only":
                lambda: RedisSink(RedisConfig(url=rd, publish_frames=False, buffer_max_entries=big), "bench"),
            "RedisSink frames + events (default)":
                lambda: RedisSink(RedisConfig(url=rd, buffer_max_entries=big), "bench"),
        }
        try:
            bench(next(iter(sinks.values())), frames[:100])                      # warm-up
            rows = [(name, *bench(make, frames)) for name, make in sinks.items()]
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print(f"{n} frames x {args.tracks} tracks (17 keypoints each), {events / n:.1f} events per frame, one zone "
          f"and one line; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'sink':44s} {'write() median':>14s} {'p99':>9s} {'end to end':>11s} {'frames/s':>9s} "
          f"{'CPU/frame':>10s} {'messages':>9s}")
    for name, costs, total, cpu, published in rows:
        print(f"{name:44s} {statistics.median(costs) * 1e3:11.3f} ms {np.percentile(costs, 99) * 1e3:6.3f} ms "
              f"{total / n * 1e3:8.3f} ms {n / total:9.0f} {cpu / n * 1e3:7.3f} ms {published:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Costs of the event history (``--db``/``--media``): writes per frame, searches, clips, and snapshot choice.

1. **write**: frames of 50 moving tracks (1280x720, a counting line, events from the real EventGenerator)
   through the store sink. Measured: the processing thread's cost per frame (putting the result into the
   sink's queue, as the engine does, while the sink thread writes), the sink thread's ``write`` per frame
   (rows only; with snapshots and the clip ring), against the JSONL sink (a record of every track of every
   frame) on the same frames. The
   processing thread is measured with frames handed over at a camera's pace (``--fps``) and flat out.
2. **query**: ``--events`` rows (10 cameras, 5 lines, spread over 30 days) written to SQLite and to a private
   PostgreSQL server (started here with initdb on a free port when its binaries exist), then the newest
   page (100 rows) of a one-hour, one-camera, one-line window: p50/p95 over ``--queries`` random windows;
   on SQLite the same queries without the (source, line, time) index as the peer.
3. **clip**: CPU ms to encode one clip (``clip_before + clip_after`` s at 25 fps from 1280x720 frames scaled
   to 640 px) and the ring's per-frame downscale.
4. **snapshot**: bikes.mp4 through the real detector and tracker; each track's chosen view against a random
   view of the same track (mean of ``--draws`` draws): box area, sharpness (Tenengrad, a measure the picker
   does not use, at the crop's own resolution and with crops scaled to 128 px) and confidence.

Usage::

    python benchmarks/event_store.py [--frames 500] [--tracks 50] [--fps 25] [--events 200000] [--queries 200]
                                     [--no-postgres] [--snapshot-frames 250] [--skip write,query,clip,snapshot]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.frames import FrameResult, VideoFrame  # noqa: E402
from pipelines.processing.events import EventGenerator, LineConfig  # noqa: E402
from tracker.types import Detections, Tracks  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# -- 1. write cost ------------------------------------------------------------------------------------------
def frames_of_tracks(n_frames: int, n_tracks: int, fps: float = 25.0) -> list[FrameResult]:
    rng = np.random.default_rng(0)
    import cv2

    pictures = [cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (9, 9), 3) for _ in range(4)]
    start = rng.uniform([0, 0], [1100, 600], (n_tracks, 2))
    speed = rng.uniform(-4, 4, (n_tracks, 2))
    gen = EventGenerator("cam", lines=[LineConfig(name="gate", points=((640.0, 0.0), (640.0, 720.0)))])
    t0 = time.time()
    out = []
    for i in range(n_frames):
        xy = np.clip(start + speed * i, 0, [1180, 620]).astype(np.float32)
        xyxy = np.concatenate([xy, xy + [60, 100]], axis=1).astype(np.float32)
        n = n_tracks
        tracks = Tracks(xyxy, np.full(n, 0.8, np.float32), np.zeros(n, np.int64), np.arange(1, n + 1),
                        np.arange(n), np.zeros((n, 2), np.float32), np.zeros((n, 1, 2), np.float32),
                        np.zeros(n, np.float32), np.ones(n, np.int64))
        frame = VideoFrame(pictures[i % 4], i, i / fps, "cam", t0 + i / fps)
        result = FrameResult(frame, Detections.empty(), tracks, {0: "person"}, stream_time=t0 + i / fps)
        out.append(FrameResult(frame, result.detections, tracks, result.class_names, tuple(gen.update(result)),
                               stream_time=result.stream_time))
    return out


def time_writes(sink: Any, results: list[FrameResult]) -> list[float]:
    out = []
    for result in results:
        t = time.perf_counter()
        sink.write(result)
        out.append((time.perf_counter() - t) * 1000)
    sink.close()
    return out


def processing_thread_cost(make_sink: Callable[[], Any], results: list[FrameResult], fps: float) -> list[float]:
    """Per-frame cost on the producing thread: SinkQueue.put (block policy) with an outlet thread writing,
    frames handed over at ``fps`` like a camera's (0: as fast as possible)."""
    from pipelines.engine.outlet import END, Outlet
    from pipelines.engine.sinkqueue import SinkQueue
    from pipelines.sinks.base import DropPolicy

    sink = make_sink()
    queue: Any = SinkQueue(32, DropPolicy.BLOCK)
    outlet = Outlet("store", sink, queue)
    thread = threading.Thread(target=outlet.run, args=(lambda exc: None,), daemon=True)
    thread.start()
    costs = []
    start = time.perf_counter()
    for i, result in enumerate(results):
        if fps:
            time.sleep(max(0.0, start + i / fps - time.perf_counter()))
        t = time.perf_counter()
        queue.put(result)
        costs.append((time.perf_counter() - t) * 1000)
    queue.put(END)
    thread.join()
    return costs


def bench_write(args: argparse.Namespace, work: Path) -> None:
    from pipelines.sinks.jsonl import JsonlSink
    from pipelines.sinks.store import StoreSink
    from pipelines.store.config import StoreConfig

    results = frames_of_tracks(args.frames, args.tracks)
    events = sum(len(r.events) for r in results)
    print(f"== write: {args.frames} frames x {args.tracks} tracks (1280x720), {events} events")
    rows_only = StoreConfig(db=str(work / "w1.db"))
    media = StoreConfig(db=str(work / "w2.db"), media=str(work / "media"))
    base = time_writes(JsonlSink(work / "frames.jsonl"), results)
    cases = [("JSONL frame records (peer)", base),
             ("store, rows only", time_writes(StoreSink(rows_only, "cam"), results)),
             ("store + snapshots + clip ring", time_writes(StoreSink(media, "cam"), results))]
    for name, values in cases:
        print(f"  sink thread  {name:<30} mean {statistics.mean(values):6.3f} ms/frame  p95 {pct(values, 95):6.3f}"
              f"  ({statistics.mean(values) / statistics.mean(base):5.2f}x JSONL)")
    for n, fps in enumerate((args.fps, 0.0)):
        config = StoreConfig(db=str(work / f"w{n}.db"), media=str(work / f"m{n}"))
        ptc = processing_thread_cost(lambda: StoreSink(config, "cam"), results, fps)  # noqa: B023 - called at once
        pace = f"at {fps:g} fps" if fps else "flat out (the sink's own pace)"
        print(f"  processing thread, store + media on, {pace}: mean {statistics.mean(ptc):.3f} ms/frame, "
              f"p50 {pct(ptc, 50):.3f}, p95 {pct(ptc, 95):.3f} (target <= 1 ms)")


# -- 2. query time ------------------------------------------------------------------------------------------
def synthetic_rows(n: int, seed: int = 1) -> tuple[list[dict[str, Any]], float]:
    rng = np.random.default_rng(seed)
    t_end = time.time()
    span = 30 * 86400
    times = np.sort(rng.uniform(t_end - span, t_end, n))
    sources = rng.integers(0, 10, n)
    kinds = rng.choice(["line_crossed", "zone_entered", "track_started", "track_ended"], n, p=[.3, .2, .25, .25])
    lines = rng.integers(0, 5, n)
    rows = []
    for i in range(n):
        kind = str(kinds[i])
        rows.append({"source_id": f"cam{sources[i]}", "event": kind, "time": float(times[i]), "pts": float(i % 3600),
                     "stream_time": float(times[i]), "frame_index": i, "track_id": int(i % 5000) + 1,
                     "class_name": "person", "zone": "yard" if kind == "zone_entered" else None,
                     "line": f"line{lines[i]}" if kind == "line_crossed" else None,
                     "direction": "left_to_right" if kind == "line_crossed" else None, "clip": None,
                     "doc": '{"schema_version":1,"event":"%s","source_id":"cam%d"}' % (kind, sources[i]),
                     "replay_key": f"{i}:{kind}"})
    return rows, t_end


def fill(db: str, rows: list[dict[str, Any]]) -> float:
    from pipelines.store.db import open_engine
    from pipelines.store.schema import migrate
    from pipelines.store.writer import write_rows

    engine = open_engine(db, writer=True)
    with engine.begin() as conn:
        migrate(conn)
    t = time.perf_counter()
    for i in range(0, len(rows), 20000):
        with engine.begin() as conn:
            write_rows(conn, [("event", r) for r in rows[i:i + 20000]])
    took = time.perf_counter() - t
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE events")
        else:
            conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    return took


def time_queries(db: str, windows: list[tuple[str, str, float]]) -> list[float]:
    from pipelines.store.db import open_engine
    from pipelines.store.query import EventFilter, search_events

    engine = open_engine(db)
    out = []
    with engine.connect() as conn:
        search_events(conn, EventFilter(limit=1))
        for source, line, since in windows:
            t = time.perf_counter()
            search_events(conn, EventFilter(sources=(source,), line=line, since=since, until=since + 3600, limit=100))
            out.append((time.perf_counter() - t) * 1000)
            conn.rollback()
    engine.dispose()
    return out


def bench_query(args: argparse.Namespace, work: Path) -> None:
    print(f"== query: {args.events} events, 10 cameras, 5 lines, 30 days; newest 100 rows of a one-hour, "
          f"one-camera, one-line window, {args.queries} random windows")
    rows, t_end = synthetic_rows(args.events)
    rng = np.random.default_rng(2)
    windows = [(f"cam{rng.integers(0, 10)}", f"line{rng.integers(0, 5)}", float(rng.uniform(t_end - 30 * 86400,
                                                                                          t_end - 3600)))
               for _ in range(args.queries)]
    targets: list[tuple[str, str]] = [("SQLite", str(work / "q.db"))]
    server: Optional[Any] = None
    if not args.no_postgres:
        server = PrivatePostgres.start(work)
        if server is not None:
            targets.append(("PostgreSQL", server.url))
    try:
        for name, db in targets:
            took = fill(db, rows)
            times = time_queries(db, windows)
            print(f"  {name:<10} insert {len(rows) / took:9.0f} rows/s   query p50 {pct(times, 50):6.2f} ms  "
                  f"p95 {pct(times, 95):6.2f} ms  max {max(times):6.2f} ms  (target p95 <= 50 ms)")
            if name == "SQLite":
                import sqlite3

                few = windows[: max(5, args.queries // 10)]
                for dropped, what in ((["ix_events_source_line_time"], "only the (source, time) index"),
                                      (["ix_events_source_time", "ix_events_source_zone_time",
                                        "ix_events_source_track", "ix_events_time"], "no index (a table scan)")):
                    with sqlite3.connect(db) as conn:
                        for index in dropped:
                            conn.execute(f"DROP INDEX {index}")
                    scan = time_queries(db, few)
                    ratio = pct(scan, 50) / max(pct(times, 50), 1e-6)
                    print(f"  SQLite, {what + ' (peer)':<40} p50 {pct(scan, 50):7.2f} ms p95 {pct(scan, 95):7.2f} ms"
                          f"  ({ratio:.1f}x the indexed p50)")
    finally:
        if server is not None:
            server.stop()


class PrivatePostgres:
    """initdb + postgres on a free loopback port (as the postgres user when run as root)."""

    def __init__(self, proc: "subprocess.Popen[bytes]", url: str, root: Path) -> None:
        self.proc, self.url, self.root = proc, url, root

    @classmethod
    def start(cls, work: Path) -> Optional["PrivatePostgres"]:
        import glob
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            print("  (no PostgreSQL binaries: PostgreSQL skipped)")
            return None
        root = Path(tempfile.mkdtemp(prefix="trackstream-bench-pg-"))
        kwargs: dict[str, Any] = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        if kwargs:
            shutil.chown(root, "postgres", "postgres")
        (root / "pw").write_text("bench")
        if kwargs:
            shutil.chown(root / "pw", "postgres", "postgres")
        subprocess.run([f"{bins[-1]}/initdb", "-D", str(root / "data"), "-U", "bench", f"--pwfile={root / 'pw'}",
                        "--auth=scram-sha-256", "--no-sync"], check=True, capture_output=True, **kwargs)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([f"{bins[-1]}/postgres", "-D", str(root / "data"), "-p", str(port), "-h",
                                 "127.0.0.1", "-k", str(root), "-c", "fsync=off"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, **kwargs)
        url = f"postgresql://bench:bench@127.0.0.1:{port}/postgres"
        import psycopg

        for _ in range(100):
            try:
                psycopg.connect(url, connect_timeout=1).close()
                return cls(proc, url, root)
            except psycopg.OperationalError:
                time.sleep(0.1)
        proc.kill()
        raise RuntimeError("postgres did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


# -- 3. clip cost -------------------------------------------------------------------------------------------
def bench_clip(args: argparse.Namespace, work: Path) -> None:
    from pipelines.store.clips import ClipRecorder, encode_clip

    results = frames_of_tracks(int(25 * (args.clip_before + args.clip_after)) + 10, 10)
    clips: list[Any] = []
    rec = ClipRecorder(args.clip_before, args.clip_after, 640, 30.0, clips.append)
    adds = []
    for i, result in enumerate(results):
        t = time.perf_counter()
        rec.add(result)
        adds.append((time.perf_counter() - t) * 1000)
        if i == int(25 * args.clip_before):
            rec.mark(float(result.frame.pts), 1, "clip.mp4")
    rec.close()
    clip = clips[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    encode_clip(clip, work / "clip.mp4")
    cpu, wall = (time.process_time() - cpu0) * 1000, (time.perf_counter() - wall0) * 1000
    size = (work / "clip.mp4").stat().st_size
    print(f"== clip: {len(clip.frames)} frames ({args.clip_before:g} s before + {args.clip_after:g} s after) at 640 px")
    print(f"  encode one clip: {cpu:.0f} ms CPU ({wall:.0f} ms wall), {size / 1024:.0f} KiB; "
          f"ring downscale {statistics.mean(adds):.3f} ms/frame on the sink thread")


# -- 4. snapshot choice -------------------------------------------------------------------------------------
def tenengrad(image: np.ndarray, box: tuple[int, int, int, int], side: int = 0) -> float:
    """Mean squared Sobel gradient of the box's grey crop, at its own resolution or scaled to ``side`` px."""
    import cv2

    x1, y1, x2, y2 = box
    crop = image[y1:y2, x1:x2]
    if side:
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return float(np.mean(gx * gx + gy * gy))


def bench_snapshot(args: argparse.Namespace, work: Path) -> None:
    from pipelines.api import process
    from pipelines.assets import demo_video
    from pipelines.store.snapshots import SnapshotPicker, clip_box

    video = args.snapshot_video or str(demo_video())
    picker = SnapshotPicker()
    views: dict[int, list[tuple[np.ndarray, tuple[int, int, int, int], float]]] = {}
    chosen: dict[int, Any] = {}
    cost = []
    for result in process(video, max_frames=args.snapshot_frames):
        t = time.perf_counter()
        picker.observe(result)
        cost.append((time.perf_counter() - t) * 1000)
        h, w = result.frame.image.shape[:2]
        tr = result.tracks
        for i in np.flatnonzero(tr.matched):
            box, _ = clip_box(tr.xyxy[i].tolist(), w, h)
            if box[2] > box[0] and box[3] > box[1]:
                views.setdefault(int(tr.track_id[i]), []).append((result.frame.image, box, float(tr.confidence[i])))
    for tid in list(views):
        chosen[tid] = picker.take(tid)
    rng = np.random.default_rng(3)

    def measure(image: np.ndarray, box: tuple[int, int, int, int], conf: float) -> tuple[float, ...]:
        return float((box[2] - box[0]) * (box[3] - box[1])), tenengrad(image, box), tenengrad(image, box, 128), conf

    picked, random_ = [], []
    for tid, seen in views.items():
        if chosen.get(tid) is None or len(seen) < 3:
            continue
        view = chosen[tid]
        picked.append(measure(view.image, view.box, view.confidence))
        draws = [measure(*seen[int(rng.integers(len(seen)))]) for _ in range(args.draws)]
        random_.append(tuple(float(np.mean([d[k] for d in draws])) for k in range(4)))
    p, r = np.mean(picked, axis=0), np.mean(random_, axis=0)
    print(f"== snapshot: {Path(video).name}, {args.snapshot_frames} frames, {len(picked)} tracks seen in >= 3 frames; "
          f"chosen view vs a random view of the same track ({args.draws} draws)")
    for k, name in enumerate(("box area px^2", "Tenengrad, own resolution", "Tenengrad at 128 px", "confidence")):
        print(f"  {name:<26} chosen {p[k]:10.2f}   random {r[k]:10.2f}   ratio {p[k] / r[k]:5.2f}x")
    wins = [np.mean([c[k] > q[k] for c, q in zip(picked, random_)]) for k in range(4)]
    print(f"  chosen above the random mean for {wins[0]:.0%} of tracks (area), {wins[1]:.0%} / {wins[2]:.0%} "
          f"(sharpness), {wins[3]:.0%} (confidence); picker cost {statistics.mean(cost):.3f} ms/frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--tracks", type=int, default=50)
    parser.add_argument("--fps", type=float, default=25.0, help="pace of frames for the processing-thread cost")
    parser.add_argument("--events", type=int, default=200000, help="rows for the query test (1000000 for the target)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--clip-before", type=float, default=3.0)
    parser.add_argument("--clip-after", type=float, default=2.0)
    parser.add_argument("--snapshot-video", default=None)
    parser.add_argument("--snapshot-frames", type=int, default=250)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: write,query,clip,snapshot")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    with tempfile.TemporaryDirectory(prefix="trackstream-bench-") as tmp:
        work = Path(tmp)
        for name, part in (("write", bench_write), ("query", bench_query), ("clip", bench_clip),
                           ("snapshot", bench_snapshot)):
            if name not in skip:
                part(args, work)


if __name__ == "__main__":
    main()

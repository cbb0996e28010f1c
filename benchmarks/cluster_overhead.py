"""What ``--engine ray`` costs per frame against the local engine, for 1 and 4 cameras on one machine.

Every mode watches the same real cameras (the RTSP test server playing bikes.mp4 at 25 fps on 1 or 4
mounts) with the real YOLO11n-pose model on the CPU, saves snapshots to a private redis-server
(``--state redis://``, every 1 s) and writes JSONL; modes differ only in the engine:

    local            trackstream run CAMERAS                          (one process)
    ray, N actors    trackstream run --engine ray CAMERAS             (embedded Ray: an actor per camera)
    ray, 1 actor     ... --engine ray --cameras-per-actor 4           (one actor with both CPUs, shared
                                                                      detector batches)
Each actor's detector uses the CPUs Ray reserved for it (``cluster.cpus_per_actor``).

After a warm-up (every camera has frames, then 3 s more) each mode is measured for ``--seconds``: frames/s
processed (JSONL lines) and CPU ms per processed frame of the whole process tree (driver, Ray's own
processes and workers: every descendant, sampled), and, for Ray, the snapshot size and writes per second
per camera (Redis STRLEN and SET calls). Usage::

    python benchmarks/cluster_overhead.py [--seconds 20] [--imgsz 320] [--repeat 1]

Target: at 4 cameras, ray CPU per frame <= 1.10 x local (same run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

from pipelines.assets import demo_video  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.live.conftest import RtspServer  # noqa: E402
from tests.redis.conftest import RedisServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class TreeCpu:
    """CPU seconds of a process and all its descendants, dead ones included (last value seen)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.seen: dict[int, float] = {}

    def sample(self) -> float:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for proc in procs:
            try:
                t = proc.cpu_times()
                self.seen[proc.pid] = t.user + t.system
            except psutil.Error:
                pass
        return sum(self.seen.values())


def lines(paths: list[Path]) -> list[int]:
    out = []
    for p in paths:
        try:
            out.append(p.read_bytes().count(b"\n"))
        except OSError:
            out.append(0)
    return out


def measure(name: str, urls: list[str], extra: list[str], cluster: dict[str, object], redis: RedisServer, db: int,
            seconds: float, imgsz: int, work: Path) -> dict[str, float]:
    out = work / name.replace(" ", "_").replace(",", "")
    out.mkdir(parents=True)
    ids = [f"c{k + 1}" for k in range(len(urls))]
    jsonl = [out / f"{i}.jsonl" for i in ids]
    config = out / "config.yaml"
    config.write_text(json.dumps({"sources": [{"id": i, "url": u} for i, u in zip(ids, urls)], **cluster}))
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config),
           "--jsonl", str(out / "{source}.jsonl"), "--state", f"redis://127.0.0.1:{redis.port}/{db}",
           "--state-interval", "1", "--imgsz", str(imgsz), "--quiet", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update({"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"})
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(REPO))
    tree = TreeCpu(proc.pid)
    try:
        deadline = time.monotonic() + 180
        while min(lines(jsonl)) < 10:
            tree.sample()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name}: no frames ({proc.stderr.read()[-2000:] if proc.stderr else ''})")
            time.sleep(0.5)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            tree.sample()
            time.sleep(0.5)
        import redis as redis_lib

        stats = redis_lib.Redis(port=redis.port, db=db)
        sets0 = int(stats.info("commandstats").get("cmdstat_set", {}).get("calls", 0))
        t0, cpu0, n0 = time.monotonic(), tree.sample(), sum(lines(jsonl))
        end = t0 + seconds
        while time.monotonic() < end:
            tree.sample()
            time.sleep(0.5)
        t1, cpu1, n1 = time.monotonic(), tree.sample(), sum(lines(jsonl))
        sets1 = int(stats.info("commandstats").get("cmdstat_set", {}).get("calls", 0))
        sizes = [int(stats.strlen(f"trackstream:state:{i}")) for i in ids]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
    frames = max(1, n1 - n0)
    return {"fps": frames / (t1 - t0), "cpu_ms": (cpu1 - cpu0) * 1000 / frames,
            "snapshot_bytes": statistics.mean(sizes) if sizes else 0.0,
            # SET calls of the whole server: snapshots (and the restart counters at start, before the window)
            "writes_per_s": (sets1 - sets0) / (t1 - t0) / len(ids)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server not found (bash scripts/test.sh installs it)")
    work = Path(tempfile.mkdtemp(prefix="overhead-"))
    redis = RedisServer(redis_bin, free_port(), work)
    redis.start()
    server = RtspServer(demo_video(), mounts=("/c1", "/c2", "/c3", "/c4")).start()
    urls4 = [server.url_for(m) for m in ("/c1", "/c2", "/c3", "/c4")]
    ray = ["--engine", "ray"]
    modes: list[tuple[str, list[str], list[str], dict[str, object]]] = [
        ("local, 1 camera", urls4[:1], [], {}),
        ("ray, 1 camera", urls4[:1], ray, {}),
        ("local, 4 cameras", urls4, [], {}),
        ("ray, 4 cameras, 4 actors", urls4, ray, {"cluster": {"cpus_per_actor": 0.5}}),  # 4 actors fit 2 CPUs
        ("ray, 4 cameras, 1 actor", urls4, [*ray, "--cameras-per-actor", "4"], {"cluster": {"cpus_per_actor": 2}}),
    ]
    results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in modes}
    try:
        for round_ in range(args.repeat):
            for db, (name, urls, extra, cluster) in enumerate(modes, start=1):
                res = measure(name, urls, extra, cluster, redis, db, args.seconds, args.imgsz, work / f"r{round_}")
                results[name].append(res)
                print(f"round {round_ + 1} {name:<26} {res['fps']:6.1f} frames/s  {res['cpu_ms']:6.1f} CPU ms/frame",
                      flush=True)
    finally:
        server.kill()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"\n{'mode':<26} {'frames/s':>9} {'CPU ms/frame':>13} {'vs local':>9} {'snapshot':>10} {'writes/s':>9}")
    base: Optional[float] = None
    for name, *_ in modes:
        if name.startswith("local"):
            base = med(name, "cpu_ms")
        ratio = med(name, "cpu_ms") / base if base else 1.0
        snap = f"{med(name, 'snapshot_bytes') / 1024:.1f} KiB"
        print(f"{name:<26} {med(name, 'fps'):9.1f} {med(name, 'cpu_ms'):13.1f} {ratio:8.2f}x {snap:>10} "
              f"{med(name, 'writes_per_s'):9.2f}")
    four_local = med("local, 4 cameras", "cpu_ms")
    best = min(med("ray, 4 cameras, 4 actors", "cpu_ms"), med("ray, 4 cameras, 1 actor", "cpu_ms"))
    verdict = "PASS" if best <= 1.10 * four_local else "FAIL"
    print(f"\ntarget: ray CPU per frame at 4 cameras <= 1.10 x local: {verdict} ({best / four_local:.2f}x, best ray "
          f"grouping)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

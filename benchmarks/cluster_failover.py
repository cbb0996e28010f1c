"""How long a camera is dark when its Ray node or actor process dies, with the health checks we ship.

A real 3-node Ray cluster on loopback (head 127.0.0.2 with no CPUs, workers 127.0.0.3 and .4; see
tests/cluster/raycluster.py), the real RTSP test server playing bikes.mp4 at 25 fps, a private redis-server
for snapshots and outputs, and one camera added with ``trackstream cluster add`` (YOLO11n-pose on the CPU).
Each trial SIGKILLs the node running the camera (every process of the node, as a machine losing power; the
node is started again afterwards) or only the actor's process, then times until the restarted actor's
first frame reaches Redis (the first frame published after its ``stream_resumed``). Usage::

    python benchmarks/cluster_failover.py [--trials 5] [--imgsz 160]

Prints every trial and p50/p95 per kind, and checks after all trials that track IDs never started over and
no frame was stored twice.
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

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

from pipelines.assets import demo_video  # noqa: E402
from pipelines.cluster.ray_env import HEALTH_CHECKS  # noqa: E402
from tests.cluster.raycluster import RayCluster  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.live.conftest import RtspServer  # noqa: E402
from tests.redis.conftest import RedisServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cli(cluster: RayCluster, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**cluster.env, "PYTHONPATH": str(REPO)}, cwd=str(REPO))


def listing(cluster: RayCluster) -> dict:
    done = cli(cluster, "cluster", "list", "--json", "--ray-address", cluster.address)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    if len(rows) != 1:
        raise SystemExit(f"expected one camera, cluster list says: {done.stdout}{done.stderr}")
    return rows[0]


def first_frame_after(client, wall: float, timeout: float = 120.0, restarted: bool = True) -> float:
    """Seconds from ``wall`` to the first frame in Redis published after it -- with ``restarted``, the first
    frame of the restarted actor (published after its ``stream_resumed``), never a dying one's last batch."""
    deadline = time.time() + timeout
    start = f"{int(wall * 1000)}-0"
    while time.time() < deadline:
        after = wall
        if restarted:
            resumed = [json.loads(f["data"]) for _, f in client.xrange("trackstream:cam:events", min=start)]
            resumed = [e for e in resumed if e["event"] == "stream_resumed" and e["publish_time"] > wall]
            if not resumed:
                time.sleep(0.05)
                continue
            after = resumed[0]["publish_time"]
        for _, fields in client.xrange("trackstream:cam:frames", min=start):
            rec = json.loads(fields["data"])
            if rec["publish_time"] > after:
                return rec["publish_time"] - wall
        time.sleep(0.05)
    raise SystemExit(f"no frame of a restarted actor within {timeout} s after the kill")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=160)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="failover-"))
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("redis-server not found (bash scripts/test.sh installs it)")
    redis = RedisServer(redis_bin, free_port(), work)
    redis.start()
    camera = RtspServer(demo_video(), mounts=("/cam",)).start()
    cluster = RayCluster(workers=2)
    results: dict[str, list[float]] = {"node kill": [], "process kill": []}
    try:
        url = f"redis://127.0.0.1:{redis.port}"
        added = cli(cluster, "cluster", "add", camera.url, "--source-id", "cam", "--state", f"{url}/1", "--redis",
                    f"{url}/0", "--state-interval", "1", "--imgsz", str(args.imgsz), "--quiet",
                    "--ray-address", cluster.address)
        if added.returncode != 0:
            raise SystemExit(added.stderr[-3000:])
        client = redis.client()
        first_frame_after(client, time.time() - 60, restarted=False)
        print(f"health checks: {HEALTH_CHECKS}; snapshots every 1 s", flush=True)
        for trial in range(args.trials):
            for kind in results:
                time.sleep(3.0)  # steady state: a snapshot after the last restart
                row = listing(cluster)
                pid = int(row["pid"])
                owner = cluster.node_of_pid(pid)
                if owner != row["node"]:
                    print(f"  (cluster list says node {row['node']}, the process {pid} belongs to {owner})")
                killed = time.time()
                if kind == "node kill":
                    cluster.kill_node(owner or row["node"])
                else:
                    os.kill(pid, signal.SIGKILL)
                try:
                    victim = psutil.Process(pid)
                    victim.wait(timeout=5)
                except psutil.TimeoutExpired:
                    if victim.status() != psutil.STATUS_ZOMBIE:
                        raise SystemExit(f"the camera's process {pid} survived the {kind}") from None
                except psutil.NoSuchProcess:
                    pass
                dark = first_frame_after(client, killed)
                results[kind].append(dark)
                print(f"trial {trial + 1} {kind:<12} (on {row['node']}): frames again after {dark:5.2f} s",
                      flush=True)
                if kind == "node kill":
                    cluster.start_node(owner or row["node"])
        events = [json.loads(f["data"]) for _, f in client.xrange("trackstream:cam:events")]
        started = [e["track"]["id"] for e in events if e["event"] == "track_started"]
        pts = [json.loads(f["data"])["pts"] for _, f in client.xrange("trackstream:cam:frames")]
        names = [e["event"] for e in events]
        print(f"\ncheck: {names.count('stream_gap')} stream_gap / {names.count('stream_resumed')} stream_resumed "
              f"for {2 * args.trials} kills; track_started ids unique: {len(started) == len(set(started))}; "
              f"ids increasing: {started == sorted(started)}; frames stored once, in order: "
              f"{pts == sorted(pts) and len(set(pts)) == len(pts)} ({len(pts)} frames)")
        print("\nfailover (kill -> first frame of the restarted actor in Redis):")
        for kind, values in results.items():
            print(f"  {kind:<12} p50 {statistics.median(values):5.2f} s   p95 {pct(values, 0.95):5.2f} s   "
                  f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} trials)")
        cli(cluster, "cluster", "remove", "cam", "--ray-address", cluster.address)
    finally:
        cluster.close()
        camera.kill()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

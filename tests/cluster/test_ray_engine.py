"""``--engine ray`` and ``trackstream cluster`` on a real multi-node Ray cluster (loopback addresses only),
with the real RTSP test server, a real redis-server and the real YOLO11n-pose model on the CPU."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

COMMON = ("--imgsz", "160", "--quiet")


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_time(value: Any) -> Any:
    """``value`` without the wall-clock ``time`` keys (at any depth: ``last_seen.time`` too)."""
    if isinstance(value, dict):
        return {k: _without_time(v) for k, v in value.items() if k != "time"}
    if isinstance(value, list):
        return [_without_time(v) for v in value]
    return value


def _lines(path: Path) -> int:
    """Lines written to ``path`` so far; 0 while it is missing (the run's start-up check that an output can be
    written creates the file and removes it again, so a file seen a moment ago may be gone)."""
    try:
        return len(path.read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def _wait(what: str, check: Callable[[], bool], timeout: float, step: float = 0.3) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_files_on_ray_equal_the_local_engine(ray_cluster, bikes_video, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(bikes_video, archive / name)
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        extra = ("--engine", "ray", "--ray-address", ray_cluster.address) if engine == "ray" else ()
        done = run_cli("run", str(archive), "--jsonl", str(out / "t.jsonl"), "--mot", str(out / "t.txt"),
                       "--events", str(out / "e.jsonl"), "--max-frames", "50", *COMMON, *extra,
                       env=ray_cluster.env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outs[engine] = (out, done.stderr)
    (local, _), (ray_out, ray_err) = outs["local"], outs["ray"]
    assert "2 files over 2 workers" in ray_err
    for source in ("a", "b"):
        jsonl = (ray_out / f"t_{source}.jsonl").read_bytes()
        assert len(jsonl.splitlines()) == 50
        assert jsonl == (local / f"t_{source}.jsonl").read_bytes()
        assert (ray_out / f"t_{source}.txt").read_bytes() == (local / f"t_{source}.txt").read_bytes()
        # events carry the wall-clock time they happened; everything else is the same
        assert _without_time(_events(ray_out / f"e_{source}.jsonl")) == \
            _without_time(_events(local / f"e_{source}.jsonl"))
        assert f"{source}: 50 frames" in ray_err and f"wrote {ray_out / f't_{source}.jsonl'}" in ray_err


def test_a_scheduled_source_on_ray_predicts_the_frames_it_does_not_detect(ray_cluster, bikes_video, tmp_path):
    out = tmp_path / "ray"
    done = run_cli("run", str(bikes_video), "--jsonl", str(out / "t.jsonl"), "--schedule", "interval:3",
                   "--max-frames", "40", "--imgsz", "320", "--engine", "ray", "--ray-address", ray_cluster.address,
                   env=ray_cluster.env, timeout=300)  # the bikes' first person is found at frame 31
    assert done.returncode == 0, done.stderr[-3000:]
    recs = _events(out / "t.jsonl")
    assert [r["frame_index"] for r in recs] == list(range(40))  # every frame still comes out
    detected = sum(r["detected"] for r in recs)
    assert 13 <= detected < 40  # every 3rd frame, and the next after one that started a track
    assert f"detector on {detected} ({100 * detected / 40:.0f}%), {40 - detected} frames predicted" in done.stderr
    predicted = [t for r in recs if not r["detected"] for t in r["tracks"]]
    assert predicted and all(t["predicted"] and t["confidence"] == 0 for t in predicted)


GATE = "[{name: gate, points: [[400, 0], [400, 300]]}]"   # bikes.mp4's cyclists cross x=400 at frames 31-44


def test_actors_on_two_nodes_write_one_postgresql_database(ray_cluster, pg_url, bikes_video, tmp_path):
    from pipelines.store.db import open_engine

    config, media = tmp_path / "gate.yaml", tmp_path / "media"
    entries = []
    for name in ("a", "b"):
        shutil.copy(bikes_video, tmp_path / f"{name}.mp4")
        entries.append(f"  - {{id: {name}, url: {tmp_path / f'{name}.mp4'}, lines: {GATE}}}\n")
    config.write_text("sources:\n" + "".join(entries))
    done = run_cli("run", "--config", str(config), "--db", pg_url, "--media", str(media),
                   "--max-frames", "50", *COMMON, "--engine", "ray", "--ray-address", ray_cluster.address,
                   env=ray_cluster.env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 files over 2 workers" in done.stderr
    engine = open_engine(pg_url)
    with engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT source_id, doc, clip FROM events ORDER BY id").fetchall()
        tracks = conn.exec_driver_sql("SELECT source_id, track_id, snapshot, snapshot_frame FROM tracks").fetchall()
    engine.dispose()
    docs = {s: [json.loads(doc) for source, doc, _ in events if source == s] for s in ("a", "b")}
    assert {source for source, _, _ in events} == {"a", "b"}
    for source, got in docs.items():
        assert got[0]["event"] == "stream_started" and got[-1]["event"] == "stream_ended"
        assert any(d["event"] == "line_crossed" and d["line"] == "gate" for d in got), source
        keys = [(d["event"], d.get("track_id"), d.get("frame_index"), d.get("line"), d.get("zone")) for d in got]
        assert len(keys) == len(set(keys)), f"{source}: an event was stored twice"
    # the same video on two actors: the same history, apart from the source and the wall clock
    strip = [{k: v for k, v in _without_time(d).items() if k != "source_id"} for d in docs["a"]]
    assert strip == [{k: v for k, v in _without_time(d).items() if k != "source_id"} for d in docs["b"]]
    ids = [(source, track) for source, track, _, _ in tracks]
    assert len(ids) == len(set(ids)), "a track was stored twice"
    assert {source for source, _ in ids} == {"a", "b"}
    assert sorted(t for s, t in ids if s == "a") == sorted(t for s, t in ids if s == "b")
    snapshots = [(snap, frame) for _, _, snap, frame in tracks if snap is not None]
    assert snapshots, "no track has a snapshot"
    for snap, frame in snapshots:
        assert (media / snap).stat().st_size > 0 and (media / frame).stat().st_size > 0
    clips = [clip for _, doc, clip in events if json.loads(doc)["event"] == "line_crossed"]
    assert clips and all(clip is not None for clip in clips)
    for clip in set(clips):
        assert (media / clip).stat().st_size > 0


def test_embedded_ray_without_a_cluster(bikes_video, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    full = {**env, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--engine", "ray", str(bikes_video),
                           "--jsonl", str(tmp_path / "t.jsonl"), "--max-frames", "12", "--imgsz", "160"],
                          capture_output=True, text=True, timeout=300, env=full, cwd=str(REPO))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "started an embedded Ray for this run" in done.stderr
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 12


def test_live_view_is_refused_with_ray_in_one_line(bikes_video, tmp_path):
    done = run_cli("run", "--engine", "ray", str(bikes_video), "--http", "8089", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("trackstream: error: --http and --metrics-port serve one")


def test_bad_model_is_one_line_from_every_actor_kind(ray_cluster, cluster_redis, bikes_video, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_text("not a model")
    expected = f"cannot load model {bad}"
    files = run_cli("run", "--engine", "ray", "--ray-address", ray_cluster.address, str(bikes_video), "--model",
                    str(bad), "--jsonl", str(tmp_path / "t.jsonl"), "--quiet", env=ray_cluster.env, timeout=300)
    assert files.returncode == 2 and "Traceback" not in files.stderr, files.stderr[-3000:]
    assert files.stderr.strip().splitlines()[-1].startswith(f"trackstream: error: {expected}")
    added = run_cli("cluster", "add", "rtsp://127.0.0.1:9/none", "--source-id", "broken", "--model", str(bad),
                    "--state", f"redis://127.0.0.1:{cluster_redis.port}/5", "--ray-address", ray_cluster.address,
                    "--quiet", env=ray_cluster.env, timeout=300)
    assert added.returncode == 2 and "Traceback" not in added.stderr, added.stderr[-3000:]
    assert added.stderr.strip().splitlines()[-1].startswith(
        f"trackstream: error: camera broken did not start: {expected}"), added.stderr[-3000:]
    assert _listing(ray_cluster) == []  # nothing left behind


def test_cluster_add_warns_of_a_state_folder_before_connecting(tmp_path):  # type: ignore[no-untyped-def]
    """`run --engine ray` warned that a folder is seen only on shared storage; `cluster add`, whose actors always
    run on other nodes, took it without a word."""
    done = run_cli("cluster", "add", "rtsp://127.0.0.1:9/none", "--state", str(tmp_path / "state"),
                   "--ray-address", "127.0.0.1:1", "--jsonl", str(tmp_path / "t.jsonl"), timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"--state {tmp_path / 'state'} is a folder: an actor restarted on another node" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("trackstream: error: cannot reach the Ray cluster")


@pytest.mark.parametrize("verb", [("list",), ("remove", "gate")])
def test_a_ray_address_with_a_password_is_refused_without_showing_it(verb):  # type: ignore[no-untyped-def]
    done = run_cli("cluster", *verb, "--ray-address", "admin:S3cret-ray-pw@127.0.0.1:1", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "S3cret-ray-pw" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == ["trackstream: error: --ray-address 127.0.0.1:1: expected HOST:PORT "
                                                "of the cluster's head (GCS), without a user or password"]


def test_missing_ray_extra_is_one_line(bikes_video, tmp_path):
    # Simulated: CI installs Ray, so "not installed" is produced by blocking its import (sys.modules["ray"]
    # = None makes `import ray` raise ImportError, exactly what a missing package raises).
    code = ("import sys; sys.modules['ray'] = None; from pipelines.cli import main; "
            f"sys.exit(main(['run', '--engine', 'ray', {str(bikes_video)!r}, '--jsonl', "
            f"{str(tmp_path / 't.jsonl')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "trackstream: error: --engine ray needs Ray, an optional extra: pip install 'trackstream[ray]'")
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ cameras as actors


def _loopback_only(cluster) -> list[str]:
    """Connections of the cluster's processes to anything but 127.0.0.0/8 (must be none)."""
    bad = []
    for proc in cluster.processes():
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for conn in conns:
            if not conn.raddr:
                continue
            ip = ipaddress.ip_address(conn.raddr.ip)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if not ip.is_loopback:
                bad.append(f"{proc.name()} -> {conn.raddr.ip}:{conn.raddr.port}")
    return bad


class _Camera:
    """Reads what the camera actor publishes to Redis (frames and events streams of source ``cam``)."""

    def __init__(self, redis_server) -> None:
        self.client = redis_server.client()
        self.frames_key, self.events_key = "trackstream:cam:frames", "trackstream:cam:events"

    def frames(self) -> list[tuple[str, dict[str, Any]]]:
        return [(i, json.loads(f["data"])) for i, f in self.client.xrange(self.frames_key)]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(f["data"]) for _, f in self.client.xrange(self.events_key)]

    def frames_after(self, wall: float) -> int:
        return sum(1 for _, rec in self.frames() if rec["publish_time"] > wall)


def _listing(cluster) -> list[dict[str, Any]]:
    done = run_cli("cluster", "list", "--json", "--ray-address", cluster.address, env=cluster.env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def _track_ids(events: list[dict[str, Any]]) -> list[int]:
    return [e["track"]["id"] for e in events if e["event"] == "track_started"]


def test_camera_actor_survives_node_death_and_process_death(ray_cluster, cluster_redis, gst_ready, bikes_video,
                                                             tmp_path):
    from tests.live.conftest import RtspServer

    camera = RtspServer(bikes_video, mounts=("/cam",), user="viewer", password="S3cret-cam-pw").start()
    redis_url = f"redis://127.0.0.1:{cluster_redis.port}"
    cam = _Camera(cluster_redis)
    try:
        added = run_cli("cluster", "add", camera.url, "--source-id", "cam", "--state", f"{redis_url}/1",
                        "--redis", f"{redis_url}/0", "--state-interval", "0.5", *COMMON,
                        "--ray-address", ray_cluster.address, env=ray_cluster.env, timeout=300)
        assert added.returncode == 0, added.stderr[-3000:]
        assert added.stdout.strip() == "added cam"
        _wait("frames with a track", lambda: len(cam.frames()) >= 40 and _track_ids(cam.events()), 120)
        assert _loopback_only(ray_cluster) == []

        for round_, kill in enumerate(("node", "process"), start=1):
            (row,) = _listing(ray_cluster)
            assert row["state"] == "live" and row["restarts"] == round_ - 1
            before_ids = set(_track_ids(cam.events()))
            time.sleep(1.2)  # a snapshot (every 0.5 s) covers the tracks seen so far
            killed_at = time.time()
            if kill == "node":
                ray_cluster.kill_node(row["node"])
            else:
                os.kill(int(row["pid"]), signal.SIGKILL)
            took = _wait("frames from the restarted actor",
                         lambda t=killed_at: cam.frames_after(t + 0.5) >= 10, 120)
            print(f"{kill} kill: frames again after {took:.1f} s")
            (after,) = _listing(ray_cluster)
            assert after["restarts"] == round_ and after["state"] == "live"
            if kill == "node":
                assert after["node"] != row["node"]
                ray_cluster.start_node(row["node"])  # the machine comes back (capacity for later tests)
            events = cam.events()
            names = [e["event"] for e in events]
            assert names.count("stream_started") == 1  # a restart is never a new stream
            assert names.count("stream_gap") == round_ and names.count("stream_resumed") == round_
            gap = max(i for i, n in enumerate(names) if n == "stream_gap")
            assert names[gap + 1] == "stream_resumed" and events[gap + 1]["detail"]["gap_seconds"] > 0
            ids = _track_ids(events)
            assert len(ids) == len(set(ids)), "a continuing track was announced twice"
            new_ids = set(ids) - before_ids
            assert not new_ids or min(new_ids) > max(before_ids), "track IDs started again from the beginning"

        frames = cam.frames()
        pts = [rec["pts"] for _, rec in frames]
        assert pts == sorted(pts) and len(set(pts)) == len(pts), "a frame was stored twice or out of order"
        assert all(rec["source_id"] == "cam" for _, rec in frames)
        published = json.dumps(frames) + json.dumps(cam.events())
        assert "S3cret-cam-pw" not in published
        logs = [p for p in Path(ray_cluster.temp).rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
        assert logs and not [p for p in logs if b"S3cret-cam-pw" in p.read_bytes()], "the password is in a log"

        removed = run_cli("cluster", "remove", "cam", "--ray-address", ray_cluster.address, env=ray_cluster.env,
                          timeout=180)
        assert removed.returncode == 0 and removed.stdout.strip() == "removed cam", removed.stderr[-2000:]
        assert _listing(ray_cluster) == []
        import redis

        saved = redis.Redis(port=cluster_redis.port, db=1).get("trackstream:state:cam")
        assert saved is not None and json.loads(saved)["processor"]["frames_processed"] >= 40  # re-adding continues
        again = run_cli("cluster", "remove", "cam", "--ray-address", ray_cluster.address, env=ray_cluster.env)
        assert again.returncode == 2 and "no camera cam on the cluster" in again.stderr
    finally:
        camera.kill()
        run_cli("cluster", "remove", "cam", "--ray-address", ray_cluster.address, env=ray_cluster.env)


def test_file_job_whose_node_dies_equals_an_unbroken_run(ray_cluster, cluster_redis, bikes_video, tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copy(bikes_video, video)
    unbroken = tmp_path / "unbroken"
    done = run_cli("run", str(video), "--jsonl", str(unbroken / "t.jsonl"), "--mot", str(unbroken / "t.txt"),
                   *COMMON, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--engine", "ray", "--ray-address", ray_cluster.address,
           str(video), "--jsonl", str(out / "t.jsonl"), "--mot", str(out / "t.txt"),
           "--state", f"redis://127.0.0.1:{cluster_redis.port}/2", "--state-interval", "0.5", *COMMON]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ray_cluster.env, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    try:
        jsonl = out / "t.jsonl"
        _wait("the file half processed", lambda: _lines(jsonl) >= 100,
              180, step=0.05)
        workers = [p for p in ray_cluster.processes() if "FileWorker" in " ".join(p.cmdline() or [p.name()])]
        assert len(workers) == 1
        node = ray_cluster.node_of_pid(workers[0].pid)
        assert node is not None
        ray_cluster.kill_node(node)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    ray_cluster.start_node(node)
    assert proc.returncode == 0, stderr[-3000:]
    assert (out / "t.jsonl").read_bytes() == (unbroken / "t.jsonl").read_bytes()
    assert (out / "t.txt").read_bytes() == (unbroken / "t.txt").read_bytes()
    assert f"wrote {out / 't.jsonl'}" in stderr


def test_run_groups_cameras_per_actor_and_stops_them(ray_cluster, cluster_redis, gst_ready, bikes_video, tmp_path):
    from tests.live.conftest import RtspServer

    camera = RtspServer(bikes_video, mounts=("/a", "/b")).start()
    out = tmp_path / "out"
    config = tmp_path / "cams.yaml"
    config.write_text(json.dumps({"sources": [{"id": "a", "url": camera.url_for("/a")},
                                              {"id": "b", "url": camera.url_for("/b")}]}))
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--engine", "ray", "--ray-address", ray_cluster.address,
           "--config", str(config), "--cameras-per-actor", "2", "--jsonl", str(out / "{source}.jsonl"),
           "--state", f"redis://127.0.0.1:{cluster_redis.port}/4", *COMMON]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ray_cluster.env, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    try:
        _wait("both cameras writing", lambda: all(_lines(out / f"{s}.jsonl") >= 5 for s in ("a", "b")), 180)
        rows = _listing(ray_cluster)
        assert sorted(r["source_id"] for r in rows) == ["a", "b"]
        assert {r["actor"] for r in rows} == {"camera:a+b"}  # one actor, one model, shared detector batches
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the actors stop after the frames in flight
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        camera.kill()
    assert proc.returncode == 0, stderr[-3000:]
    for source in ("a", "b"):
        written = len((out / f"{source}.jsonl").read_bytes().splitlines())
        assert f"{source}: {written} frames" in stderr
    assert _listing(ray_cluster) == []  # the run removed its actors

"""A real multi-node Ray cluster on this machine, every node on its own loopback address.

``ray start`` processes, as an operator runs them: a head on 127.0.0.2 (GCS on a free port, never 6379,
no CPUs so actors run on workers, dashboard off) and worker nodes on 127.0.0.3, 127.0.0.4, ... Each node's
``ray start --block`` runs in its own session, so ``kill_node`` SIGKILLs the node's whole process group
(raylet, workers, agents) like a machine losing power; ``close`` kills every process the cluster started,
found by pid (process groups, then descendants and anything naming the cluster's temp folder).

Usage stats are off, token authentication is on with a fresh token, and the health checks are the ones
trackstream ships (``pipelines.cluster.ray_env.HEALTH_CHECKS``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import psutil

from pipelines.cluster.ray_env import HEALTH_CHECKS
from tests.conftest import free_port

def _ray_binary() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else "ray"


class RayCluster:
    def __init__(self, workers: int = 2, object_store: int = 80_000_000) -> None:
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.port = free_port()
        self.address = f"127.0.0.2:{self.port}"
        self.object_store = object_store
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    **{f"RAY_{k}": str(v) for k, v in HEALTH_CHECKS.items()}}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.all_pids: set[int] = set()
        self._start("127.0.0.2", ["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                                  f"--temp-dir={self.temp}"])
        for k in range(workers):
            self.start_node(f"127.0.0.{3 + k}")

    def _start(self, ip: str, extra: list[str]) -> None:
        log = open(Path(self.temp) / f"node-{ip}.log", "ab")
        cmd = [_ray_binary(), "start", f"--node-ip-address={ip}", f"--object-store-memory={self.object_store}",
               "--block", *extra]
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.nodes[ip] = proc
        self.all_pids.add(proc.pid)
        self.wait_alive(ip)

    def start_node(self, ip: str, cpus: int = 1) -> None:
        """Start (or restart) the worker node on ``ip``; returns once the cluster counts it alive."""
        self._start(ip, [f"--address={self.address}", f"--num-cpus={cpus}"])

    def alive(self) -> set[str]:
        """Addresses of the nodes the cluster counts alive (a separate driver asks Ray)."""
        code = ("import ray,logging;ray.init(address=%r,logging_level=logging.ERROR);"
                "print(' '.join(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))" % self.address)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=60)
        return set(done.stdout.split())

    def wait_alive(self, ip: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.nodes[ip]
            if proc.poll() is not None:
                raise RuntimeError(f"ray start for {ip} exited with {proc.returncode}: see {self.temp}")
            if ip in self.alive():
                self._remember(proc.pid)
                return
            time.sleep(0.5)
        raise RuntimeError(f"node {ip} did not join the cluster within {timeout} s (logs in {self.temp})")

    def _remember(self, pid: int) -> None:
        try:
            self.all_pids.update(p.pid for p in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            pass

    def node_of_pid(self, pid: int) -> Optional[str]:
        """The node (``ray start`` session) a process belongs to."""
        try:
            sid = os.getsid(pid)
        except OSError:
            return None
        for ip, proc in self.nodes.items():
            if proc.poll() is None and proc.pid == sid:
                return ip
        return None

    def session(self, ip: str) -> list[psutil.Process]:
        """Every live process of the node: its ``ray start`` session (the raylet puts workers in process groups
        of their own, so the process group alone is not the node)."""
        sid = self.nodes[ip].pid
        found = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (OSError, psutil.Error):
                continue
        return found

    def kill_node(self, ip: str) -> None:
        """SIGKILL every process of the node at once, as if the machine lost power."""
        proc = self.nodes[ip]
        self._remember(proc.pid)
        for _ in range(3):  # a process forked while the first ones die is caught by the next pass
            victims = self.session(ip)
            if not victims:
                break
            self.all_pids.update(p.pid for p in victims)
            for victim in victims:
                try:
                    victim.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(victims, timeout=5)
        proc.wait(timeout=30)

    def processes(self) -> list[psutil.Process]:
        """Every live process of the cluster (by session of its nodes, or naming its temp folder)."""
        sessions = {p.pid for p in self.nodes.values()}
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue  # dead already (waiting for a parent to reap it)
                if os.getsid(proc.pid) in sessions or any(self.temp in a for a in (proc.info["cmdline"] or [])):
                    found.append(proc)
            except (OSError, psutil.Error):
                continue
        return found

    def close(self) -> None:
        for proc in self.processes():
            self.all_pids.add(proc.pid)
        for ip in list(self.nodes):
            try:
                os.killpg(self.nodes[ip].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.all_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for proc in self.nodes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.temp, ignore_errors=True)

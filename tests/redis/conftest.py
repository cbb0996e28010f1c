"""A real redis-server per test (free port, no persistence) that tests can kill and restart; synthetic results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import pytest

from pipelines.frames import FrameResult, VideoFrame
from tests.conftest import LoopbackServer, require_binary, self_signed_certificate, serve_on_a_free_port
from tracker.types import Detections, Tracks

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "pipelines" / "schemas"


class RedisServer(LoopbackServer):
    """A redis-server child process on a fixed port: ``stop()`` kills it (SIGKILL), ``start()`` brings it back."""

    name = "redis-server"

    def __init__(self, binary: str, port: int, workdir: Path, password: Optional[str] = None,
                 tls: Optional[tuple[Path, Path]] = None) -> None:
        self.binary, self.port, self.workdir, self.password = binary, port, workdir, password
        self.tls = tls    # (certificate, key) for a TLS-only server

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[0]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls[0]),
                     "--tls-key-file", str(self.tls[1]), "--tls-auth-clients", "no"]
        args = [self.binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True)


def _server(tmp_path: Path, password: Optional[str] = None,
            tls: Optional[tuple[Path, Path]] = None) -> Iterator[RedisServer]:
    binary = require_binary("redis-server")
    yield from serve_on_a_free_port(lambda port: RedisServer(binary, port, tmp_path, password, tls))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from _server(tmp_path)


@pytest.fixture
def redis_password_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from _server(tmp_path, password="Sup3r-Secret-pw")


@pytest.fixture
def redis_tls_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A TLS-only server with a fresh self-signed certificate for 127.0.0.1 (made with openssl)."""
    yield from _server(tmp_path, password="tls-Secret-5", tls=self_signed_certificate(tmp_path))


# -- synthetic results -----------------------------------------------------------------------------------
_IMAGE = np.zeros((72, 128, 3), np.uint8)


def make_result(index: int, boxes: dict[int, Sequence[float]], *, source: str = "cam", fps: float = 25.0,
                removed: Sequence[int] = (), n_tracks_pad: int = 0, keypoints: bool = False) -> FrameResult:
    """A FrameResult whose confirmed tracks are ``{track_id: [x1, y1, x2, y2]}``."""
    ids = list(boxes)
    n = len(ids)
    xyxy = np.array([boxes[i] for i in ids], np.float32).reshape(n, 4)
    path = np.repeat(((xyxy[:, :2] + xyxy[:, 2:]) / 2)[:, None, :], 5, axis=1)
    kpts = np.concatenate([np.repeat(xyxy[:, None, :2], 17, axis=1), np.ones((n, 17, 1), np.float32)], 2) \
        if keypoints else None
    tracks = Tracks(xyxy, np.full(n, 0.8, np.float32), np.zeros(n, np.int64), np.array(ids, np.int64),
                    np.arange(n), np.tile(np.array([[10.0, 0.0]], np.float32), (n, 1)), path,
                    np.zeros(n, np.float32), np.ones(n, np.int64), keypoints=kpts,
                    removed_ids=np.array(list(removed), np.int64))
    frame = VideoFrame(_IMAGE, index, index / fps, source, time.time())
    return FrameResult(frame, Detections.empty(), tracks, {0: "person"})


def scenario(n_frames: int = 56, source: str = "cam") -> list[FrameResult]:
    """Tracks that start, go missing for a few frames, come back and end at different times.

    Track k (1..6) is seen from frame 5k-5 to 5k+25 and removed by the tracker (``removed_ids``) three
    frames later; with the default 56 frames track 6 is still alive at the end. Track 2 is missing for
    frames 12-14.
    """
    out = []
    for f in range(n_frames):
        boxes, removed = {}, []
        for k in range(1, 7):
            first, last = 5 * k - 5, 5 * k + 25
            if first <= f <= last and not (k == 2 and 12 <= f <= 14):
                x = 2.0 * (f - first)
                boxes[k] = [x, 10.0 * k, x + 10, 10.0 * k + 20]
            elif f == last + 3:
                removed.append(k)
        out.append(make_result(f, boxes, source=source, removed=removed))
    return out


# -- processes ---------------------------------------------------------------------------------------------
class CliProcess:
    """``trackstream ARGS`` running in the background; stdout lines collected by a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
        self.lines: list[str] = []
        self.stderr = ""
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def docs(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.docs()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"subscriber output did not arrive in time; stderr: {self.stderr[-2000:]}")

    def finish(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout)
        self._out.join(5)
        self._err.join(5)
        return rc

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.finish()


@pytest.fixture
def cli_processes() -> Iterator[Callable[..., CliProcess]]:
    started: list[CliProcess] = []

    def start(*args: str) -> CliProcess:
        p = CliProcess(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)


@pytest.fixture(scope="session")
def validators() -> dict[str, object]:
    """JSON Schema validators of the shipped schemas: ``events``, ``frames`` (which refers to the JSONL frame
    record's schema by its id) and ``counts``."""
    import jsonschema
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in schemas.values() if "$id" in doc)
    return {kind: jsonschema.Draft202012Validator(schemas[name], registry=registry)
            for kind, name in (("events", "event.schema.json"), ("frames", "redis_frame.schema.json"),
                               ("counts", "redis_counts.schema.json"))}


@pytest.fixture(scope="session")
def synth():  # type: ignore[no-untyped-def]
    """The synthetic-result helpers above, for test modules."""
    from types import SimpleNamespace

    return SimpleNamespace(make_result=make_result, scenario=scenario)


@pytest.fixture
def run_subscribe():  # type: ignore[no-untyped-def]
    """``trackstream subscribe ARGS`` to completion (a separate process)."""
    def run(*args: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run([sys.executable, "-m", "pipelines.cli", "subscribe", *args], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=str(REPO))
    return run


class WithEvents:
    """A sink fed the way the pipeline feeds it: each result and status first goes through an
    ``EventGenerator`` (what the source's ``StreamProcessor`` does), so the sink receives the events with
    them; ``close()`` ends the remaining tracks first. Other attributes are the sink's own."""

    def __init__(self, sink, source_id: str = "cam", **events) -> None:  # type: ignore[no-untyped-def]
        from pipelines.processing.events import EventGenerator

        self.sink = sink
        self._source_id = source_id
        self._gen = EventGenerator(source_id, **events)

    def write(self, result: FrameResult) -> None:
        import dataclasses

        self.sink.write(dataclasses.replace(result, events=tuple(self._gen.update(result))))

    def status(self, status) -> None:  # type: ignore[no-untyped-def]
        import dataclasses

        self.sink.status(dataclasses.replace(status, events=tuple(self._gen.status(status))))

    def close(self) -> None:
        from pipelines.frames import StatusKind, StreamStatus

        self.sink.status(StreamStatus(StatusKind.CLOSED, self._source_id, time.time(), events=tuple(self._gen.close())))
        self.sink.close()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.sink, name)

"""The event history's fixtures: a private PostgreSQL server, synthetic runs fed through a real EventGenerator.

PostgreSQL is Debian's (``/usr/lib/postgresql/*/bin``): ``initdb`` a cluster in a temporary folder with a
password-protected user, then ``postgres`` on a free loopback port (one server per module; each test gets
its own database). initdb and postgres refuse to run as root, so as root they run as the ``postgres`` user.
Without the binaries the tests fail under CI and skip elsewhere (``require_binary``).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pytest

from pipelines.frames import FrameResult, StatusKind, StreamStatus
from pipelines.processing.events import EventGenerator, LineConfig, ZoneConfig
from tests.conftest import LoopbackServer, _missing, serve_on_a_free_port
from tests.redis.conftest import make_result

PG_PASSWORD = "Pg-S3cret-pw"
PG_USER = "trackstream"


def pg_binary(name: str) -> str:
    on_path = shutil.which(name)
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([on_path] if on_path else [])
    if not found:
        _missing(f"PostgreSQL's {name} (Debian package postgresql)")
    return str(found[-1])


def _as_postgres() -> dict[str, Any]:
    """Popen keyword arguments that run a child as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _missing("the postgres system user (Debian package postgresql)")
    return {"user": "postgres", "group": "postgres"}


class PostgresServer(LoopbackServer):
    """A private PostgreSQL cluster; ``stop()`` kills it (SIGKILL), ``start()`` brings it back (crash recovery)."""

    name = "postgres"

    def __init__(self, port: int, datadir: Path, workdir: Path) -> None:
        self.port, self.datadir, self.workdir = port, datadir, workdir

    def command(self) -> list[str]:
        return [pg_binary("postgres"), "-D", str(self.datadir), "-p", str(self.port), "-h", "127.0.0.1",
                "-k", str(self.workdir), "-c", "fsync=off", "-c", "max_connections=50"]

    def start(self) -> None:
        kwargs = _as_postgres()
        log = self.workdir / f"{self.name}-{self.port}.log"
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=err, **kwargs)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {log.read_text(errors='replace')}")
            try:
                self.admin("SELECT 1")
                return
            except Exception:  # noqa: BLE001 - not accepting connections yet
                time.sleep(0.1)
        raise RuntimeError("postgres did not start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=2) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    initdb = pg_binary("initdb")
    root = Path(tempfile.mkdtemp(prefix="trackstream-pg-"))
    try:
        kwargs = _as_postgres()
        if kwargs:
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "pw"
        pwfile.write_text(PG_PASSWORD)
        if kwargs:
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run([initdb, "-D", str(root / "data"), "-U", PG_USER, f"--pwfile={pwfile}",
                        "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"], check=True, capture_output=True,
                       **kwargs)
        yield from serve_on_a_free_port(lambda port: PostgresServer(port, root / "data", root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


_DB = count(1)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the module's server, dropped afterwards."""
    name = f"t{os.getpid()}_{next(_DB)}"
    postgres.admin(f"CREATE DATABASE {name}")
    yield postgres.url(name)
    try:
        postgres.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except Exception:  # noqa: BLE001 - the server may have been stopped by the test
        pass


# -- a synthetic run through the real EventGenerator -------------------------------------------------------
GATE = LineConfig(name="gate", points=((30.0, 0.0), (30.0, 200.0)))
YARD = ZoneConfig(name="yard", polygon=((40.0, 0.0), (128.0, 0.0), (128.0, 200.0), (40.0, 200.0)))


def textured(index: int) -> np.ndarray:
    """A 72x128 picture that changes every frame (so clips show motion and crops have detail)."""
    rng = np.random.default_rng(index)
    image = np.zeros((72, 128, 3), np.uint8)
    image[:, :, 1] = (np.arange(128)[None, :] * 2 + index * 3) % 256
    image[::4, :, 2] = rng.integers(0, 255, (18, 128), dtype=np.uint8)
    return image


def synthetic_results(source: str = "cam", n_frames: int = 60, fps: float = 25.0,
                      t0: Optional[float] = None) -> list[FrameResult | StreamStatus]:
    """Tracks moving right across the gate line into the yard zone, with events from a real EventGenerator,
    ending with ``stream_ended``. Track k (1..4) appears at frame 8k-8 and is removed 30 frames later."""
    gen = EventGenerator(source, zones=[YARD], lines=[GATE])
    t0 = time.time() if t0 is None else t0
    out: list[FrameResult | StreamStatus] = []
    for f in range(n_frames):
        boxes, removed = {}, []
        for k in range(1, 5):
            first = 8 * k - 8
            if first <= f < first + 27:
                x = 3.0 * (f - first)
                boxes[k] = [x, 5.0 * k, x + 12, 5.0 * k + 24]
            elif f == first + 30:
                removed.append(k)
        base = make_result(f, boxes, source=source, fps=fps, removed=removed)
        frame = dataclasses.replace(base.frame, image=textured(f), capture_time=t0 + f / fps)
        result = dataclasses.replace(base, frame=frame, stream_time=t0 + f / fps)
        out.append(dataclasses.replace(result, events=tuple(gen.update(result))))
    end = StreamStatus(StatusKind.ENDED, source, t0 + n_frames / fps, pts=n_frames / fps)
    out.append(dataclasses.replace(end, events=tuple(gen.status(end))))
    return out


def feed(sink: Any, items: list[FrameResult | StreamStatus]) -> list[dict[str, Any]]:
    """Write every item into ``sink``; returns the event documents, in order."""
    docs: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, FrameResult):
            sink.write(item)
        else:
            sink.status(item)
        docs.extend(dict(e) for e in item.events)
    return docs

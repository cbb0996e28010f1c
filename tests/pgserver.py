"""A private PostgreSQL server for the tests, one per test session (tests/conftest.py's ``postgres`` fixture).

PostgreSQL is Debian's (``/usr/lib/postgresql/*/bin``): ``initdb`` a cluster in a temporary folder with a
password-protected user, then ``postgres`` on a free loopback port; each test gets its own database
(``pg_url``). initdb and postgres refuse to run as root, so as root they run as the ``postgres`` user.
Without the binaries the tests fail under CI and skip elsewhere (``_missing``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from itertools import count
from pathlib import Path
from typing import Any, Iterator

from tests.conftest import LoopbackServer, _missing, serve_on_a_free_port

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


def private_postgres() -> Iterator[PostgresServer]:
    """initdb a cluster in a temporary folder and serve it on a free port until the generator closes."""
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


def fresh_database(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on ``postgres``, dropped afterwards."""
    name = f"t{os.getpid()}_{next(_DB)}"
    postgres.admin(f"CREATE DATABASE {name}")
    yield postgres.url(name)
    try:
        postgres.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except Exception:  # noqa: BLE001 - the server may have been stopped by the test
        pass

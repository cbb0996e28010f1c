"""Shared fixtures: offline data, bundled assets, one model load per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional, TypeVar

import pytest

if TYPE_CHECKING:
    from collections.abc import Collection

    from pipelines.frames import VideoFrame
    from pipelines.sources.base import Source
    from tests.pgserver import PostgresServer

os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")

REPO = Path(__file__).resolve().parents[1]
# models the suite exports (detector.runtime auto on a CPU) are cached beside the suite, never in the user's
# ~/.cache, and kept between local runs; subprocesses (the CLI, Ray) inherit the setting
os.environ.setdefault("TRACKSTREAM_MODEL_CACHE", str(REPO / ".pytest_cache" / "trackstream-models"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    """Fail loudly under CI (the asset must be there); skip on a user's machine."""
    if IN_CI:
        pytest.fail(f"required test asset missing under CI: {what}", pytrace=False)
    pytest.skip(f"test asset not available: {what}")


def shared_data_dir() -> Path:
    """Root of the offline shared data (env TRACKSTREAM_DATA, default ../shared/data)."""
    return Path(os.environ.get("TRACKSTREAM_DATA", REPO.parent / "shared" / "data"))


def shared_data(relative: str) -> Path:
    """A file or folder under the shared data; fails under CI, skips elsewhere when absent."""
    path = shared_data_dir() / relative
    if not path.exists():
        _missing(f"{path} (set TRACKSTREAM_DATA to the shared data folder)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackServer:
    """A server child process on a fixed 127.0.0.1 port that a test can kill (``stop``: SIGKILL) and bring
    back on the same port (``start``). Subclasses set ``name``, ``port`` and ``workdir`` and say how it is
    started (``command``)."""

    name = "server"
    port: int
    workdir: Path
    proc: Optional["subprocess.Popen[bytes]"] = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = self.workdir / f"{self.name}-{self.port}.log"
        with open(log, "wb") as err:  # a file, not a pipe: a chatty server can never block on it
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} on port {self.port}: "
                                   f"{log.read_text(errors='replace').strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


Server = TypeVar("Server", bound=LoopbackServer)


def serve_on_a_free_port(make: Callable[[int], Server]) -> Iterator[Server]:
    """Yield ``make(port).start()``-ed on a free port (another one when the port was taken between probing and
    binding), and kill it afterwards."""
    for _ in range(3):
        server = make(free_port())
        try:
            server.start()
            break
        except RuntimeError:
            server.stop()
    else:
        pytest.fail(f"could not start {server.name}")
    yield server
    server.stop()


@contextlib.contextmanager
def mounted(target: Path, *how: str) -> Iterator[Path]:
    """``mount HOW... target`` for a test of a real file-system fault (a full disk, a read-only folder), unmounted
    afterwards. Mounting needs root: it fails under CI (which runs as root), skips on a user's machine."""
    target.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", *how, str(target)], capture_output=True) if os.geteuid() == 0 else None
    if made is None or made.returncode:
        why = made.stderr.decode().strip() if made is not None else "not root"
        if IN_CI:
            pytest.fail(f"this test needs to mount {target} and CI runs as root: {why}", pytrace=False)
        pytest.skip(f"cannot mount here: {why}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def tiny_tmpfs(target: Path, size: str) -> "contextlib.AbstractContextManager[Path]":
    """A file system of ``size`` (``4k``, ``160k``) at ``target``: a disk that fills up."""
    return mounted(target, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


def bind(source: Path, target: Path, read_only: bool = False) -> "contextlib.AbstractContextManager[Path]":
    """``source`` seen again at ``target`` (read-only: a folder this user may not write, root included)."""
    return mounted(target, "-o", "bind,ro" if read_only else "bind", str(source))


def require_binary(name: str) -> str:
    """Absolute path of a system binary; fails under CI, skips elsewhere when absent."""
    found = shutil.which(name)
    if found is None:
        _missing(f"system binary {name!r}")
    return str(found)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 and its key (``cert.pem``, ``key.pem`` in ``folder``, made
    with openssl)."""
    openssl = require_binary("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="session")
def postgres() -> Iterator["PostgresServer"]:
    """One private PostgreSQL server for the whole session (initdb takes seconds); tests/pgserver.py."""
    from tests.pgserver import private_postgres

    yield from private_postgres()


@pytest.fixture
def pg_url(postgres: "PostgresServer") -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server, dropped afterwards."""
    from tests.pgserver import fresh_database

    yield from fresh_database(postgres)


@pytest.fixture(scope="session")
def bikes_video() -> Path:
    from pipelines.assets import demo_video

    try:
        return demo_video()
    except Exception as exc:  # noqa: BLE001 - turned into a loud failure / skip
        _missing(str(exc))
        raise


FAST_FPS = 250


@pytest.fixture(scope="session")
def bikes_fast(bikes_video, tmp_path_factory) -> Path:
    """bikes.mp4's 250 frames re-encoded to play at 250 fps (1 s): played at its own rate, no CPU detector
    keeps up, so frames must be dropped."""
    from fractions import Fraction

    import av

    dst = tmp_path_factory.mktemp("fast") / "bikes250.mp4"
    with av.open(str(bikes_video)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=FAST_FPS, options={"preset": "ultrafast"})
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 0:
                stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
            image = frame.reformat(format="yuv420p")
            image.pts, image.time_base = i, Fraction(1, FAST_FPS)
            out.mux(stream.encode(image))
        out.mux(stream.encode(None))
    return dst


@pytest.fixture(scope="session")
def pose_weights() -> Path:
    from pipelines.assets import demo_pose_model

    try:
        return demo_pose_model()
    except Exception as exc:  # noqa: BLE001
        _missing(str(exc))
        raise


def decoded_frames(source: "Source") -> list[tuple[int, float, int]]:
    """Every frame a source yields as (index, pts, sum of a 1/16 pixel sample), then the source closed: two
    decodes of one video compare equal when they gave the same frames at the same times."""
    from pipelines.frames import VideoFrame

    out = []
    for item in source.frames():
        if isinstance(item, VideoFrame):
            out.append((item.index, item.pts, int(item.image[::16, ::16].sum())))
    source.close()
    return out


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``trackstream ARGS`` as a user would (a separate process), capturing text output."""

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(cwd or REPO))


def frames_at(path: Path, indices: "Collection[int]") -> "list[VideoFrame]":
    """The decoded frames of the video at ``path`` whose index is in ``indices``, in order."""
    from pipelines.frames import VideoFrame
    from pipelines.sources.base import SourceConfig
    from pipelines.sources.file import FileSource

    source = FileSource(path, options=SourceConfig())
    try:
        return [f for f in source.frames() if isinstance(f, VideoFrame) and f.index in indices]
    finally:
        source.close()

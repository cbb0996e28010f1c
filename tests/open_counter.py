"""An instrument, not a mock: ``trackstream`` run in a fresh process as a user runs it, with ``av.open`` and
``open()`` wrapped to note each time a file under an archive folder is opened, and ``FileSource.frames``
wrapped to note when the first frame of any file comes out. What the run does is unchanged (with ``latency``,
each noted open first sleeps that long, as an open on a slow network share would).

Used as ``python tests/open_counter.py ARCHIVE REPORT.json LATENCY_S trackstream-args...`` by
``opens_at_start`` (the tests) and ``benchmarks/archive_opens.py``. The report (JSON) holds ``opens``:
``[seconds from launch, "av.open" | "open", real path, seconds it took]`` of every open, ``first_frame``:
seconds from launch to the first frame (None when none came), and ``exit``: the run's exit code.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]


def _instrument(archive: str, report: str, latency: float) -> Callable[[int], None]:
    """Wrap the openers (see module docstring); returns the function that writes the report."""
    import av

    started = time.monotonic()
    root = os.path.realpath(archive) + os.sep
    opens: list[list[Any]] = []
    first: list[float] = []
    lock = threading.Lock()

    def ours(file: Any) -> Optional[str]:
        if not isinstance(file, (str, os.PathLike)):
            return None
        path = os.path.realpath(os.fspath(file))
        return path if path.startswith(root) else None

    def wrap(kind: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def opener(file: Any, *args: Any, **kwargs: Any) -> Any:
            path = ours(file)
            if path is None:
                return real(file, *args, **kwargs)
            at = time.monotonic()
            try:
                if latency:
                    time.sleep(latency)
                return real(file, *args, **kwargs)
            finally:
                with lock:
                    opens.append([at - started, kind, path, time.monotonic() - at])
        return opener

    av.open = wrap("av.open", av.open)
    builtins.open = io.open = wrap("open", builtins.open)

    from pipelines.frames import VideoFrame
    from pipelines.sources.file import FileSource

    frames = FileSource.frames

    def timed(self: FileSource) -> Any:
        for item in frames(self):
            if isinstance(item, VideoFrame):
                with lock:
                    if not first:
                        first.append(time.monotonic() - started)
            yield item

    FileSource.frames = timed  # type: ignore[method-assign]

    def write(code: int) -> None:
        with lock:
            data = {"opens": opens, "first_frame": first[0] if first else None, "exit": code}
        Path(report).write_text(json.dumps(data), encoding="utf-8")

    return write


def opens_at_start(archive: Path, args: list[str], latency: float = 0.0,
                   pythonpath: Optional[Path] = None) -> dict[str, Any]:
    """Run ``trackstream ARGS`` (a fresh process, the tree at ``pythonpath``, default this one) and return its
    report (module docstring) with ``before_first``: how many times each file under ``archive`` was opened
    before the first frame came out (real path -> count), and ``seconds_in_opens``: how long those took."""
    report = archive.parent / f".opens-{os.getpid()}.json"
    env = {**os.environ, "PYTHONPATH": str(pythonpath or REPO)}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(archive), str(report), str(latency),
                           *args], capture_output=True, text=True, env=env, cwd=str(pythonpath or REPO), timeout=600)
    try:
        data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssertionError(f"the run wrote no report:\n{proc.stderr[-3000:]}") from None
    finally:
        report.unlink(missing_ok=True)
    data["stderr"] = proc.stderr
    end = data["first_frame"] if data["first_frame"] is not None else float("inf")
    counted: dict[str, int] = {}
    spent = 0.0
    for at, _kind, path, took in data["opens"]:
        if at < end:
            counted[path] = counted.get(path, 0) + 1
            spent += took
    data["before_first"], data["seconds_in_opens"] = counted, spent
    return data


def main() -> int:
    archive, report, latency, *args = sys.argv[1:]
    write = _instrument(archive, report, float(latency))
    from pipelines.cli import main as cli

    code = 1
    try:
        code = cli(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        write(code)
    return code


if __name__ == "__main__":
    sys.path.insert(0, os.environ.get("PYTHONPATH", str(REPO)).split(os.pathsep)[0])
    sys.exit(main())

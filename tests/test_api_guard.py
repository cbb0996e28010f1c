"""The Python API takes the same path checks and the same advisory locks as ``trackstream run`` (two real API
runs in two processes; a real video the user would not want to lose)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

# a user's script: process a video through the API, print the first line of any error
SCRIPT = """
import sys
from pipelines import api
from pipelines.errors import UserError
video, out, frames, realtime = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
try:
    for result in api.process(video, max_frames=frames,
                              overrides={"output.jsonl": out, "source.realtime": realtime}):
        pass
except UserError as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(2)
print("done")
"""


def _api_run(video: Path, out: Path, frames: int, realtime: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(video), str(out), str(frames), "1" if realtime else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))


@pytest.fixture
def clip(bikes_video, tmp_path) -> Path:
    path = tmp_path / "mine.mp4"
    shutil.copyfile(bikes_video, path)
    return path


def test_a_second_api_run_on_the_same_output_refuses_naming_the_file(clip, tmp_path):
    out = tmp_path / "out.jsonl"
    first = _api_run(clip, out, 250, realtime=True)
    try:
        deadline = time.monotonic() + 90
        while not out.exists() or not out.stat().st_size:   # the first run is writing
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = _api_run(clip, out, 2)
        stdout, stderr = second.communicate(timeout=120)
        assert second.returncode == 2, stdout + stderr
        assert stdout.startswith("OutputError: ") and str(out) in stdout and f"PID {first.pid}" in stdout, stdout
        assert "another trackstream run" in stdout, stdout
    finally:
        first.kill()
        first.communicate()


def test_an_api_run_writing_over_its_input_is_refused_and_nothing_touched(clip, tmp_path):
    from pipelines import api
    from pipelines.errors import OutputError

    before = hashlib.sha256(clip.read_bytes()).hexdigest()
    listing = sorted(p.name for p in tmp_path.iterdir())
    for key in ("output.video", "output.jsonl"):
        with pytest.raises(OutputError, match="input video of source mine") as caught:
            next(iter(api.process(clip, overrides={key: str(clip)})))
        assert "\n" not in str(caught.value)
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing            # no lock, no temporary file left


def test_the_ray_engine_takes_the_same_checks(clip, tmp_path):
    """Refused before Ray starts: the same seam (engine/launch.py claim_writes) as a local run."""
    from tests.conftest import run_cli

    before = hashlib.sha256(clip.read_bytes()).hexdigest()
    done = run_cli("run", "--engine", "ray", str(clip), "--out", str(clip), "--quiet", timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "input video of source mine" in lines[0], done.stderr
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == before

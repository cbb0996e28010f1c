"""A state folder that cannot be written is refused at start; a snapshot that cannot be saved later is one line
naming the state file, not a failure of another stage (real runs, real file systems).

The tests run as root, for whom ``chmod`` blocks nothing, so unwritable places are made the ways that stop root
too: a state path whose parent is a regular file (no folder can be created under a file), ``/sys`` (sysfs
refuses new files to everyone, root included; present on every Linux) and, during a run, the state folder
replaced by a regular file (what a mistaken clean-up script or an unmounted disk does to a running job).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, run_cli


def _one_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("trackstream: error: ")]
    assert done.returncode == code and len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return errors[0]


def test_a_state_path_under_a_regular_file_is_refused_at_start(bikes_video, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = run_cli("run", str(bikes_video), "--state", str(blocker / "state"), "--jsonl", str(out), "--quiet")
    line = _one_error(done, 2)
    assert str(blocker / "state") in line and "Not a directory" in line, line
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr   # before the model loads: nothing else
    assert not out.exists() and blocker.read_text(encoding="utf-8") == "a file, not a folder\n"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/sys/kernel"),
                    reason="sysfs is Linux's")
def test_an_existing_folder_nobody_may_write_is_refused_at_start(bikes_video, tmp_path):
    out = tmp_path / "out.jsonl"
    done = run_cli("run", str(bikes_video), "--state", "/sys/kernel", "--jsonl", str(out), "--quiet")
    line = _one_error(done, 2)
    assert "cannot write the state folder /sys/kernel" in line and "Permission denied" in line, line
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()


def test_a_snapshot_that_cannot_be_saved_later_is_one_line_naming_the_state_file(bikes_video, tmp_path):
    state, out = tmp_path / "state", tmp_path / "out.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--state", str(state),
                            "--state-interval", "0.3", "--jsonl", str(out), "--realtime", "--max-frames", "150"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    try:
        deadline = time.monotonic() + 90
        while not (state / "bikes.json").exists():  # the first snapshot is saved: the run is under way
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
        shutil.rmtree(state)
        state.write_text("", encoding="utf-8")         # the folder is now a regular file
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    done = subprocess.CompletedProcess(run.args, run.returncode, "", stderr)
    final = _one_error(done, 3)                        # documented: exit 3, the state was not saved
    named = f"cannot save state {state / 'bikes.json'}: Not a directory"
    logged = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(logged) == 1 and named in logged[0], stderr          # once, not at every interval
    assert named in final and "the state of bikes was not saved" in final, final
    assert "sink-" not in stderr and "output stopped" not in stderr, stderr   # no output blamed
    assert 0 < len(out.read_text(encoding="utf-8").splitlines()) <= 150       # the outputs went on


def test_a_state_saved_under_the_older_ascii_only_name_is_resumed_and_moved(bikes_video, pose_weights, tmp_path):
    """Before ids kept letters of every script in file names, camera 'café' saved its state as 'caf.json'; after
    the upgrade the run looked for 'café.json' only, found nothing and started over (new track ids and counts,
    and its own earlier outputs refused as a user's files). The older file, made here by renaming the one this
    version wrote (the document is the same format), is now resumed and replaced by the new name."""
    import json

    jsonl, state = tmp_path / "t.jsonl", tmp_path / "state"

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli("run", str(bikes_video), "--source-id", "café", "--model", str(pose_weights), "--imgsz", "160",
                       "--jsonl", str(jsonl), "--state", str(state), "--quiet", *extra)

    assert run("--max-frames", "10").returncode == 0
    (state / "café.json").rename(state / "caf.json")
    done = run("--max-frames", "5")
    assert done.returncode == 0, done.stderr
    indices = [json.loads(line)["frame_index"] for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert indices == list(range(15))                     # resumed after frame 9, not started over
    assert (state / "café.json").is_file() and not (state / "caf.json").exists()


@pytest.mark.parametrize("damage", ['{"format": "trackstream.state", "ver', "[]", ""])
def test_a_damaged_snapshot_is_named_when_its_run_wrote_the_outputs(bikes_video, pose_weights, tmp_path, damage):
    """docs/outputs.md: a state file that is not valid JSON, or not a trackstream state, stops the run with one line
    naming it. Run again with the outputs its run wrote, the line blamed them instead ('o.jsonl exists; refusing to
    replace it'), sending the user to --overwrite, which would have thrown the run's tracks away."""
    state, jsonl = tmp_path / "state", tmp_path / "o.jsonl"
    args = ["run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
            "--state", str(state), "--jsonl", str(jsonl), "--quiet"]
    first = run_cli(*args, timeout=180)
    assert first.returncode == 0, first.stderr
    written = jsonl.read_bytes()
    (state / "bikes.json").write_text(damage, encoding="utf-8")
    line = _one_error(run_cli(*args, timeout=180), 2)
    assert str(state / "bikes.json") in line and line.endswith("remove it to start over"), line
    assert jsonl.read_bytes() == written
    # starting over reads no snapshot: the file it would replace is refused as any other, and kept
    line = _one_error(run_cli(*args, "--fresh-state", timeout=180), 2)
    assert "o.jsonl exists; refusing to replace it" in line and jsonl.read_bytes() == written

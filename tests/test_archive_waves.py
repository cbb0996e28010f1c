"""An archive of any size runs a few files at a time (``pipelines/engine/waves.py``): its open files and its memory
stay bounded, and every file's outputs are those of a run of that file alone. Real CLI runs over hard links of a
short clip (bikes.mp4's cyclist), a few frames each, small images."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pipelines.engine.claims import MOST_TOKENS, Claims
from pipelines.errors import OutputError
from tests.clips import cut_clip
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rider(bikes_video, tmp_path_factory) -> Path:
    """Frames 30-35 of bikes.mp4, where the cyclist is in the picture (a track from the second frame on)."""
    return cut_clip(tmp_path_factory.mktemp("rider") / "rider.mp4", bikes_video, start=30, count=6)


def _archive(folder: Path, clip: Path, count: int) -> Path:
    """``count`` hard links of ``clip``: ``c001.mp4`` ..."""
    folder.mkdir()
    for i in range(1, count + 1):
        os.link(clip, folder / f"c{i:03d}.mp4")
    return folder


def _run(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "run", *args]


def _started(archive: Path, out: Path, state: Path, pose_weights: Path, max_frames: int) -> subprocess.Popen[str]:
    """A CLI run of every file of ``archive`` (``max_frames`` each, its JSONL under ``out``, its snapshots under
    ``state`` every 0.1 s), once the first file's first snapshot is written: its frames are under way."""
    proc = subprocess.Popen(_run(str(archive / "*.mp4"), "--model", str(pose_weights), "--imgsz", "160",
                                 "--max-frames", str(max_frames), "--jsonl", str(out / "{source}.jsonl"),
                                 "--state", str(state), "--state-interval", "0.1", "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    deadline = time.monotonic() + 120
    while not (state / "c001.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc


def _open_files(limit: int) -> Callable[[], None]:
    """Soft and hard limit on open files (as ``ulimit -n``): the CLI cannot lift it."""
    def set_limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return set_limit


def _records(path: Path) -> list[dict[str, Any]]:
    """The frame records of a JSONL output, without the source id (the file's name)."""
    out = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in out:
        record.pop("source_id")
    return out


def test_an_archive_of_more_files_than_the_open_file_limit_writes_every_output(tmp_path, rider, pose_weights):
    """Every file of a glob was opened at start, with its decoder, its outputs and a lock file per output: 80 files
    under a limit of 64 open files (soft and hard, as `ulimit -n 64`) stopped at start with 'too many files open at
    once', nothing written."""
    archive = _archive(tmp_path / "archive", rider, 80)
    common = ("--model", str(pose_weights), "--imgsz", "160", "--max-frames", "3", "--quiet")
    alone = run_cli("run", str(archive / "c001.mp4"), *common, "--jsonl", str(tmp_path / "alone.jsonl"))
    assert alone.returncode == 0, alone.stderr
    expected = _records(tmp_path / "alone.jsonl")
    assert len(expected) == 3 and expected[-1]["tracks"], expected   # the cyclist is tracked

    out, state = tmp_path / "out", tmp_path / "state"
    proc = subprocess.run(_run(str(archive / "*.mp4"), *common, "--jsonl", str(out / "{source}.jsonl"),
                               "--state", str(state)),
                          capture_output=True, text=True, timeout=600, preexec_fn=_open_files(64),
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"c{i:03d}.jsonl" for i in range(1, 81)]   # no claim or lock file left behind either
    for name in names:
        assert _records(out / name) == expected, name
    assert len(list(state.glob("*.json"))) == 80


def _peak_rss_kb(args: list[str], log: Path) -> tuple[int, int]:
    """(exit code, peak resident memory in KiB) of a fresh run of ``args``."""
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here: Popen must not wait for it again
    return proc.returncode, usage.ru_maxrss


def test_an_archive_ten_times_larger_takes_about_the_same_memory(tmp_path, rider, pose_weights):
    """Every file was set up at start (its container, decoder and first decoded frame, a reader thread, its
    outputs): 60 files peaked at 1.8 times the memory of 6 (about 4.6 MB more per file; a month of 10 cameras'
    hourly files, 7200, would need 33 GB)."""
    peaks = {}
    for count in (6, 60):
        archive = _archive(tmp_path / f"archive{count}", rider, count)
        out = tmp_path / f"out{count}"
        code, peaks[count] = _peak_rss_kb(_run(str(archive / "*.mp4"), "--model", str(pose_weights), "--imgsz",
                                               "160", "--max-frames", "2", "--jsonl", str(out / "{source}.jsonl"),
                                               "--quiet"), tmp_path / f"log{count}")
        assert code == 0, (tmp_path / f"log{count}").read_text()[-3000:]
        assert len(list(out.iterdir())) == count
    assert peaks[60] < 1.3 * peaks[6], peaks


def test_a_stopped_archive_names_the_files_it_never_started_and_saves_no_state_for_them(tmp_path, rider, bikes_video,
                                                                                       pose_weights):
    """Files not yet started when the run is stopped are not processed: no output, no snapshot (a rerun with the
    same --state starts them from their first frame), and the summary names them rather than listing frames."""
    archive = _archive(tmp_path / "archive", bikes_video, 10)
    out, state = tmp_path / "out", tmp_path / "state"
    proc = _started(archive, out, state, pose_weights, max_frames=80)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    started = sorted(p.stem for p in out.iterdir())
    unstarted = [f"c{i:03d}" for i in range(1, 11) if f"c{i:03d}" not in started]
    assert started[:4] == ["c001", "c002", "c003", "c004"] and unstarted, stderr   # a few at a time
    assert sorted(p.stem for p in state.glob("*.json")) == started
    summary = [line for line in stderr.splitlines() if line.startswith("not started: ")]
    assert summary == [f"not started: {len(unstarted)} files (the run was stopped before their turn; nothing was "
                       f"written for them): {', '.join(unstarted[:5])}"
                       + (f" and {len(unstarted) - 5} more" if len(unstarted) > 5 else "")], stderr
    assert not any(line.startswith(tuple(f"{name}: " for name in unstarted)) for line in stderr.splitlines())


def test_a_second_run_is_refused_on_any_output_of_an_archive_while_few_files_are_held(tmp_path):
    """A run held an open lock file per output and state file for as long as it ran: one per file of an archive.
    The claims now hold no file open; one token per folder written into, at most MOST_TOKENS, tells another run
    that the claiming run is alive (the kernel's flock, here between two runs' open files in one process)."""
    paths = [tmp_path / f"day{d}" / f"c{i}.jsonl" for d in range(20) for i in range(5)]
    first, second = Claims(), Claims()
    for path in paths:
        path.parent.mkdir(exist_ok=True)
        assert first.claim(path.with_name(f".{path.name}.lock"), "--jsonl", path)
    assert first.descriptors == MOST_TOKENS
    for path in (paths[0], paths[-1]):
        with pytest.raises(OutputError, match=f"{path} is being written by another trackstream run .PID {os.getpid()}"):
            second.claim(path.with_name(f".{path.name}.lock"), "--jsonl", path)
    first.release()
    assert second.claim(paths[-1].with_name(f".{paths[-1].name}.lock"), "--jsonl", paths[-1])
    second.release()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]   # claims and tokens removed


def test_a_look_past_the_open_file_limit_is_the_limit_not_an_unreadable_video(tmp_path, rider):
    """A file that cannot be opened because the process has too many open files must not be skipped as unreadable:
    the CLI says in one line that the limit was reached (cli.py). The looks at start keep at most an eighth of the
    limit open, so a real run does not get there; here a FirstLooks asked to keep every file open does."""
    archive = _archive(tmp_path / "archive", rider, 40)
    script = (
        "import os, resource, sys\n"
        "from pipelines.sources.looks import FirstLooks\n"
        "from pipelines.errors import SourceError\n"
        "used = len(os.listdir('/proc/self/fd'))\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (used + 10, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "looks = FirstLooks(keep=1000)\n"
        "try:\n"
        "    for name in sorted(os.listdir(sys.argv[1])):\n"
        "        looks.look(os.path.join(sys.argv[1], name))\n"
        "except SourceError as exc:\n"
        "    print('SourceError', exc)\n"
        "except OSError as exc:\n"
        "    print('OSError', exc.errno, looks.held)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(archive)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    import errno

    assert proc.stdout.split()[:2] == ["OSError", str(errno.EMFILE)], (proc.stdout, proc.stderr)
    assert 0 < int(proc.stdout.split()[2]) < 40


def test_the_paths_of_an_archive_are_checked_in_a_moment(tmp_path, rider):
    """Every output was compared with every input and every other output, pair by pair: 300 files took 4 s at start
    and 1100 about a minute (the square of their number: a month of 10 cameras' hourly files, 7200, most of an
    hour)."""
    from pipelines.config import build_config
    from pipelines.engine.guard import check_paths

    archive = _archive(tmp_path / "archive", rider, 2000)
    config = build_config({"sources": [{"url": str(p)} for p in sorted(archive.iterdir())],
                           "output": {"jsonl": str(tmp_path / "out" / "{source}.jsonl")},
                           "state": {"dir": str(tmp_path / "state")}})
    started = time.monotonic()
    writes = check_paths(config)
    assert time.monotonic() - started < 5.0
    assert len(writes) == 2000 * 3   # each file's output, state file and its restart count
    named = build_config({"sources": [{"url": str(p)} for p in sorted(archive.iterdir())],
                          "output": {"jsonl": str(archive / "{source}.mp4")}})
    with pytest.raises(OutputError, match="--jsonl of source c001 .* is the input video of source c001"):
        check_paths(named)   # still refused, naming the first clash


def test_a_file_removed_before_its_turn_is_skipped_and_the_rest_of_the_archive_goes_on(tmp_path, bikes_video,
                                                                                      pose_weights):
    """A recorder's retention may delete a file of the archive while the run works through the files before it:
    that file is left out at its turn with one warning line and named in the skipped-files line (exit 4), as an
    unreadable file is at start; the files after it are processed."""
    archive = _archive(tmp_path / "archive", bikes_video, 20)   # more than the first looks keep open (16)
    out, state = tmp_path / "out", tmp_path / "state"
    proc = _started(archive, out, state, pose_weights, max_frames=15)   # the first wave: c019 waits for its turn
    (archive / "c019.mp4").unlink()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 4, stderr
    assert sorted(p.stem for p in out.iterdir()) == [f"c{i:03d}" for i in range(1, 21) if i != 19], stderr
    warned = [line for line in stderr.splitlines() if "skipping" in line and "c019.mp4" in line]
    assert len(warned) == 1, stderr
    assert f"skipped 1 of 20 files, which cannot be read (the reasons are above): {archive / 'c019.mp4'}" \
        in stderr.splitlines(), stderr
    assert not any(line.startswith(("not started", "c019: ")) for line in stderr.splitlines()), stderr

"""Outputs never destroy inputs or each other, and one run writes a file at a time (real files, real runs)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def clip(bikes_video, tmp_path) -> Path:
    """A copy of bikes.mp4 the user would not want to lose."""
    path = tmp_path / "same.mp4"
    shutil.copyfile(bikes_video, path)
    return path


def _refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("trackstream: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_an_output_over_the_input_is_refused_and_the_input_kept(clip):
    before = _digest(clip)
    _refused(run_cli("run", str(clip), "--out", str(clip), "--max-frames", "2"), "--out", "input video")
    assert _digest(clip) == before


def test_a_symlink_or_hard_link_to_the_input_is_the_input(clip, tmp_path):
    before = _digest(clip)
    (tmp_path / "link.mp4").symlink_to(clip)
    os.link(clip, tmp_path / "hard.mp4")
    _refused(run_cli("run", str(clip), "--out", str(tmp_path / "link.mp4"), "--max-frames", "2"), "input video")
    _refused(run_cli("run", str(clip), "--jsonl", str(tmp_path / "hard.mp4"), "--max-frames", "2"), "--jsonl")
    _refused(run_cli("run", str(clip), "--mot", str(tmp_path / "sub" / ".." / "same.mp4"), "--max-frames", "2"),
             "--mot")
    assert _digest(clip) == before and (tmp_path / "link.mp4").is_symlink()


def test_an_output_over_the_config_file_or_the_model_is_refused(clip, tmp_path, pose_weights):
    config = tmp_path / "run.yaml"
    config.write_text("detector: {conf: 0.3}\n", encoding="utf-8")
    _refused(run_cli("run", str(clip), "--config", str(config), "--jsonl", str(config)), "config file")
    assert config.read_text(encoding="utf-8") == "detector: {conf: 0.3}\n"
    model = tmp_path / "model.pt"
    shutil.copyfile(pose_weights, model)
    before = _digest(model)
    _refused(run_cli("run", str(clip), "--model", str(model), "--out", str(model)), "the model")
    assert _digest(model) == before


def test_two_outputs_on_one_path_are_refused_before_anything_is_written(clip, tmp_path):
    out = tmp_path / "out.jsonl"
    _refused(run_cli("run", str(clip), "--jsonl", str(out), "--events", str(out)), "--jsonl", "--events")
    assert not out.exists()


def test_sources_whose_ids_make_one_file_name_are_refused(clip, tmp_path):
    config = tmp_path / "two.yaml"
    config.write_text(f"sources:\n  - {{id: 'gate/1', url: '{clip}'}}\n  - {{id: 'gate:1', url: '{clip}'}}\n",
                      encoding="utf-8")
    _refused(run_cli("run", "--config", str(config), "--jsonl", str(tmp_path / "o.jsonl")), "gate_1")
    assert not list(tmp_path.glob("o*.jsonl"))


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                            cwd=str(REPO))


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_run_on_the_same_files_refuses_and_kill_9_leaves_no_stale_lock(clip, tmp_path):
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    first = _start(str(clip), "--jsonl", str(out), "--state", str(state), "--realtime", "--imgsz", "160",
                   "--quiet")
    try:
        _wait_for(tmp_path / ".out.jsonl.lock", first)
        second = run_cli("run", str(clip), "--jsonl", str(out), "--max-frames", "2", "--quiet")
        _refused(second, str(out), f"PID {first.pid}")
        other = tmp_path / "other.jsonl"
        third = run_cli("run", str(clip), "--jsonl", str(other), "--state", str(state), "--max-frames", "2")
        _refused(third, "state file", "same.json", f"PID {first.pid}")
        assert not other.exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    again = run_cli("run", str(clip), "--jsonl", str(out), "--max-frames", "3", "--imgsz", "160", "--quiet",
                    "--overwrite")   # out.jsonl holds the killed run's lines: replacing them is asked for
    assert again.returncode == 0, again.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert not (tmp_path / ".out.jsonl.lock").exists()


@pytest.mark.parametrize("suffix", [".gif", ".webm", ".avi", ".jpg", ".png"])
def test_an_annotated_video_in_an_unusable_container_is_refused_at_start(clip, tmp_path, suffix):
    # a picture's name (--out a still of the result, or the heatmap meant) loaded the model, then failed at the
    # first frame: "sink-video-bikes stage failed: ValueError: 'image2' format does not support 'libx264' codec"
    out = tmp_path / f"out{suffix}"
    line = _refused(run_cli("run", str(clip), "--out", str(out), "--max-frames", "2"), f"out{suffix}", ".mp4")
    assert "model" not in line and not out.exists()


def test_a_still_image_is_refused_with_a_reason(clip, tmp_path):
    import av

    picture = tmp_path / "photo.jpg"
    with av.open(str(clip)) as container:
        next(container.decode(video=0)).to_image().save(picture)
    _refused(run_cli("run", str(picture), "--jsonl", str(tmp_path / "p.jsonl")), "still image", "video")


def _written(path: Path) -> bool:
    """Whether ``path`` holds something (the start-up check that an output can be written creates it empty and
    removes it again: seen a moment ago, it may be gone)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def test_the_same_command_after_a_kill_before_the_first_snapshot_says_why_it_does_not_resume(clip, tmp_path):
    """A run with --state killed before its first snapshot (with --out that waits for the video's first 2 s)
    leaves its files and no snapshot: the same command again was told only that the file exists, as if --state
    were not given."""
    out, state = tmp_path / "out.jsonl", tmp_path / "state"
    command = (str(clip), "--jsonl", str(out), "--state", str(state), "--state-interval", "3600", "--imgsz", "160",
               "--quiet")
    first = _start(*command)
    try:
        deadline = time.monotonic() + 120
        while not _written(out):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    kept = out.read_bytes()
    assert not (state / "same.json").exists()    # no snapshot yet: 3600 s between them, none at a kill -9
    again = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", *command], capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO), timeout=120)
    _refused(again, str(out), f"--state {state} holds no snapshot of same", "--overwrite")
    assert out.read_bytes() == kept


def test_an_existing_output_is_kept_unless_asked_and_a_resume_continues_it(clip, tmp_path):
    """The one line docs/outputs.md quotes, before any model loads; --overwrite replaces the file; a run resumed
    from --state continues the file its snapshot names; an empty file holds nothing to lose."""
    from tests.test_docs_quotes import printed, quoted

    out = tmp_path / "out.jsonl"
    out.write_text("the user's own lines\n")
    refused = run_cli("run", str(clip), "--jsonl", "out.jsonl", "--quiet", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert printed(refused.stderr).replace("same", "bikes") == quoted("outputs.md", "--jsonl of source")
    for flag in ("--out", "--mot", "--events"):   # every output, each named in its own line
        kept = tmp_path / f"kept{flag[2:]}.x"
        kept.write_text("keep\n")
        done = run_cli("run", str(clip), flag, str(kept), "--max-frames", "2", "--quiet")
        _refused(done, flag, str(kept), "--overwrite")
        assert kept.read_text() == "keep\n"
    assert out.read_text() == "the user's own lines\n"
    replaced = run_cli("run", str(clip), "--jsonl", str(out), "--max-frames", "3", "--imgsz", "160", "--quiet",
                       "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert len(out.read_text().splitlines()) == 3 and "user's" not in out.read_text()
    state = tmp_path / "state"
    resumed = tmp_path / "resumed.jsonl"
    resumed.write_text("")   # an empty file: nothing to lose
    for frames in ("4", "8"):   # the second run continues the file the first one's snapshot names
        done = run_cli("run", str(clip), "--jsonl", str(resumed), "--state", str(state), "--max-frames", frames,
                       "--imgsz", "160", "--quiet")
        assert done.returncode == 0, done.stderr
    assert len(resumed.read_text().splitlines()) == 12
    other = tmp_path / "other.jsonl"
    other.write_text("keep\n")
    fresh = run_cli("run", str(clip), "--jsonl", str(other), "--state", str(state), "--fresh-state",
                    "--max-frames", "2", "--quiet")
    _refused(fresh, "--jsonl", str(other))   # starting over spares only the files the discarded state wrote
    assert other.read_text() == "keep\n"
    fresh = run_cli("run", str(clip), "--jsonl", str(resumed), "--state", str(state), "--fresh-state",
                    "--max-frames", "2", "--imgsz", "160", "--quiet")
    assert fresh.returncode == 0, fresh.stderr
    assert len(resumed.read_text().splitlines()) == 2   # its own file, started over as asked


def test_only_a_rotating_jsonl_moves_an_old_file_aside_and_overwrite_covers_every_output(clip, tmp_path):
    """A rotating video, an events file or --retain replace their file as it is opened: refused unless asked;
    a rotating JSONL moves the old live file aside as a segment; --overwrite lets the heatmap go too."""
    video, events = tmp_path / "a.mp4", tmp_path / "e.jsonl"
    for path in (video, events):
        path.write_text("PRECIOUS\n")
    done = run_cli("run", str(clip), "--out", str(video), "--out-rotate-seconds", "3600", "--max-frames", "2",
                   "--quiet")
    _refused(done, "--out", str(video))
    done = run_cli("run", str(clip), "--events", str(events), "--jsonl", str(tmp_path / "j.jsonl"),
                   "--jsonl-rotate-bytes", "1000000", "--retain", "1d", "--max-frames", "2", "--quiet")
    _refused(done, "--events", str(events))
    assert video.read_text() == events.read_text() == "PRECIOUS\n"
    rotating = tmp_path / "r.jsonl"
    rotating.write_text('{"earlier": 1}\n')
    done = run_cli("run", str(clip), "--jsonl", str(rotating), "--jsonl-rotate-bytes", "1000000", "--max-frames",
                   "2", "--imgsz", "160", "--quiet")
    assert done.returncode == 0, done.stderr
    aside = [p for p in tmp_path.glob("r.*.jsonl")]
    assert len(aside) == 1 and aside[0].read_text() == '{"earlier": 1}\n'   # kept, as a finished segment
    heat = tmp_path / "h.png"
    heat.write_bytes(b"an older picture")
    done = run_cli("run", str(clip), "--heatmap", str(heat), "--overwrite", "--max-frames", "2", "--imgsz", "160",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    assert heat.read_bytes().startswith(b"\x89PNG")


def test_fresh_state_starts_over_the_video_a_resumed_run_went_on_in(clip, tmp_path):
    """A resumed run writes NAME.part2.mp4 and its snapshot names that file: --fresh-state still starts the
    discarded run's own NAME.mp4 over instead of refusing it."""
    out, state = tmp_path / "v.mp4", tmp_path / "st"
    common = ("run", str(clip), "--out", str(out), "--state", str(state), "--imgsz", "160", "--quiet")
    for frames in ("3", "6"):
        done = run_cli(*common, "--max-frames", frames)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "v.part2.mp4").exists()
    done = run_cli(*common, "--max-frames", "3", "--fresh-state")
    assert done.returncode == 0, done.stderr


def test_a_video_started_over_names_the_parts_after_it_and_deletes_none(clip, tmp_path):
    """--fresh-state replaces v.mp4 and leaves a v.part2.mp4 beside it: an earlier resumed run's, which played
    after the new file would seem to go on with that run's frames, so the run names it. It is not removed:
    nothing ties a part to the file before it, and in an archive ``lecture.part2.mp4`` is another source whose
    finished output has that very name (a version that removed such parts deleted it)."""
    from tests.test_cli_run import frames_in

    out, state = tmp_path / "v.mp4", tmp_path / "st"
    common = ("run", str(clip), "--out", str(out), "--state", str(state), "--imgsz", "160", "--quiet")
    for frames in ("3", "6"):
        assert run_cli(*common, "--max-frames", frames).returncode == 0
    assert frames_in(tmp_path / "v.part2.mp4") == 6
    done = run_cli(*common, "--max-frames", "4", "--fresh-state")
    assert done.returncode == 0, done.stderr
    assert frames_in(out) == 4 and frames_in(tmp_path / "v.part2.mp4") == 6
    assert "v.part2.mp4 is left from an earlier run or belongs to another source" in done.stderr
    # an archive whose second file is named like a part: both outputs stay, whatever starts over
    archive, outs = tmp_path / "archive", tmp_path / "out"
    archive.mkdir()
    shutil.copyfile(clip, archive / "lecture.mp4")
    shutil.copyfile(clip, archive / "lecture.part2.mp4")
    both = ("run", str(archive), "--out", f"{outs}/{{source}}.mp4", "--state", str(tmp_path / "st2"),
            "--imgsz", "160", "--quiet", "--max-frames", "3")
    assert run_cli(*both).returncode == 0
    (tmp_path / "st2" / "lecture.json").unlink()   # redo lecture only, as the already-processed line advises
    done = run_cli(*both, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert frames_in(outs / "lecture.mp4") == 3 and frames_in(outs / "lecture.part2.mp4") == 3


def test_a_resume_from_another_folder_never_continues_a_different_file_of_the_same_name(clip, tmp_path):
    """A snapshot names the file its run wrote, wherever a later run is started: the same command run from
    another folder, whose relative --jsonl names another file (the user's own), is refused instead of cutting
    that file back and continuing it; the first folder's file is continued from there as before."""
    first, second, state = tmp_path / "first", tmp_path / "second", tmp_path / "state"
    first.mkdir()
    second.mkdir()
    common = ("run", str(clip), "--jsonl", "out.jsonl", "--state", str(state), "--imgsz", "160", "--quiet")
    done = run_cli(*common, "--max-frames", "4", cwd=first)
    assert done.returncode == 0, done.stderr
    mine = second / "out.jsonl"
    mine.write_text("".join(f"the user's line {i}\n" for i in range(200)))
    before = mine.read_text()
    refused = run_cli(*common, "--max-frames", "8", cwd=second)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("trackstream: error: saved state ") and str(first / "out.jsonl") in last, last
    assert mine.read_text() == before
    fresh = run_cli(*common, "--max-frames", "2", "--fresh-state", cwd=second)
    _refused(fresh, "--jsonl", "out.jsonl exists")   # starting over spares only the discarded run's own file
    assert mine.read_text() == before
    done = run_cli(*common, "--max-frames", "8", cwd=first)
    assert done.returncode == 0, done.stderr
    assert len((first / "out.jsonl").read_text().splitlines()) == 12   # continued: 4 frames, then 8 more

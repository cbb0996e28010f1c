"""Starting on an archive opens each of its files once: on a network share every open is a round trip or more,
and an archive holds thousands of files. The opens are counted by ``tests/open_counter.py`` (``av.open`` and
``open()`` wrapped to be noted, an instrument: the run is the real CLI, its behaviour unchanged)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.open_counter import opens_at_start

pytestmark = pytest.mark.slow

CLIPS = ("a", "b", "c", "d")


def _archive(folder: Path, bikes: Path) -> tuple[list[str], str, str]:
    """Four copies of bikes.mp4, an empty file and one cut short: (the clips' real paths, the cut one's, the
    empty one's)."""
    folder.mkdir()
    data = bikes.read_bytes()
    for name in CLIPS:
        (folder / f"{name}.mp4").write_bytes(data)
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "cut.mp4").write_bytes(data[: len(data) * 2 // 5])
    real = [os.path.realpath(folder / f"{name}.mp4") for name in CLIPS]
    return real, os.path.realpath(folder / "cut.mp4"), os.path.realpath(folder / "zero.mp4")


def test_each_file_of_a_glob_is_opened_once_before_the_first_frame_and_once_more_for_its_fingerprint(
        tmp_path, bikes_video, pose_weights):
    """It was opened 4 times (to see whether trackstream wrote it, whether it can be read, to read it, and for the
    rotation of its first frame), and with --state read for its fingerprint once more, twice when resuming. The
    unreadable files are still skipped at start, each named once, and the exit code still says so; the resume
    still matches its fingerprints."""
    clips, cut, zero = _archive(tmp_path / "archive", bikes_video)
    command = ["run", str(tmp_path / "archive" / "*.mp4"), "--model", str(pose_weights), "--imgsz", "160",
               "--max-frames", "1", "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet"]
    plain = opens_at_start(tmp_path / "archive", command)
    assert plain["exit"] == 4 and plain["first_frame"] is not None, plain["stderr"]
    assert plain["before_first"] == {**dict.fromkeys(clips, 1), cut: 1}, plain["before_first"]   # zero: never
    for name, reason in (("cut.mp4", "cannot read video file"), ("zero.mp4", "video file is empty (0 bytes)")):
        lines = [line for line in plain["stderr"].splitlines() if f"skipping {tmp_path / 'archive' / name}: " in line]
        assert len(lines) == 1 and reason in lines[0], plain["stderr"]
    assert plain["stderr"].strip().splitlines()[-1].startswith("skipped 2 of 6 files")
    assert zero not in plain["before_first"]
    assert len(plain["opens"]) == len(clips) + 1   # nor opened again after the first frame

    resumed = [*command[:-3], "--jsonl", str(tmp_path / "resumed" / "{source}.jsonl"), "--quiet",
               "--state", str(tmp_path / "state")]
    for run in ("first", "resumed"):
        counted = opens_at_start(tmp_path / "archive", resumed)
        assert counted["exit"] == 4 and counted["first_frame"] is not None, (run, counted["stderr"])
        kinds = sorted((kind, path) for _, kind, path, _ in counted["opens"])   # all before the first frame
        assert all(at < counted["first_frame"] for at, *_ in counted["opens"])
        assert kinds == sorted([("av.open", cut), *(("av.open", p) for p in clips), *(("open", p) for p in clips)]), \
            (run, kinds)
    for name in CLIPS:   # the fingerprints matched: the second run went on after the first one's frame
        records = [json.loads(line) for line in (tmp_path / "resumed" / f"{name}.jsonl").read_text().splitlines()]
        assert [r["frame_index"] for r in records] == [0, 1]

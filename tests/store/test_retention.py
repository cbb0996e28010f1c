"""Media retention deletes the oldest of a source's own snapshots and clips, and nothing else."""

from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.store.clips import Clip, ClipFrame, encode_clip
from pipelines.store.media import MediaRetention, write_file


def _file(path: Path, size: int, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_retention_deletes_only_its_own_old_files(tmp_path: Path) -> None:
    cam = tmp_path / "cam"
    old_clip = _file(cam / "20261201" / "clip-3-020000-100001.mp4", 100, age=9 * 86400)
    old_snap = _file(cam / "20261201" / "snap-3-020000-100002.jpg", 100, age=9 * 86400)
    new_clip = _file(cam / "20261206" / "clip-4-020000-100003.mp4", 100, age=60)
    users = [_file(cam / "20261201" / "notes.txt", 10, age=30 * 86400),                 # not a media name
             _file(cam / "20261201" / "clip-holiday.mp4", 10, age=30 * 86400),          # not our pattern
             _file(cam / "keep" / "clip-1-020000-100001.mp4", 10, age=30 * 86400),      # not a day folder
             _file(tmp_path / "other" / "20261201" / "clip-1-020000-100001.mp4", 10, age=30 * 86400)]
    deleted = MediaRetention(max_age=7 * 86400).apply(cam)
    assert sorted(deleted) == sorted([old_clip, old_snap])
    assert new_clip.exists() and all(p.exists() for p in users)


def test_retention_by_size_deletes_the_oldest_first(tmp_path: Path) -> None:
    cam = tmp_path / "cam"
    files = [_file(cam / "20261206" / f"clip-{i}-020000-10000{i}.mp4", 1000, age=1000 - i) for i in range(5)]
    deleted = MediaRetention(max_bytes=2500).apply(cam)
    assert deleted == files[:3]
    assert [p.exists() for p in files] == [False, False, False, True, True]


def test_an_emptied_day_folder_goes_with_its_files(tmp_path: Path) -> None:
    cam = tmp_path / "cam"
    _file(cam / "20261201" / "frame-1-020000-100001.jpg", 10, age=10 * 86400)
    MediaRetention(max_age=86400).apply(cam)
    assert not (cam / "20261201").exists() and cam.exists()


def test_a_write_cut_short_by_a_crash_is_cleared_after_an_hour(tmp_path: Path) -> None:
    day = tmp_path / "cam" / "20261206"
    stale = _file(day / ".clip-3-020000-100001.mp4.part", 10, age=7200)
    fresh = _file(day / ".clip-4-020000-100002.mp4.part", 10, age=60)        # may still be being written
    other = _file(day / ".notes.part", 10, age=7200)
    MediaRetention(max_age=30 * 86400).apply(tmp_path / "cam")
    assert not stale.exists() and fresh.exists() and other.exists()


def test_one_rule_for_segments_and_media_oldest_first_until_within_the_size(tmp_path: Path) -> None:
    from pipelines.retention import RetentionLimits

    files = [(_file(tmp_path / f"f{i}", 100, age=100 - i), time.time() - (100 - i), 100) for i in range(5)]
    gone = tmp_path / "gone"               # removed by someone else meanwhile: counts as deleted, not an error
    files.insert(0, (gone, time.time() - 200, 100))
    deleted = RetentionLimits(max_bytes=250).expire(files, None, "test")
    assert deleted == [gone] + [f[0] for f in files[1:4]]    # 600 bytes -> 200 left, oldest first
    assert [p.exists() for p, _, _ in files] == [False] * 4 + [True] * 2
    assert RetentionLimits().expire(files, None, "test") == [] and not RetentionLimits().active


def test_a_write_that_fails_leaves_no_partial_file(tmp_path: Path) -> None:
    """A full disk failed the write and left the ``.part`` file holding its space (until retention, if any, an
    hour later). The disk is "full" for real here: a file size limit (RLIMIT_FSIZE) makes write() fail with
    EFBIG, as ENOSPC would, without needing root to mount a small filesystem."""
    rng = np.random.default_rng(0)
    frames = [ClipFrame(i / 25, rng.integers(0, 255, (72, 128, 3), dtype=np.uint8), [(1, [10.0, 10.0, 40.0, 60.0])])
              for i in range(50)]
    clip = Clip("cam/20261206/clip-1-020000-100001.mp4", 0.0, 2.0, frames, {1})
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old_limit[1]))
    try:
        with pytest.raises(OSError):
            write_file(tmp_path, "cam/20261206/snap-1-020000-100002.jpg", b"x" * 100_000)
        with pytest.raises(OSError):
            encode_clip(clip, tmp_path / clip.path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert list((tmp_path / "cam" / "20261206").iterdir()) == []

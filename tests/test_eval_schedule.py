"""`trackstream eval --schedule`: trackstream's schedule picks the frames whose detections are fed, the peers are
fed the very same frames, and every frame is scored (ours predicted, theirs their last boxes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, shared_data
from tests.test_eval import FRAMES, SEQ, _copy_head, _table_rows


@pytest.fixture(scope="module")
def mot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mot")
    _copy_head(shared_data(f"mot/MOT17/train/{SEQ}"), root / "MOT17" / "train" / SEQ, FRAMES)
    return root


def _rows(path: Path) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in path.read_text().splitlines()])


@pytest.mark.parametrize("schedule, low, high", [("interval:3", 30, 50), ("adaptive", 5, 60)])
def test_scheduled_eval_feeds_every_tracker_the_same_frames_and_scores_every_frame(
        mot_root: Path, tmp_path: Path, schedule: str, low: float, high: float) -> None:
    out = tmp_path / "eval"
    peers = ("ultralytics-tracktrack", "ultralytics-botsort", "ultralytics-bytetrack")
    proc = run_cli("eval", str(mot_root), "--out", str(out), "--schedule", schedule, "--tracker", "trackstream",
                   *[a for p in peers for a in ("--tracker", p)], timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = _table_rows(proc.stdout)
    shares = {table[(label, SEQ)]["detected %"] for label in ("trackstream", *peers)}
    assert len(shares) == 1 and low <= shares.pop() <= high  # the same frames fed to all
    for label in ("trackstream", *peers):
        assert 0 < table[(label, SEQ)]["HOTA"] <= 100
    ours = _rows(out / "data" / f"{SEQ}.txt")
    assert len(set(ours[:, 0])) >= 0.9 * FRAMES  # boxes on frames that were not detected too
    theirs = _rows(out / "ultralytics-bytetrack" / "data" / f"{SEQ}.txt")
    by_frame = {int(f): theirs[theirs[:, 0] == f][:, 1:6].tolist() for f in set(theirs[:, 0])}
    repeats = sum(by_frame.get(f) == by_frame.get(f - 1) for f in range(2, FRAMES + 1) if f in by_frame)
    assert repeats >= 0.3 * FRAMES  # a peer not fed a frame keeps showing its last boxes


def test_a_bad_schedule_is_one_line_and_exit_2(mot_root: Path, tmp_path: Path) -> None:
    proc = run_cli("eval", str(mot_root), "--out", str(tmp_path / "o"), "--schedule", "sometimes", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--schedule" in lines[0], proc.stderr


def test_a_config_with_a_schedule_section_sets_the_schedule_the_peers_are_fed(mot_root: Path, tmp_path: Path) -> None:
    shares = {}
    for name, text in (("default", ""), ("eager", "schedule:\n  travel: 0.01\n  lost_check: 0.0\n")):
        config = tmp_path / f"{name}.yaml"
        config.write_text(text)
        proc = run_cli("eval", str(mot_root), "--out", str(tmp_path / name), "--schedule", "adaptive", "--config",
                       str(config), "--tracker", "trackstream", "--tracker", "ultralytics-bytetrack", timeout=300)
        assert proc.returncode == 0, proc.stderr
        table = _table_rows(proc.stdout)
        ours, peer = (table[(label, SEQ)]["detected %"] for label in ("trackstream", "ultralytics-bytetrack"))
        assert ours == peer  # the peer is fed the frames of the configured schedule
        shares[name] = ours
    assert shares["default"] < 60 < 90 <= shares["eager"]  # the knobs of adaptive, from the config's schedule:


def test_a_scheduled_eval_with_counting_lines_plans_around_them_as_run_does(mot_root: Path, tmp_path: Path) -> None:
    # trackstream run's adaptive schedule detects more often while a track nears a counting line (so a crossing
    # is decided on a detection soon after it happens); the eval's schedule sees --count-lines the same way
    def detected(*extra: str) -> float:
        proc = run_cli("eval", str(mot_root), "--out", str(tmp_path / ("lines" if extra else "none")),
                       "--schedule", "adaptive", "--tracker", "trackstream", *extra, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return _table_rows(proc.stdout)[("trackstream", SEQ)]["detected %"]

    without, with_lines = detected(), detected("--count-lines", "auto")
    assert with_lines > without + 5, (without, with_lines)

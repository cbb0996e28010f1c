"""A phone video with a display rotation is processed as a player shows it (real files made with ffmpeg)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import require_binary, run_cli


@pytest.fixture(scope="module")
def phone_pair(bikes_video, tmp_path_factory) -> tuple[Path, Path]:
    """Frames 40..79 of bikes.mp4 (riders in view) twice, losslessly: ``shown`` as they are, and ``phone``
    stored sideways (turned clockwise) with a rotate=90 tag, as a phone stores a video: a player turns it back,
    so both look the same."""
    ffmpeg = require_binary("ffmpeg")
    folder = tmp_path_factory.mktemp("rotation")
    shown, sideways, phone = folder / "shown.mp4", folder / "sideways.mp4", folder / "phone.mp4"
    for target, turn in ((shown, ""), (sideways, ",transpose=clock")):
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(bikes_video), "-vf",
                        f"select=between(n\\,40\\,79),setpts=N/25/TB{turn}", "-r", "25", "-c:v", "libx264",
                        "-qp", "0", "-pix_fmt", "yuv420p", str(target)], check=True)
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(sideways), "-c", "copy", "-metadata:s:v",
                    "rotate=90", str(phone)], check=True)
    with av.open(str(phone)) as container:
        stored = container.streams.video[0]
        assert (stored.width, stored.height) == (272, 640)     # stored portrait, shown landscape
    return phone, shown


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_rotated_video_is_detected_drawn_and_sized_as_a_player_shows_it(phone_pair, pose_weights, tmp_path):
    width, height = 640, 272                                # what a player shows
    for video, name in zip(phone_pair, ("phone", "shown")):
        done = run_cli("run", str(video), "--model", str(pose_weights), "--imgsz", "640",
                       "--jsonl", str(tmp_path / f"{name}.jsonl"), "--out", str(tmp_path / f"{name}.mp4"), "--quiet")
        assert done.returncode == 0, done.stderr
    phone, shown = _records(tmp_path / "phone.jsonl"), _records(tmp_path / "shown.jsonl")
    assert len(phone) == len(shown) == 40
    assert all((r["width"], r["height"]) == (width, height) for r in phone)
    matched = total = 0
    for a, b in zip(phone, shown):                          # the same people in the same places
        theirs = [t["box"] for t in b["tracks"]]
        for track in a["tracks"]:
            total += 1
            assert 0 <= track["box"][0] <= track["box"][2] <= width and track["box"][3] <= height
            matched += any(np.abs(np.subtract(track["box"], box)).max() < 4.0 for box in theirs)
    assert total >= 5 and matched >= 0.9 * total, (matched, total)
    with av.open(str(tmp_path / "phone.mp4")) as container:  # the annotated video is upright too
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (width, height) and not frame.rotation

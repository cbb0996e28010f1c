"""A file that ends before the frames its container states says how many are missing (a real truncated file)."""

from __future__ import annotations

import subprocess

from tests.conftest import require_binary, run_cli


def test_a_truncated_file_warns_how_many_frames_were_missing(bikes_video, tmp_path, pose_weights):
    ffmpeg = require_binary("ffmpeg")
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(bikes_video), "-c", "copy", "-movflags",
                    "+faststart", str(whole)], check=True)                  # index first: the cut file opens
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])                           # a copy that stopped at 60 %
    done = run_cli("run", str(cut), "--model", str(pose_weights), "--imgsz", "160", "--vid-stride", "10",
                   "--jsonl", str(tmp_path / "cut.jsonl"), "--quiet")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "frames its container states" in line]
    assert len(warnings) == 1, done.stderr
    read = int(warnings[0].split("ended after ")[1].split(" ")[0])
    assert 0 < read < 250 and f"({250 - read} missing" in warnings[0]
    full = run_cli("run", str(whole), "--model", str(pose_weights), "--imgsz", "160", "--vid-stride", "25",
                   "--quiet")
    assert "frames its container states" not in full.stderr                 # a whole file does not warn

"""Zones and lines beyond the picture: one warning per source naming each, not one per frame (real run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.processing.zones import LineConfig, ZoneConfig, outside_picture
from tests.conftest import run_cli

SIZE = (640, 272)  # bikes.mp4


@pytest.mark.parametrize(("polygon", "expected"), [
    ([[0, 0], [640, 0], [640, 272], [0, 272]], None),            # the whole picture, edges included
    ([[600, 200], [700, 200], [700, 260], [600, 260]], "partly"),
    ([[700, 0], [800, 0], [800, 100]], "wholly"),
    ([[-50, -50], [700, -50], [700, 300], [-50, 300]], "partly"),  # every corner outside, covering the picture
    ([[-10, 300], [650, 300], [650, 400]], "wholly"),              # below the picture
])
def test_a_zone_is_inside_partly_or_wholly_outside(polygon, expected):
    found = outside_picture([ZoneConfig("z", polygon)], [], SIZE)
    assert found == ([] if expected is None else [f"zone 'z' {expected}"])


@pytest.mark.parametrize(("points", "expected"), [
    ([[10, 10], [630, 260]], None),
    ([[320, 100], [320, 500]], "partly"),
    ([[-100, 136], [900, 136]], "partly"),      # both ends outside, crossing the picture
    ([[700, -10], [900, 500]], "wholly"),
    ([[-100, 500], [500, 900]], "wholly"),
])
def test_a_line_is_inside_partly_or_wholly_outside(points, expected):
    found = outside_picture([], [LineConfig("l", points)], SIZE)
    assert found == ([] if expected is None else [f"line 'l' {expected}"])


def test_a_run_warns_once_naming_each_zone_and_line_outside_the_picture(bikes_video, tmp_path):
    config = tmp_path / "cam.yaml"
    config.write_text(
        "zones:\n"
        "  - {name: inside, polygon: [[0, 0], [320, 0], [320, 272], [0, 272]]}\n"
        "  - {name: driveway, polygon: [[600, 200], [1200, 200], [1200, 700], [600, 700]]}\n"
        "  - {name: garage, polygon: [[1000, 500], [1900, 500], [1900, 1000]]}\n"
        "lines:\n"
        "  - {name: gate, points: [[1280, 0], [1280, 720]]}\n"
        "  - {name: kerb, points: [[0, 250], [600, 250]]}\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = run_cli("run", str(bikes_video), "--config", str(config), "--jsonl", str(out), "--max-frames", "20",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "outside its" in line]
    assert len(warnings) == 1, done.stderr  # once, not once per frame
    line = warnings[0]
    for phrase in ("zone 'driveway' partly", "zone 'garage' wholly", "line 'gate' wholly", "640x272"):
        assert phrase in line, line
    assert "'inside'" not in line and "'kerb'" not in line
    assert len(out.read_text(encoding="utf-8").splitlines()) == 20


def _calibration_warnings(bikes_video: Path, tmp_path: Path, image_points: str) -> list[str]:
    """The calibration warnings of a 5-frame run of the 640x272 clip with these ``image_points``."""
    config = tmp_path / "cam.yaml"
    config.write_text(
        "calibration:\n"
        f"  image_points: {image_points}\n"
        "  ground_points: [[-5, 0], [5, 0], [5, 40], [-5, 40]]\n", encoding="utf-8")
    done = run_cli("run", str(bikes_video), "--config", str(config), "--jsonl", str(tmp_path / "o.jsonl"),
                   "--max-frames", "5", "--quiet")
    assert done.returncode == 0, done.stderr
    return [line for line in done.stderr.splitlines() if "calibration.image_points" in line]


def test_a_calibration_measured_on_another_picture_size_is_warned_about(bikes_video, tmp_path):
    """The docs' 640x480 road calibration on the 640x272 clip: two of its points lie below the picture,
    so it cannot have been picked in it; its speeds would be wrong without a sign."""
    warnings = _calibration_warnings(bikes_video, tmp_path, "[[20, 460], [620, 460], [370, 100], [270, 100]]")
    assert len(warnings) == 1, warnings
    assert "[20.0, 460.0], [620.0, 460.0]" in warnings[0] and "640x272" in warnings[0], warnings[0]
    assert "[370.0, 100.0]" not in warnings[0]


def test_a_calibration_inside_the_picture_is_not_warned_about(bikes_video, tmp_path):
    assert _calibration_warnings(bikes_video, tmp_path, "[[20, 260], [620, 260], [370, 100], [270, 100]]") == []

"""`trackstream run --state DIR` resumed with other detection or tracking settings: one warning line naming each
setting that differs (its outputs mix both); a zone or line moved under its name counts from 0 at the resume (the
saved counts and sides belong to the old place); a snapshot of an earlier release, without settings, resumes with
one line saying they cannot be compared. Real runs of the CLI on the bundled clip, a few frames each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import load_config
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

ROAD = "lines: [{name: road, points: [[400, 0], [400, 270]]}]\n"
MOVED = "lines: [{name: road, points: [[300, 0], [300, 270]]}]\n"
DIFFER = "resuming with settings that differ from the saved run's"


def _run(video: Path, weights: Path, out: Path, config: str, *extra: str, imgsz: str = "160"):  # type: ignore[no-untyped-def]
    (out / "c.yaml").write_text(config)
    return run_cli("run", str(video), "--model", str(weights), "--imgsz", imgsz, "--config", str(out / "c.yaml"),
                   "--jsonl", str(out / "t.jsonl"), "--events", str(out / "e.jsonl"), "--state", str(out / "state"),
                   "--max-frames", "12", *extra)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if DIFFER in line]


def test_resume_with_other_settings_warns_once_naming_each(tmp_path, bikes_video, pose_weights):
    first = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert first.returncode == 0, first.stderr
    same = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert same.returncode == 0, same.stderr
    assert _warnings(same.stderr) == []   # the same settings: nothing to say

    other = ROAD + "zones: [{name: left, polygon: [[0, 0], [320, 0], [320, 270], [0, 270]]}]\n" \
        "tracker: {minimum_iou: 0.4}\n"
    proc = _run(bikes_video, pose_weights, tmp_path, other, "--conf", "0.3", "--vid-stride", "2", imgsz="192")
    assert proc.returncode == 0, proc.stderr
    warned = _warnings(proc.stderr)
    assert len(warned) == 1, proc.stderr
    line = warned[0]
    assert "bikes: " + DIFFER in line
    for change in ("imgsz 160 -> 192", "conf 0.25 -> 0.3", "vid_stride 1 -> 2", "tracker.minimum_iou 0.3 -> 0.4",
                   "zone left added"):
        assert change in line, line
    assert "the outputs will mix both (--fresh-state starts over)" in line
    # the snapshot now holds this run's settings: resuming again with them says nothing
    again = _run(bikes_video, pose_weights, tmp_path, other, "--conf", "0.3", "--vid-stride", "2", imgsz="192")
    assert again.returncode == 0 and _warnings(again.stderr) == [], again.stderr


def test_another_model_is_named_by_its_file(tmp_path, bikes_video, pose_weights):
    first = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert first.returncode == 0, first.stderr
    copy = tmp_path / "other-pose.pt"   # the same weights under another name: another model to the user
    copy.write_bytes(pose_weights.read_bytes())
    proc = _run(bikes_video, copy, tmp_path, ROAD)
    assert proc.returncode == 0, proc.stderr
    assert f"model {pose_weights.name} -> other-pose.pt" in "\n".join(_warnings(proc.stderr)), proc.stderr


def test_a_moved_line_counts_from_0_at_the_resume_and_the_rest_carries_on(tmp_path, bikes_video, pose_weights):
    """A line moved under its name (an operator adjusting a camera's counting line, then restarting it): its saved
    counts and the side each track was on belong to the old place. The resume goes on (the tracks, the frames
    and every other zone and line are kept) and the moved line counts from 0, said in the warning. It was first
    refused, leaving --fresh-state, which throws every count and track away, as the only way on."""
    config = "lines: [{name: road, points: [[320, 0], [320, 272]]}, {name: kerb, points: [[0, 200], [639, 200]]}]\n"
    first = _run(bikes_video, pose_weights, tmp_path, config, "--max-frames", "120")
    assert first.returncode == 0, first.stderr
    assert "line road 0 left_to_right, 1 right_to_left" in first.stderr   # bikes cross x=320 in frames 0..119
    moved = config.replace("[[320, 0], [320, 272]]", "[[600, 0], [600, 272]]")
    proc = _run(bikes_video, pose_weights, tmp_path, moved, "--max-frames", "120")
    assert proc.returncode == 0, proc.stderr
    warned = _warnings(proc.stderr)
    assert len(warned) == 1 and "line road moved (it counts from 0 at the resume)" in warned[0]
    assert "line road 0 left_to_right, 0 right_to_left" in proc.stderr   # not the old place's crossing
    saved = json.loads((tmp_path / "state" / "bikes.json").read_text())["processor"]["events"]
    assert saved["by_class"]["lines"].get("road", {}) == {}           # nor per class
    assert "resumed after 120 frames: 240 in all" in proc.stderr
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 240   # appended: nothing started over


def test_a_snapshot_without_settings_resumes_saying_once_they_cannot_be_compared(tmp_path, bikes_video,
                                                                                 pose_weights):
    first = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "state" / "bikes.json"
    doc = json.loads(state.read_text())
    del doc["settings"]   # as an earlier trackstream saved it
    state.write_text(json.dumps(doc))
    proc = _run(bikes_video, pose_weights, tmp_path, MOVED, imgsz="192")
    assert proc.returncode == 0, proc.stderr
    assert _warnings(proc.stderr) == []
    said = [line for line in proc.stderr.splitlines() if "do not record their run's settings" in line]
    assert len(said) == 1 and "bikes" in said[0], proc.stderr


def test_a_model_url_keeps_no_secret_in_the_snapshot():
    from pipelines.engine.resume_settings import run_settings

    config = load_config(None, {"detector.model": "https://user:s3cret@models.example/m.onnx?token=t0ken&v=2",
                                "sources": ["bikes.mp4"]})
    doc = json.dumps(run_settings(config, config.sources[0]))
    assert "s3cret" not in doc and "t0ken" not in doc and "user" not in doc
    assert "models.example/m.onnx" in doc


def test_several_sources_each_say_it_and_how_to_start_that_one_over(tmp_path, bikes_video, pose_weights):
    videos = []
    for name in ("gate", "yard"):
        videos.append(tmp_path / f"{name}.mp4")
        videos[-1].write_bytes(bikes_video.read_bytes())

    def run(imgsz: str):  # type: ignore[no-untyped-def]
        return run_cli("run", *map(str, videos), "--model", str(pose_weights), "--imgsz", imgsz,
                       "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--state", str(tmp_path / "state"),
                       "--max-frames", "8")

    assert run("160").returncode == 0
    proc = run("192")
    assert proc.returncode == 0, proc.stderr
    warned = _warnings(proc.stderr)
    assert len(warned) == 2, proc.stderr
    for name in ("gate", "yard"):
        line = next(w for w in warned if f"{name}: {DIFFER}" in w)
        assert f"{name}: {DIFFER}: imgsz 160 -> 192;" in line
        assert f"remove {tmp_path / 'state' / name}.json and run with --overwrite to start {name} over" in line
        # the words of the refusal of a replaced source (test_resume_binding), from one place
        assert (f"(remove {tmp_path / 'state' / name}.json and run with --overwrite to start {name} over; "
                "--fresh-state starts every source over)") in line

"""`trackstream run --state DIR` resumed with other detection or tracking settings: one warning line naming each
setting that differs (its outputs mix both), the model by its content (the same weights on another path or
under another name are the same model); a zone or line moved under its name counts from 0 at the resume (the
saved counts and sides belong to the old place); a snapshot of an earlier release, without settings, resumes with
one line saying they cannot be compared. Real runs of the CLI on the bundled clip, a few frames each."""

from __future__ import annotations

import json
import os
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


def _other_weights(path: Path) -> Path:
    """Real YOLO11n-pose weights other than the bundled ones (random, from Ultralytics' architecture yaml, offline)."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    YOLO("yolo11n-pose.yaml").save(str(path))
    return path


def test_another_model_is_named_by_its_file(tmp_path, bikes_video, pose_weights):
    first = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert first.returncode == 0, first.stderr
    other = _other_weights(tmp_path / "other-pose.pt")   # other weights: another model
    proc = _run(bikes_video, other, tmp_path, ROAD, "--runtime", "torch")   # torch: no export of random weights
    assert proc.returncode == 0, proc.stderr
    assert f"model {pose_weights.name} -> other-pose.pt" in "\n".join(_warnings(proc.stderr)), proc.stderr


def test_the_same_weights_moved_or_copied_under_another_name_are_the_same_model(tmp_path, bikes_video,
                                                                                pose_weights):
    """The model was recorded by its path: a resume on another Ray node, or after the weights moved or were
    copied, warned that the model changed and the outputs mixed two models, for the very same weights. It is
    compared by content now; other weights put under the same path are still said to be another model."""
    first_home = tmp_path / "node-a" / pose_weights.name
    first_home.parent.mkdir()
    first_home.write_bytes(pose_weights.read_bytes())
    assert _run(bikes_video, first_home, tmp_path, ROAD).returncode == 0
    moved = tmp_path / "node-b" / pose_weights.name
    moved.parent.mkdir()
    first_home.rename(moved)                                  # the same file, elsewhere (another machine's path)
    copied = tmp_path / "node-c" / "pose-copy.pt"
    copied.parent.mkdir()
    copied.write_bytes(moved.read_bytes())                   # the same weights under another name
    for model in (moved, copied):
        proc = _run(bikes_video, model, tmp_path, ROAD)
        assert proc.returncode == 0, proc.stderr
        assert _warnings(proc.stderr) == [], proc.stderr
    _other_weights(copied)                                   # other weights at the path the snapshot names
    proc = _run(bikes_video, copied, tmp_path, ROAD, "--runtime", "torch")
    assert proc.returncode == 0, proc.stderr
    warned = _warnings(proc.stderr)
    assert len(warned) == 1 and "model pose-copy.pt (its content changed)" in warned[0], proc.stderr


def test_a_snapshot_that_recorded_the_model_by_path_alone_resumes_comparing_its_name(tmp_path, bikes_video,
                                                                                     pose_weights):
    """A snapshot of the release that recorded the model's path alone, resumed on another machine: it cannot
    tell the content, so the same file name on another path says nothing, and the run goes on."""
    first = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "state" / "bikes.json"
    doc = json.loads(state.read_text())
    doc["settings"].pop("model_content", None)               # as that release saved it, on another node
    doc["settings"]["model"] = f"/srv/node-a/models/{pose_weights.name}"
    state.write_text(json.dumps(doc))
    proc = _run(bikes_video, pose_weights, tmp_path, ROAD)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert _warnings(proc.stderr) == [], proc.stderr
    assert "model_content" in json.loads(state.read_text())["settings"]   # saved again as this release records it


def test_a_recorded_path_of_another_name_is_another_model():
    from pipelines.engine.resume_settings import compare

    old = {"model": "/srv/node-a/models/older.pt", "imgsz": 160}   # recorded by path alone
    assert compare(old, {"model": "/opt/m/yolo11n-pose.pt", "model_content": {"size": 1, "sha256": "ab"},
                         "imgsz": 160}) == ([], ["model older.pt -> yolo11n-pose.pt"])


def test_an_exported_model_folder_is_the_same_model_wherever_it_is_copied_and_another_when_a_file_changes(
        tmp_path, pose_weights):
    import shutil

    from pipelines.detection.model_cache import ModelCache
    from pipelines.detection.runtime import openvino_installed
    from pipelines.engine.resume_settings import compare, run_settings

    if not openvino_installed():
        pytest.skip("OpenVINO is not installed: no exported model folder")
    exported = ModelCache().get(pose_weights, "openvino", 160).path   # the suite's export cache: built once
    here, there = tmp_path / "a" / exported.name, tmp_path / "b" / exported.name
    shutil.copytree(exported, here)
    shutil.copytree(exported, there)

    def settings(model: Path):  # type: ignore[no-untyped-def]
        config = load_config(None, {"detector.model": str(model), "sources": ["bikes.mp4"]})
        return run_settings(config, config.sources[0])

    saved = settings(here)
    assert compare(saved, settings(there)) == ([], [])
    weights = next(there.glob("*.bin"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1                                             # one byte of its weights: another model
    weights.write_bytes(bytes(data))
    assert compare(saved, settings(there)) == ([], [f"model {os.path.realpath(here)} -> {os.path.realpath(there)}"])
    assert compare(saved, settings(here)) == ([], [])


def test_an_onnx_model_with_external_weights_is_another_model_when_only_those_weights_change(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from pipelines.detection.model_identity import model_fingerprint

    # a real ONNX graph (y = x @ W) saved with its weights in an external data file, as big models are
    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [weight])
    model = tmp_path / "m.onnx"
    onnx.save_model(helper.make_model(graph), str(model), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.weights", size_threshold=0)
    data = tmp_path / "m.weights"
    assert data.is_file() and model.stat().st_size < data.stat().st_size   # the weights are outside the graph
    before = model_fingerprint(model)
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 1                                       # one byte of the weights: another model
    data.write_bytes(bytes(raw))
    after = model_fingerprint(model)
    assert before is not None and after is not None and before["sha256"] != after["sha256"]
    assert before["size"] == model.stat().st_size + data.stat().st_size


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
    settings = run_settings(config, config.sources[0])
    doc = json.dumps(settings)
    assert "s3cret" not in doc and "t0ken" not in doc and "user" not in doc
    assert "models.example/m.onnx" in doc
    assert settings["model_content"] is None   # not a local file: compared by its URL, read from nowhere


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

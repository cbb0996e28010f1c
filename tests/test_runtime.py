"""detector.runtime: on a CPU a .pt model is exported once (to both ONNX Runtime and OpenVINO, the faster on
this CPU, as timed once, runs; ONNX alone without OpenVINO), cached, verified and run; its detections agree
with PyTorch's on real frames.

Exports are slow, so one session-scoped fixture exports what the tests share (the bundled pose model at
320 px to both runtimes, which ``auto`` times, and random-weight detect/segment models saved from Ultralytics'
architecture yamls, the only detect/segment weights that can be exported offline here, to the runtime ``auto``
chose); the cache tests export the small detect model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import DetectorConfig
from pipelines.detection.detector import Detector, copy_threads
from pipelines.detection.model_cache import MANIFEST, ModelCache
from pipelines.detection.runtime import (RuntimeChoice, candidate_runtimes, model_format, openvino_installed,
                                        resolve_runtime)
from pipelines.errors import ModelError
from pipelines.frames import VideoFrame
from tests.conftest import REPO, frames_at, run_cli

IMGSZ = 320
FRAMES = (0, 60, 115, 125, 130, 135, 200, 249)  # empty road, cyclists entering, one filling half the frame
THREADS = copy_threads(None, "cpu", "m.pt")  # what a default Detector's copy computes with, here


@dataclass(frozen=True)
class Exported:
    cache: Path
    auto: str           # the runtime auto runs the pose model in on this CPU (timed by the fixture)
    pose: Path          # the bundled YOLO11n-pose .pt
    detect: Path        # random-weight YOLO11n detect .pt
    segment: Path       # random-weight YOLO11n-seg .pt


def _random_weights(arch: str, path: Path) -> Path:
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)  # deterministic weights: the same file, so the same cache key, on every run
    YOLO(arch).save(str(path))
    return path


@pytest.fixture(scope="session")
def exported(pose_weights, tmp_path_factory) -> Exported:
    root = tmp_path_factory.mktemp("runtime")
    cache = root / "cache"
    detect = _random_weights("yolo11n.yaml", root / "detect.pt")
    segment = _random_weights("yolo11n-seg.yaml", root / "segment.pt")
    auto = resolve_runtime("auto", str(pose_weights), "cpu", IMGSZ, str(cache), THREADS)
    assert auto.exported_seconds > 0
    for weights in (detect, segment):
        assert ModelCache(cache).get(weights, auto.runtime, IMGSZ).built
    return Exported(cache, auto.runtime, pose_weights, detect, segment)


@pytest.fixture(scope="module")
def frames(bikes_video) -> list[VideoFrame]:
    return frames_at(bikes_video, FRAMES)


def _detector(exported: Exported, runtime: str, model: Path, **settings: object) -> Detector:
    config = DetectorConfig(imgsz=IMGSZ, runtime=runtime, cache_dir=str(exported.cache), device="cpu",
                            **settings)  # type: ignore[arg-type]
    return Detector(config, str(model))


# --- which runtime -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("requested, model, device, installed, expected", [
    ("auto", "m.pt", "cpu", True, ("onnx", "openvino")),  # both: the faster on this CPU runs (timed once)
    ("auto", "m.pt", "cpu", False, ("onnx",)),       # no OpenVINO: ONNX Runtime fp32
    ("auto", "m.pt", "cuda:0", True, ("torch",)),    # CUDA keeps PyTorch
    ("auto", "m.onnx", "cpu", True, ("onnx",)),      # an exported model runs as given
    ("auto", "m_openvino_model", "cpu", True, ("openvino",)),
    ("auto", "m.engine", "cuda:0", True, ("tensorrt",)),
    ("auto", "yolo11n.yaml", "cpu", True, ("torch",)),  # random weights from an architecture: nothing to export
    ("torch", "m.pt", "cpu", True, ("torch",)),
    ("onnx", "m.pt", "cpu", True, ("onnx",)),
    ("onnx", "m.onnx", "cpu", True, ("onnx",)),
    ("openvino", "m.pt", "cpu", False, ModelError),  # asked for, not installed: one line, no pip install
    ("openvino", "m.pt", "cuda:0", True, ModelError),
    ("openvino", "m.onnx", "cpu", True, ModelError),  # only .pt weights are converted
    ("onnx", "yolo11n.yaml", "cpu", True, ModelError),
])
def test_runtime_choice(monkeypatch, requested, model, device, installed, expected):
    import pipelines.detection.runtime as runtime

    monkeypatch.setattr(runtime, "openvino_installed", lambda: installed)
    if isinstance(expected, type):
        with pytest.raises(expected) as err:
            candidate_runtimes(requested, model, device)
        assert "\n" not in str(err.value) and "detector.runtime" in str(err.value)
        return
    assert candidate_runtimes(requested, model, device) == expected


def test_model_format_of_an_openvino_folder_without_the_usual_name(tmp_path):
    (tmp_path / "model.xml").write_text("<net/>")
    assert model_format(str(tmp_path)) == "openvino" and model_format(str(tmp_path / "m.pt")) == "torch"


# --- auto: the faster runtime on this CPU, timed once -------------------------------------------------------

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="auto times ONNX Runtime against OpenVINO")


def _copied_cache(exported: Exported, tmp_path: Path, decided: bool = True) -> Path:
    """A copy of the session's cache (its exports: nothing is exported again), with the runtime decision its
    fixture timed, or without any (``decided=False``)."""
    cache = tmp_path / "cache"
    shutil.copytree(exported.cache, cache)
    for decision in cache.glob("*-runtime-*.json") if not decided else ():
        decision.unlink()
    return cache


def _auto(exported: Exported, cache: Path) -> RuntimeChoice:
    return resolve_runtime("auto", str(exported.pose), "cpu", IMGSZ, str(cache), THREADS)


@needs_openvino
def test_auto_times_both_runtimes_once_then_reads_the_decision(exported, tmp_path, caplog):
    caplog.set_level(logging.INFO, "pipelines.detection")
    cache = _copied_cache(exported, tmp_path, decided=False)
    first = _auto(exported, cache)
    timed = first.measurement
    assert timed is not None and timed.measured and first.exported_seconds == 0  # both exports from the cache
    recorded = json.loads(timed.path.read_text())
    assert sorted(recorded["ms"]) == ["onnx", "openvino"] and min(recorded["ms"].values()) > 0
    assert first.runtime == recorded["runtime"] == min(recorded["ms"], key=recorded["ms"].get)
    assert recorded["key"]["imgsz"] == IMGSZ and recorded["key"]["threads"] == THREADS
    (line,) = [m for m in caplog.messages if m.startswith("detector: runtime")]
    assert line.startswith(f"detector: runtime {first.runtime} (measured on this CPU: onnx ")
    assert f"px frame on {THREADS} thread" in line and "yolo11n-pose.pt from the cache" in line

    os.utime(timed.path, (1_000_000, 1_000_000))
    caplog.clear()
    again = _auto(exported, cache)
    assert again.runtime == first.runtime and again.measurement is not None and not again.measurement.measured
    assert timed.path.stat().st_mtime == 1_000_000  # not measured nor written again
    assert not any(m.startswith("timing") for m in caplog.messages)
    (line,) = [m for m in caplog.messages if m.startswith("detector: runtime")]
    assert "(measured on this CPU before, from the cache: onnx " in line


@needs_openvino
def test_auto_runs_the_runtime_the_recorded_times_say_is_faster(exported, tmp_path, frames):
    """The decision file, not a rule, picks the runtime: with the times swapped, the other one runs."""
    cache = _copied_cache(exported, tmp_path)
    timed = _auto(exported, cache).measurement
    assert timed is not None and not timed.measured
    recorded = json.loads(timed.path.read_text())
    slower = max(recorded["ms"], key=recorded["ms"].get)
    recorded["ms"] = {"onnx": recorded["ms"]["openvino"], "openvino": recorded["ms"]["onnx"]}
    timed.path.write_text(json.dumps(recorded))
    det = Detector(DetectorConfig(imgsz=IMGSZ, cache_dir=str(cache), device="cpu"), str(exported.pose))
    assert det.runtime == slower and det.runtime_choice.measurement is not None
    assert not det.runtime_choice.measurement.measured
    assert sum(len(d) for d in det.detect(frames)) > 0


@needs_openvino
@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                                   # cut short, as a full disk leaves it
    lambda text: "[]",                                                      # JSON, but no decision
    lambda text: json.dumps({**json.loads(text), "ms": {"onnx": -1.0, "openvino": 9.0}}),  # right key, bad time
], ids=["cut short", "no decision", "negative time"])
def test_a_damaged_decision_is_timed_again(exported, tmp_path, caplog, damage):
    cache = _copied_cache(exported, tmp_path)
    timed = _auto(exported, cache).measurement
    assert timed is not None and not timed.measured
    timed.path.write_text(damage(timed.path.read_text()))
    caplog.set_level(logging.INFO, "pipelines.detection")
    again = _auto(exported, cache)
    assert again.measurement is not None and again.measurement.measured
    assert any("is not usable" in m and "measuring again" in m for m in caplog.messages)
    recorded = json.loads(timed.path.read_text())
    assert recorded["runtime"] == again.runtime and min(recorded["ms"].values()) > 0
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp")] == []


@needs_openvino
def test_concurrent_first_runs_time_the_runtimes_once(exported, tmp_path):
    """Two workers (or processes, Ray actors) starting at once with no decision: one times the runtimes, the
    other waits on the decision's lock and then reads what it wrote."""
    cache = _copied_cache(exported, tmp_path, decided=False)
    results: list[RuntimeChoice] = []
    threads = [threading.Thread(target=lambda: results.append(_auto(exported, cache))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(bool(r.measurement and r.measurement.measured) for r in results) == [False, True]
    assert len({r.runtime for r in results}) == 1 and len(list(cache.glob("*-runtime-*.json"))) == 1


@needs_openvino
@pytest.mark.parametrize("recorded", [False, True], ids=["first run", "openvino recorded as the faster"])
def test_a_broken_openvino_leaves_auto_running_onnx(exported, bikes_video, tmp_path, recorded):
    """An OpenVINO install that cannot be imported (a wheel built for another CPU or glibc) made every run with
    the default runtime fail, on the first run and on a machine where OpenVINO had been measured the faster
    (the decision's key holds package versions, which a broken install keeps); now ONNX Runtime runs, a warning
    says why, and nothing is recorded, so a run after the repair compares them (or reads the old decision). The
    broken install is a real one: a package named openvino that fails to import, found before the real one."""
    broken = tmp_path / "broken" / "openvino"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("libopenvino.so.2541: cannot open shared object file")\n')
    cache = tmp_path / "cache"
    shutil.copytree(exported.cache, cache,
                    ignore=None if recorded else shutil.ignore_patterns("*openvino*", "*-runtime-*.json"))
    decisions = sorted(cache.glob("*-runtime-*.json"))
    for decision in decisions:   # OpenVINO the faster, whatever this CPU measured
        doc = json.loads(decision.read_text())
        decision.write_text(json.dumps({**doc, "runtime": "openvino", "ms": {"onnx": 9.0, "openvino": 5.0}}))
    before = [d.read_bytes() for d in decisions]
    assert bool(decisions) == recorded
    env = {"TRACKSTREAM_MODEL_CACHE": str(cache), "PYTHONPATH": f"{broken.parent}{os.pathsep}{REPO}"}
    result = run_cli("run", str(bikes_video), "--model", str(exported.pose), "--imgsz", str(IMGSZ),
                     "--max-frames", "3", "--jsonl", str(tmp_path / "out.jsonl"), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if "cannot run yolo11n-pose.pt here" in line]
    assert "openvino cannot run" in warning and "libopenvino.so.2541" in warning and "running onnx" in warning
    assert "detector: runtime onnx (yolo11n-pose.pt " in result.stderr and "Traceback" not in result.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert sorted(cache.glob("*-runtime-*.json")) == decisions and [d.read_bytes() for d in decisions] == before


def test_without_openvino_auto_runs_onnx_untimed(exported, tmp_path, monkeypatch):
    import pipelines.detection.runtime as runtime

    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    cache = _copied_cache(exported, tmp_path, decided=False)
    choice = _auto(exported, cache)
    assert choice.runtime == "onnx" and choice.measurement is None and choice.exported_seconds == 0
    assert list(cache.glob("*-runtime-*.json")) == []


# --- agreement with PyTorch --------------------------------------------------------------------------------

def _match(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j) of best-IoU matches of a's boxes among b's."""
    pairs = []
    for i, box in enumerate(a_xyxy):
        x1 = np.maximum(box[0], b_xyxy[:, 0])
        y1 = np.maximum(box[1], b_xyxy[:, 1])
        x2 = np.minimum(box[2], b_xyxy[:, 2])
        y2 = np.minimum(box[3], b_xyxy[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = inter / (area(box) + area(b_xyxy) - inter)
        pairs.append((i, int(np.argmax(iou))))
    return pairs


def test_exported_pose_model_detects_what_pytorch_detects(exported, frames):
    torch_det = _detector(exported, "torch", exported.pose)
    fast = _detector(exported, "auto", exported.pose)
    assert fast.runtime == exported.auto and Path(fast.model_name).is_relative_to(exported.cache)
    people = 0
    for frame in frames:
        ref, got = torch_det.detect([frame])[0], fast.detect([frame])[0]
        sure = ref.confidence > 0.35  # not near the 0.25 threshold, where fp rounding may flip a detection
        # the same detections, confidences within the 0.02 allowed below (a 0.349 may come out as 0.360: the
        # runtimes' kernels differ between CPUs)
        assert (got.confidence > 0.37).sum() <= sure.sum() <= (got.confidence > 0.33).sum(), f"frame {frame.index}"
        for i, j in _match(ref.xyxy[sure], got.xyxy):
            people += 1
            assert ref.class_id[sure][i] == got.class_id[j]
            np.testing.assert_allclose(got.xyxy[j], ref.xyxy[sure][i], atol=1.5)  # px, in the 640x272 frame
            assert abs(got.confidence[j] - ref.confidence[sure][i]) < 0.02
            seen = ref.keypoints[sure][i][:, 2] > 0.5
            np.testing.assert_allclose(got.keypoints[j][seen, :2], ref.keypoints[sure][i][seen, :2], atol=2.0)
    assert people >= 6  # the cyclists of the later frames were compared, not only empty frames


def _raw_outputs(model_path: Path, image: np.ndarray) -> list[np.ndarray]:
    """The network's raw outputs (before NMS) for one letterboxed image, through Ultralytics' backend."""
    import torch
    from ultralytics.nn.autobackend import AutoBackend

    backend = AutoBackend(str(model_path), device=torch.device("cpu"), verbose=False)
    x = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)))[None].float() / 255
    with torch.inference_mode():
        out = backend(x)
    first = out[0] if isinstance(out, (list, tuple)) else out
    tensors = list(first) if isinstance(first, (list, tuple)) else [first]
    if isinstance(out, (list, tuple)) and not isinstance(first, (list, tuple)) and len(out) > 1 \
            and not isinstance(out[1], dict):
        tensors.append(out[1])  # an exported model returns its outputs side by side
    return [np.asarray(t.cpu() if hasattr(t, "cpu") else t, np.float32) for t in tensors]


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_exported_detect_and_segment_models_compute_what_pytorch_computes(exported, frames, task):
    """Random weights give meaningless boxes, so the raw outputs are compared: every box coordinate, class
    score, mask coefficient and mask prototype of a real frame's letterboxed input."""
    from ultralytics.data.augment import LetterBox

    weights = exported.detect if task == "detect" else exported.segment
    entry = ModelCache(exported.cache).get(weights, exported.auto, IMGSZ)
    assert not entry.built and entry.task == task
    image = LetterBox((IMGSZ, IMGSZ), auto=True, stride=32)(image=frames[4].image)
    ref, got = _raw_outputs(weights, image), _raw_outputs(entry.path, image)
    assert [r.shape for r in ref] == [g.shape for g in got] and len(ref) == (2 if task == "segment" else 1)
    # OpenVINO computes in bfloat16 on CPUs that have it (AMX, AVX512-BF16): 8 bits of mantissa, not 24
    tolerance = 1e-2 if exported.auto == "openvino" and _openvino_bf16() else 1e-3
    for r, g in zip(ref, got):
        scale = float(np.abs(r).max())
        np.testing.assert_allclose(g, r, atol=tolerance * scale)


def _openvino_bf16() -> bool:
    import openvino

    return bool(openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT") == openvino.Type.bf16)


# --- workers, batches, the CLI -----------------------------------------------------------------------------

def test_an_input_size_off_the_stride_is_rounded_up_as_ultralytics_does(exported, frames):
    """--imgsz 321 ran as 352 in PyTorch but gave the exported model an input it returns no rows for."""
    odd = Detector(DetectorConfig(imgsz=IMGSZ + 1, runtime=exported.auto,  # type: ignore[arg-type]
                                  cache_dir=str(exported.cache), device="cpu"), str(exported.pose))
    found = odd.detect(frames)
    assert len(found) == len(frames) and sum(len(d) for d in found) > 0


def test_two_workers_share_one_exported_file_and_batches_agree_with_single_frames(exported, frames):
    from concurrent.futures import ThreadPoolExecutor

    det = _detector(exported, "auto", exported.pose, workers=2, batch=4)
    assert det.runtime_choice.exported_seconds == 0  # from the cache
    assert det.loading is not None
    det.loading.join()
    batched = det.detect(frames[:4])
    with ThreadPoolExecutor(2) as pool:
        single = list(pool.map(lambda f: det.detect([f])[0], frames[:4] * 2))
    for a, b in zip(batched * 2, single):
        assert len(a) == len(b)
        np.testing.assert_allclose(np.sort(a.xyxy, axis=0), np.sort(b.xyxy, axis=0), atol=2.0)


def test_cli_says_which_runtime_runs_and_where_the_cache_is(exported, bikes_video, tmp_path):
    env = {"TRACKSTREAM_MODEL_CACHE": str(exported.cache)}
    common = ("run", str(bikes_video), "--model", str(exported.pose), "--imgsz", str(IMGSZ), "--max-frames", "3",
              "--jsonl", str(tmp_path / "out.jsonl"), "--quiet", "--overwrite")   # three runs, one file
    fast = run_cli(*common, env=env)
    assert fast.returncode == 0, fast.stderr
    assert f"runtime {exported.auto} (" in fast.stderr and f"yolo11n-pose.pt from the cache: {exported.cache}" \
        in fast.stderr
    assert ("measured on this CPU before, from the cache: onnx " in fast.stderr) == openvino_installed()
    assert "exporting" not in fast.stderr
    plain = run_cli(*common, "--runtime", "torch", env=env)
    assert plain.returncode == 0, plain.stderr
    assert "runtime torch (yolo11n-pose.pt as given)" in plain.stderr
    exported_model = ModelCache(exported.cache).get(exported.pose, exported.auto, IMGSZ).path
    bad = run_cli(*common[:3], str(exported_model), *common[4:], "--runtime", "torch", env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    (error,) = [line for line in bad.stderr.splitlines() if line.startswith("trackstream: error:")]
    assert "detector.runtime is torch" in error and "--runtime auto" in error


def test_export_command_prebuilds_the_entry_a_run_loads(exported, tmp_path):
    """`trackstream export` (a Docker build step, docs/cpu.md) builds the entry a run would, in the same place."""
    cache = tmp_path / "cache"
    result = run_cli("export", "--model", str(exported.detect), "--imgsz", "64", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.exists() and path.is_relative_to(cache) and "runtime " in result.stderr
    assert ("measured on this CPU: onnx " in result.stderr) == openvino_installed()  # the run reads it
    det = Detector(DetectorConfig(imgsz=64, cache_dir=str(cache), device="cpu"), str(exported.detect))
    assert det.model_name == str(path) and det.runtime_choice.exported_seconds == 0


@pytest.mark.parametrize("model, message", [
    ("configs/default.yaml", "is not a model architecture (it has no backbone:); a trackstream config goes in "
                             "--config"),                      # was: exit 0, 'nothing to export'; run said 'backbone'
    ("missing.onnx", "model 'missing.onnx' not found"),          # was: exit 0 and the path printed as if usable
])
@pytest.mark.parametrize("command", ["export", "run"])
def test_a_model_that_is_no_model_is_one_line(command, model, message, bikes_video, tmp_path):

    args = [str(bikes_video), "--jsonl", str(tmp_path / "o.jsonl")] if command == "run" else []
    result = run_cli(command, *args, "--model", model, cwd=REPO)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.jsonl").exists()


def test_unwritable_cache_is_one_line_and_a_nonzero_exit(exported, bikes_video, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("run", str(bikes_video), "--model", str(exported.detect), "--imgsz", "64", "--max-frames", "1",
                     "--jsonl", str(tmp_path / "o.jsonl"), env={"TRACKSTREAM_MODEL_CACHE": str(blocker / "c")})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "error" in x]
    assert "cannot create the model cache" in line and "--runtime torch" in line
    assert not (tmp_path / "o.jsonl").exists()


# --- the cache ---------------------------------------------------------------------------------------------

def test_a_new_input_size_is_a_new_entry_and_the_old_one_stays(exported):
    cache = ModelCache(exported.cache)
    at_320 = cache.get(exported.detect, exported.auto, IMGSZ)
    at_256 = cache.get(exported.detect, exported.auto, 256)
    assert at_256.built and at_256.entry != at_320.entry
    assert not cache.get(exported.detect, exported.auto, IMGSZ).built
    assert not cache.get(exported.detect, exported.auto, 256).built


def test_a_corrupt_entry_is_exported_again_never_loaded(exported, tmp_path, caplog):
    import shutil

    cache = ModelCache(tmp_path / "cache")
    shutil.copytree(exported.cache, cache.root)  # start from the session's entries: no extra export
    entry = cache.get(exported.detect, exported.auto, IMGSZ)
    assert not entry.built
    weights_file = max((p for p in entry.entry.rglob("*") if p.is_file() and p.name != MANIFEST),
                       key=lambda p: p.stat().st_size)
    data = bytearray(weights_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, as a disk error would leave it
    weights_file.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING, "pipelines.detection.model_cache")
    rebuilt = cache.get(exported.detect, exported.auto, IMGSZ)
    assert rebuilt.built and rebuilt.entry == entry.entry
    assert any("not usable" in m and "changed" in m for m in caplog.messages)
    assert weights_file.read_bytes() != bytes(data)  # the damaged file was replaced
    assert not cache.get(exported.detect, exported.auto, IMGSZ).built  # and the new entry verifies


def test_concurrent_first_runs_export_once_and_get_the_same_file(exported, tmp_path):
    """Two workers (or processes) starting at once on an empty cache: one exports (ONNX, the fallback
    runtime, here), the other waits on the entry's lock and then loads the same verified file."""
    cache = ModelCache(tmp_path / "cache")
    results: list[object] = []

    def first_run() -> None:
        results.append(cache.get(exported.detect, "onnx", IMGSZ))

    threads = [threading.Thread(target=first_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    built = sorted(r.built for r in results)  # type: ignore[attr-defined]
    assert built == [False, True]
    assert len({r.path for r in results}) == 1  # type: ignore[attr-defined]
    assert [p.name for p in cache.root.iterdir() if p.name.startswith(".")] == []  # no temporary folder left

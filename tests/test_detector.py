"""Detector: real YOLO weights on real frames become Detections with keypoints / mask polygons."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import shared_data
from pipelines.config import DetectorConfig
from pipelines.detection.detector import Detector, detection_concurrency, load_model, resolve_device, resolve_workers
from pipelines.errors import ModelError
from pipelines.frames import VideoFrame
from pipelines.sources.file import FileSource
from pipelines.sources.base import SourceConfig
from pipelines.processing.schedule import Schedule

CYCLIST_FRAMES = (115, 125, 130, 135)  # the cyclist fills the right half of the frame here


@pytest.fixture(scope="module")
def frames(bikes_video) -> dict[int, VideoFrame]:
    source = FileSource(bikes_video, options=SourceConfig())
    out = {f.index: f for f in source.frames() if isinstance(f, VideoFrame) and f.index in CYCLIST_FRAMES}
    source.close()
    return out


@pytest.fixture(scope="module")
def pose_detector(pose_weights) -> Detector:
    return Detector(DetectorConfig(imgsz=320, batch=4), str(pose_weights))


def test_pose_model_gives_people_with_17_keypoints(pose_detector, frames):
    assert pose_detector.task == "pose" and pose_detector.class_names[0] == "person"
    assert pose_detector.device == "cpu" and pose_detector.half is False  # no CUDA on this machine
    dets = pose_detector.detect([frames[125]])[0]
    assert len(dets) >= 1
    assert dets.keypoints is not None and dets.keypoints.shape == (len(dets), 17, 3)
    best = int(np.argmax(dets.confidence))
    x1, y1, x2, y2 = dets.xyxy[best]
    assert (y2 - y1) > 0.5 * 272 and x1 > 640 / 3    # the cyclist: tall, right of centre
    visible = dets.keypoints[best][dets.keypoints[best, :, 2] > 0.5]
    assert len(visible) >= 5
    xs, ys = visible[:, 0], visible[:, 1]
    inside = (xs >= x1 - 5) & (xs <= x2 + 5) & (ys >= y1 - 5) & (ys <= y2 + 5)
    assert inside.all()                               # keypoints are in frame pixels, on the person


def test_batch_gives_the_same_detections_as_single_frames(pose_detector, frames):
    ordered = [frames[i] for i in CYCLIST_FRAMES]
    batched = pose_detector.detect(ordered)
    assert len(batched) == len(ordered)
    for frame, dets in zip(ordered, batched):
        single = pose_detector.detect([frame])[0]
        assert len(single) == len(dets)
        np.testing.assert_allclose(np.sort(single.xyxy, axis=0), np.sort(dets.xyxy, axis=0), atol=2.0)


def test_two_workers_detect_at_once_and_agree_with_one_another(pose_detector, frames):
    """On this 2-core CPU the default is two model copies with one thread each; calls from two threads at
    once (as the runner makes them) give the same detections as calls one after another."""
    from concurrent.futures import ThreadPoolExecutor

    assert (pose_detector.workers, pose_detector.threads) == (2, 1)
    ordered = [frames[i] for i in CYCLIST_FRAMES] * 3
    alone = [pose_detector.detect([f])[0] for f in ordered]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda f: pose_detector.detect([f])[0], ordered))
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)


@pytest.mark.parametrize("workers, device, model, cores, expected", [
    (None, "cpu", "m.onnx", 2, 2),      # auto: two copies on a multi-core CPU
    (None, "cpu", "m.pt", 16, 2),
    (None, "cpu", "m.onnx", 1, 1),      # one core: nothing to share
    (None, "cuda:0", "m.pt", 16, 1),    # a GPU runs one batch at a time anyway
    (None, "cpu", "m_openvino_model", 8, 2),  # OpenVINO copies get their share too (benchmarks/cpu_runtime.py)
    (None, "cpu", "m.tflite", 8, 1),    # formats that choose their own threads
    (3, "cpu", "m.engine", 1, 3),       # an explicit count is kept
])
def test_worker_count(workers, device, model, cores, expected):
    assert resolve_workers(workers, device, model, cores) == expected


def test_one_source_waiting_for_each_plan_gets_one_copy_on_every_core():
    # a file or camera whose schedule waits for each detection's plan has one call under way at a time: a
    # second copy would only wait, so its one copy computes on both cores
    one_adaptive = detection_concurrency([Schedule.parse("adaptive").waits_for_plans])
    assert one_adaptive == 1
    assert resolve_workers(None, "cpu", "m_openvino_model", 2, one_adaptive) == 1
    two = detection_concurrency([Schedule.parse(s).waits_for_plans for s in ("adaptive", "interval:3")])
    assert resolve_workers(None, "cpu", "m_openvino_model", 2, two) == 2
    # every sets no bound; an explicit count is kept
    assert detection_concurrency([Schedule.parse(s).waits_for_plans for s in ("adaptive", "every")]) is None
    assert resolve_workers(None, "cpu", "m.onnx", 2, None) == 2
    assert resolve_workers(2, "cpu", "m.onnx", 2, one_adaptive) == 2


def test_segmentation_onnx_gives_mask_polygons_aligned_to_rows(frames):
    weights = shared_data("weights/yolov8n-seg_int8_320.onnx")
    detector = Detector(DetectorConfig(imgsz=320), str(weights))
    assert detector.task == "segment"                 # read from the ONNX metadata
    dets = detector.detect([frames[125]])[0]
    assert len(dets) >= 1 and dets.mask_polygons is not None and len(dets.mask_polygons) == len(dets)
    for box, poly in zip(dets.xyxy, dets.mask_polygons):
        assert poly.ndim == 2 and poly.shape[1] == 2 and len(poly) >= 3
        centre = poly.mean(axis=0)                    # the polygon lies on its own box, in frame pixels
        assert box[0] - 2 <= centre[0] <= box[2] + 2 and box[1] - 2 <= centre[1] <= box[3] + 2


def test_architecture_yaml_builds_random_weights_offline(frames):
    detector = Detector(DetectorConfig(imgsz=64, conf=0.0), "yolo11n.yaml")
    assert detector.task == "detect" and len(detector.class_names) == 80
    dets = detector.detect([frames[115]])[0]
    assert dets.xyxy.dtype == np.float32 and np.isfinite(dets.xyxy).all()


@pytest.mark.parametrize("name, message", [
    ("yolo11n.pt", "does not download"),
    ("yolo11n", "does not download"),
    ("models/missing.onnx", "--model /path/to/model.pt"),
])
def test_model_not_on_disk_fails_fast_without_download(tmp_path, monkeypatch, name, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=message) as info:
        load_model(name)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []             # nothing was downloaded


@pytest.mark.parametrize("filename, content", [
    ("broken.onnx", b"not an onnx file"),
    ("empty.pt", b""),
])
def test_unreadable_weights_fail_with_one_line(tmp_path, filename, content):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(ModelError, match="cannot load model") as info:
        load_model(str(path))
    assert "\n" not in str(info.value)


def test_device_auto_is_cpu_without_cuda_and_cuda_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto", None, "m.pt") == ("cpu", False)
    with pytest.raises(ModelError, match="CUDA is not available"):
        resolve_device("cuda:0", None, "m.pt")


def test_a_model_without_boxes_is_refused():
    with pytest.raises(ModelError, match="'classify' model"):
        Detector(DetectorConfig(imgsz=64), "yolo11n-cls.yaml")

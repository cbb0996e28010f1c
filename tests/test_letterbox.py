"""Letterboxing on the detector's device (``detector.preprocess: device``, the CUDA default), run here on the
CPU device: the model input equals Ultralytics' own to below one grey level, with the same size and padding,
and real detections (boxes, keypoints, mask polygons) come back in the same frame pixels. A GPU only changes
the device the same torch calls run on (checked for real by ``benchmarks/gpu_checks/``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipelines.config import DetectorConfig
from pipelines.detection.detector import Detector
from pipelines.detection.letterbox import DeviceLetterbox, place, resolve_preprocess
from pipelines.frames import VideoFrame
from tests.conftest import frames_at, shared_data

FRAMES = (115, 125, 130, 135)


@pytest.fixture(scope="module")
def frames(bikes_video) -> list[VideoFrame]:
    return frames_at(bikes_video, FRAMES)


@pytest.fixture(scope="module")
def pair(pose_weights) -> tuple[Detector, Detector]:
    """The same pose model letterboxed by Ultralytics on the CPU and by trackstream on the (CPU) device."""
    config = DetectorConfig(imgsz=320, workers=1)
    cpu = Detector(config, str(pose_weights))
    device = Detector(DetectorConfig(imgsz=320, workers=1, preprocess="device"), str(pose_weights))
    return cpu, device


def _inputs(detector: Detector, images: list[np.ndarray]):
    """(Ultralytics' model input, trackstream's) for ``images``, from the predictor ``detector`` set up."""
    predictor = detector.model.predictor
    assert isinstance(predictor, DeviceLetterbox)
    theirs = super(DeviceLetterbox, predictor).preprocess(list(images))  # the task's own predictor's
    return theirs, predictor.preprocess(list(images))


def _upscaled(image: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("shapes", [
    [(272, 640)] * 4,                                  # the clip's own frames, one batch
    [(1080, 1920)] * 2,                                # 1080p, minimum-rectangle input
    [(1920, 1080)],                                    # portrait
    [(272, 640), (1080, 1920), (600, 300)],            # mixed sizes: a square input for all
    [(7, 900)],                                        # a thin strip keeps at least one row
])
def test_device_input_equals_ultralytics_input(pair, frames, shapes):
    _, device = pair
    device.detect(frames[:1])                          # sets up the predictor
    images = [_upscaled(frames[i % len(frames)].image, h, w) for i, (h, w) in enumerate(shapes)]
    theirs, ours = _inputs(device, images)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    diff = (ours - theirs).abs()
    assert float(diff.max()) * 255 <= 1.0             # OpenCV rounds to whole grey levels; torch does not
    assert float(diff.mean()) * 255 <= 0.3
    input_hw = (int(ours.shape[2]), int(ours.shape[3]))
    for index, image in enumerate(images):           # the padding is where Ultralytics puts it, bit for bit
        where = place(image.shape[:2], (320, 320), input_hw)
        pad = np.ones(input_hw, bool)
        pad[where.top:where.top + where.size[0], where.left:where.left + where.size[1]] = False
        assert bool((ours[index][:, pad] == theirs[index][:, pad]).all())
        assert bool((theirs[index][:, pad] == theirs[index][0, 0, 0]).all()) or not pad.any()


def test_placement_matches_ultralytics_rounding():
    """1080p into 640: 640x360 centred in 640x384 (12 rows above, 12 below); odd padding puts the extra row
    after, as ``LetterBox`` does."""
    where = place((1080, 1920), (640, 640), (384, 640))
    assert (where.size, where.top, where.left) == ((360, 640), 12, 0)
    even = place((100, 301), (320, 320), (128, 320))
    assert even.size == (106, 320) and even.top == 11  # 22 rows of padding: 11 before, 11 after
    odd = place((100, 299), (320, 320), (128, 320))
    assert odd.size == (107, 320) and odd.top == 10    # 21 rows: 10 before, 11 after


def matching_rows(a, b, min_conf: float = 0.4) -> list[tuple[int, int]]:
    """Rows of ``a`` at or above ``min_conf`` with the row of ``b`` that overlaps each most; every such row
    must have one at IoU >= 0.9 (rows near the threshold may come and go with sub-grey-level input changes)."""
    from tracker.association import iou_matrix

    iou = iou_matrix(a.xyxy, b.xyxy)
    out = []
    for i in np.flatnonzero(a.confidence >= min_conf):
        j = int(np.argmax(iou[i]))
        assert iou[i, j] >= 0.9, (a.xyxy[i], b.xyxy)
        out.append((int(i), j))
    return out


def test_pose_detections_are_the_same_in_frame_pixels(pair, frames):
    cpu, device = pair
    theirs, ours = cpu.detect(frames), device.detect(frames)
    for a, b in zip(theirs, ours):
        pairs = matching_rows(a, b) + [(i, j) for j, i in matching_rows(b, a)]
        assert pairs
        for i, j in pairs:
            np.testing.assert_allclose(b.xyxy[j], a.xyxy[i], atol=1.5)
            np.testing.assert_allclose(b.confidence[j], a.confidence[i], atol=0.05)
            visible = (a.keypoints[i, :, 2] > 0.5) & (b.keypoints[j, :, 2] > 0.5)
            np.testing.assert_allclose(b.keypoints[j, visible, :2], a.keypoints[i, visible, :2], atol=3.0)


def test_segmentation_masks_come_back_in_frame_pixels(frames):
    weights = str(shared_data("weights/yolov8n-seg_int8_320.onnx"))
    cpu = Detector(DetectorConfig(imgsz=320, workers=1), weights)
    device = Detector(DetectorConfig(imgsz=320, workers=1, preprocess="device"), weights)
    for frame in frames[:2]:
        a, b = cpu.detect([frame])[0], device.detect([frame])[0]
        assert a.mask_polygons is not None and b.mask_polygons is not None
        pairs = matching_rows(a, b) + [(i, j) for j, i in matching_rows(b, a)]
        assert pairs
        for i, j in pairs:  # the same outline, in frame pixels: the filled polygons overlap almost wholly
            ma, mb = (_filled(p, frame.image.shape[:2]) for p in (a.mask_polygons[i], b.mask_polygons[j]))
            assert ma.sum() > 50 and (ma & mb).sum() / (ma | mb).sum() >= 0.85


def _filled(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def test_half_precision_input_is_half(frames):
    from pipelines.detection.letterbox import letterbox

    where = place((272, 640), (320, 320), (160, 320))
    batch = letterbox([frames[0].image], [where], "cpu", half=True)
    assert str(batch.dtype) == "torch.float16" and tuple(batch.shape) == (1, 3, 160, 320)


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", "cuda:0", "device"),                      # a GPU: the CPU must not resize 1080p frames
    ("auto", "cuda", "device"),
    ("auto", "cpu", "cpu"),                            # no CUDA: Ultralytics' OpenCV letterbox, as before
    ("auto", "mps", "cpu"),
    ("cpu", "cuda:0", "cpu"),                          # an explicit choice is kept
    ("device", "cpu", "device"),
])
def test_preprocess_choice(setting, device, expected):
    assert resolve_preprocess(setting, device) == expected


def test_no_cuda_keeps_ultralytics_preprocessing_and_says_nothing(pose_weights, caplog):
    """On this CPU machine ``auto`` changes nothing: Ultralytics' own predictor, no log line about it; the
    device letterbox says once where it runs."""
    with caplog.at_level(logging.INFO, logger="pipelines.detection.detector"):
        detector = Detector(DetectorConfig(imgsz=64, workers=1), str(pose_weights))
    assert detector.preprocess == "cpu" and not isinstance(detector.model.predictor, DeviceLetterbox)
    assert not [r for r in caplog.records if "letterbox" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipelines.detection.detector"):
        Detector(DetectorConfig(imgsz=64, workers=1, preprocess="device"), str(pose_weights))
    assert [r.getMessage() for r in caplog.records if "letterbox" in r.getMessage()] == [
        "detector: frames are letterboxed on cpu, one batch per call"]

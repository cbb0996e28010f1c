"""Exported detect and pose models run directly in OpenVINO or ONNX Runtime: no PyTorch, no Ultralytics.

Why: on a CPU the exported model is the detector's whole useful work, but running it through Ultralytics'
predictor first imports PyTorch and torchvision (2-3 s of every start, before the first result) and then
costs a few milliseconds per frame converting each batch to tensors and back, running torchvision's NMS and
building ``Results``. Here the model's raw output goes straight to ``Detections``.

What is computed is Ultralytics' own, step for step, so detections agree with its predictor
(``tests/test_runtime.py`` compares both with PyTorch on real frames):

- input: its ``LetterBox`` at ``imgsz`` rounded up to a multiple of the model's stride (its ``check_imgsz``)
  -- scaled by ``min(imgsz / h, imgsz / w)``, sides rounded, OpenCV ``INTER_LINEAR``, grey (114) padding
  centred with its rounding, to the smallest stride multiple when the model takes any input size
  (``dynamic``, as trackstream's cache exports), else to the model's fixed square; BGR -> RGB, scaled to 0..1;
- output: its ``non_max_suppression`` as a predictor calls it -- best class per box above ``conf``, optional
  class filter, class-aware greedy NMS at ``iou`` (boxes offset per class), at most ``max_det`` kept by
  score -- then boxes and keypoints mapped back to frame pixels and clipped to the frame.

Segmentation models (mask prototypes), end-to-end models and models whose metadata does not say their task
and names go through Ultralytics as before (``supported`` says which).
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import cv2
import numpy as np

from pipelines.detection.letterbox import PAD_VALUE, Placement, place
from pipelines.errors import ModelError

log = logging.getLogger(__name__)

NATIVE_TASKS = ("detect", "pose")
NATIVE_RUNTIMES = ("onnx", "openvino")
MAX_WH = 7680     # Ultralytics' per-class box offset for class-aware NMS
MAX_NMS = 30000   # boxes into NMS at most, by score


@dataclass(frozen=True)
class ModelInfo:
    """What an Ultralytics export says about itself (its ``metadata.yaml`` / ONNX metadata).

    Attributes:
        task: ``detect``, ``pose``, ... ``names``: class id -> name. ``stride``: the model's largest stride.
        kpt_shape: (keypoints, values per keypoint) of a pose model, else None.
        end2end: the model filters its own boxes (no NMS needed; not run natively).
    """

    task: str
    names: Mapping[int, str]
    stride: int
    kpt_shape: Optional[tuple[int, int]]
    end2end: bool


def _literal(value: object) -> object:
    """ONNX metadata values are Python literals written as strings."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def _info(meta: Mapping[str, object]) -> Optional[ModelInfo]:
    task, names = _literal(meta.get("task")), _literal(meta.get("names"))
    if not isinstance(task, str) or not isinstance(names, dict) or not names:
        return None
    kpt = _literal(meta.get("kpt_shape"))
    kpt_shape = (int(kpt[0]), int(kpt[1])) if isinstance(kpt, (list, tuple)) and len(kpt) == 2 else None
    stride = _literal(meta.get("stride", 32))
    end2end = _literal(meta.get("end2end", False))
    return ModelInfo(task, {int(k): str(v) for k, v in names.items()},
                     int(stride) if isinstance(stride, (int, float)) else 32, kpt_shape, bool(end2end))


def openvino_xml(path: Path) -> Path:
    """The ``.xml`` network of an OpenVINO model given as the file or its folder."""
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if not found:
            raise ModelError(f"cannot load model {path}: no OpenVINO .xml network in the folder")
        return found[0]
    return path


def read_info(model: str, runtime: str) -> Optional[ModelInfo]:
    """The metadata of an exported model (None when it has none that says its task and class names)."""
    path = Path(model)
    try:
        if runtime == "openvino":
            import yaml

            meta_file = openvino_xml(path).parent / "metadata.yaml"
            if not meta_file.is_file():
                return None
            meta = yaml.safe_load(meta_file.read_text(encoding="utf-8"))
            return _info(meta) if isinstance(meta, dict) else None
        if runtime == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return _info(dict(session.get_modelmeta().custom_metadata_map))
    except (OSError, ValueError, RuntimeError, ImportError):
        return None
    except Exception:  # noqa: BLE001 - an unreadable model is left to Ultralytics, whose message names it
        return None
    return None


def supported(info: Optional[ModelInfo], runtime: str, device: str) -> bool:
    """Whether ``NativeModel`` runs this export (else Ultralytics does)."""
    return (info is not None and device == "cpu" and runtime in NATIVE_RUNTIMES and info.task in NATIVE_TASKS
            and not info.end2end and (info.task != "pose" or info.kpt_shape is not None))


# --- the network ---------------------------------------------------------------------------------------------

Network = Callable[[np.ndarray], np.ndarray]


def compile_openvino(path: Path, threads: Optional[int]) -> Any:
    """The OpenVINO model at ``path`` (folder or ``.xml``) compiled for the CPU on ``threads`` threads, not
    pinned to cores: with two copies, each pinned over every core would fight the other (and the stages that
    decode and draw) for every core instead of sharing them."""
    import openvino

    core = openvino.Core()
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    return core.compile_model(core.read_model(str(openvino_xml(path))), "CPU", config)


def onnx_session(path: Path, threads: Optional[int], quiet: bool = False) -> Any:
    """A CPU ONNX Runtime session for ``path`` with ``threads`` compute threads and busy-waiting off (between
    runs its threads spin by default, stealing the cores that decode and draw meanwhile); ``quiet``: its
    warnings off."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if quiet:
        options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _openvino_network(path: Path, threads: Optional[int]) -> tuple[Network, Optional[tuple[int, int]]]:
    compiled = compile_openvino(path, threads)
    shape = compiled.inputs[0].get_partial_shape()
    fixed = None if shape.is_dynamic else (int(shape[2].get_length()), int(shape[3].get_length()))
    output = compiled.outputs[0]
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: x})[output])

    return run, fixed


def _onnx_network(path: Path, threads: Optional[int]) -> tuple[Network, Optional[tuple[int, int]]]:
    session = onnx_session(path, threads, quiet=True)
    dims = session.get_inputs()[0].shape
    fixed = (int(dims[2]), int(dims[3])) if all(isinstance(d, int) for d in dims[2:4]) else None
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: x})[0])

    return run, fixed


def network(path: Path, runtime: str, threads: Optional[int]) -> tuple[Network, Optional[tuple[int, int]]]:
    """The exported model at ``path`` ready to run in ``runtime`` (``onnx`` or ``openvino``) on ``threads``
    threads: (a function from a (N, 3, H, W) float32 input to its first output, the model's fixed input (h, w)
    or None when it takes any size)."""
    if runtime not in NATIVE_RUNTIMES:
        raise ValueError(f"runtime must be one of {NATIVE_RUNTIMES}, got {runtime!r}")
    return (_openvino_network if runtime == "openvino" else _onnx_network)(path, threads)


# --- pre- and post-processing --------------------------------------------------------------------------------

def input_shape(frame_hw: tuple[int, int], imgsz: int, stride: int, fixed: Optional[tuple[int, int]]
                ) -> tuple[int, int]:
    """The model input (h, w) for a ``frame_hw`` frame: the model's fixed size, else Ultralytics' minimum
    rectangle (the letterboxed picture padded up to a multiple of ``stride``)."""
    if fixed is not None:
        return fixed
    h, w = frame_hw
    r = min(imgsz / h, imgsz / w)
    new_h, new_w = max(round(h * r), 1), max(round(w * r), 1)
    return new_h + (imgsz - new_h) % stride, new_w + (imgsz - new_w) % stride


def letterbox_batch(images: Sequence[np.ndarray], fit: tuple[int, int], input_hw: tuple[int, int]
                    ) -> tuple[np.ndarray, list[Placement]]:
    """(N, 3, H, W) float32 RGB 0..1 input of same-shape BGR ``images`` scaled to fit ``fit`` (h, w) in an
    ``input_hw`` input, and where each picture lies in it."""
    batch = np.full((len(images), *input_hw, 3), PAD_VALUE, np.uint8)
    placements = []
    for slot, image in enumerate(images):
        where = place((int(image.shape[0]), int(image.shape[1])), fit, input_hw)
        h, w = where.size
        resized = image if image.shape[:2] == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        batch[slot, where.top:where.top + h, where.left:where.left + w] = resized
        placements.append(where)
    x = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32)
    return np.divide(x, 255, out=x), placements


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, best score first (torchvision's rule: a box goes when its IoU
    with a kept one is above ``iou``)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= iou]
    return np.asarray(keep, np.int64)


@dataclass(frozen=True)
class Found:
    """One frame's detections in frame pixels: ``xyxy`` (n, 4), ``confidence`` (n,), ``class_id`` (n,),
    ``keypoints`` (n, k, 3) for a pose model."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    keypoints: Optional[np.ndarray]


def decode(pred: np.ndarray, nc: int, where: Placement, frame_hw: tuple[int, int], conf: float, iou: float,
           classes: Optional[Sequence[int]], max_det: int, kpt_shape: Optional[tuple[int, int]]) -> Found:
    """One image's raw output (4 + nc + extra, boxes) to detections in ``frame_hw`` frame pixels."""
    x = pred.T
    scores = x[:, 4:4 + nc]
    cls = scores.argmax(1)
    best = scores[np.arange(len(x)), cls]
    keep = best > conf
    if classes:
        keep &= np.isin(cls, np.asarray(classes))
    x, cls, best = x[keep], cls[keep], best[keep]
    if len(x) > MAX_NMS:
        top = np.argsort(-best, kind="stable")[:MAX_NMS]
        x, cls, best = x[top], cls[top], best[top]
    xy, wh = x[:, :2], x[:, 2:4] / 2
    boxes = np.concatenate([xy - wh, xy + wh], axis=1)
    kept = nms(boxes + (cls * MAX_WH)[:, None].astype(boxes.dtype), best, iou)[:max_det] if len(x) else \
        np.zeros(0, np.int64)
    boxes, best, cls = boxes[kept], best[kept], cls[kept]
    fh, fw = frame_hw
    gain = np.array([where.size[1] / fw, where.size[0] / fh], np.float32)
    pad = np.array([where.left, where.top], np.float32)
    boxes = ((boxes.reshape(-1, 2, 2) - pad) / gain).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, fw)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, fh)
    keypoints = None
    if kpt_shape is not None:
        keypoints = x[kept, 4 + nc:].reshape(len(kept), *kpt_shape).astype(np.float32)
        keypoints[..., :2] = (keypoints[..., :2] - pad) / gain
        keypoints[..., 0] = keypoints[..., 0].clip(0, fw)
        keypoints[..., 1] = keypoints[..., 1].clip(0, fh)
    return Found(boxes.astype(np.float32), best.astype(np.float32), cls.astype(np.int64), keypoints)


class NativeModel:
    """One copy of an exported detect or pose model, run in its runtime with ``threads`` threads.

    Not thread-safe: the detector gives each worker its own copy.
    """

    predictor = None  # no Ultralytics predictor: frames are letterboxed here, on the CPU

    def __init__(self, model: str, runtime: str, info: ModelInfo, threads: Optional[int]) -> None:
        self.info = info
        self.task = info.task
        self.names = dict(info.names)
        self._network, self._fixed = network(Path(model), runtime, threads)

    def predict(self, images: Sequence[np.ndarray], imgsz: int, conf: float, iou: float,
                classes: Optional[Sequence[int]], max_det: int) -> list[Found]:
        """Detections of each image (BGR uint8), in order; frames of one shape go through the model at once."""
        found: list[Optional[Found]] = [None] * len(images)
        imgsz = -(-imgsz // self.info.stride) * self.info.stride  # 321 -> 352, as Ultralytics does
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault((int(image.shape[0]), int(image.shape[1])), []).append(index)
        nc = len(self.names)
        for frame_hw, indices in groups.items():
            input_hw = input_shape(frame_hw, imgsz, self.info.stride, self._fixed)
            members = [images[i] for i in indices]
            outputs: list[tuple[np.ndarray, Placement]] = []
            if self._fixed is not None:  # a fixed input (its own size, whatever imgsz says) takes one picture
                for image in members:
                    x, placed = letterbox_batch([image], self._fixed, input_hw)
                    outputs.append((self._network(x)[0], placed[0]))
            else:
                x, placements = letterbox_batch(members, (imgsz, imgsz), input_hw)
                outputs = list(zip(self._network(x), placements))
            for index, (pred, where) in zip(indices, outputs):
                found[index] = decode(pred, nc, where, frame_hw, conf, iou, classes, max_det, self.info.kpt_shape)
        return [f for f in found if f is not None]

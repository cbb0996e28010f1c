"""The detector stage: an Ultralytics YOLO model (detect / segment / pose) turned into ``Detections``.

The model is loaded once, from a local file (``.pt``, ``.onnx``, ``.engine``, OpenVINO folder, ...) or an
architecture yaml (``yolo11n.yaml`` builds random weights, for tests). trackstream never downloads: a model
name that is not a local file is refused with a message saying how to pass one.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pipelines.config import DetectorConfig
from pipelines.cpu import cpu_cores
from pipelines.detection import native
from pipelines.detection.letterbox import predictor_class, resolve_preprocess
from pipelines.detection.runtime import check_model, model_format, resolve_runtime
from pipelines.detection.ultralytics_env import hushed, quiet_ultralytics, ultralytics_logger
from pipelines.errors import ModelError, first_line
from pipelines.gpu import nvidia_device_present
from pipelines.frames import VideoFrame
from tracker.types import Detections

log = logging.getLogger(__name__)

__all__ = ["Detector", "detection_concurrency", "load_model", "quiet_ultralytics", "resolve_device", "resolve_workers",
           "ultralytics_logger"]

TASKS = ("detect", "segment", "pose")
FIRST_RESULT_WAIT = 2.0  # seconds the other model copies wait for the first detection before loading anyway
SHARED_CORE_FORMATS = ("torch", "onnx", "openvino")  # formats whose copies trackstream gives a share of the cores


def resolve_device(device: str, half: Optional[bool], model_path: str) -> tuple[str, bool]:
    """Concrete torch device and half-precision flag for the configured ``device``/``half``.

    ``auto`` picks CUDA when available, else CPU. ``half=None`` means half precision on CUDA for
    PyTorch weights only (exported models keep the precision they were exported with).
    """
    if device == "auto":
        # no NVIDIA device node: surely no CUDA, answered without importing PyTorch (seconds of start-up)
        device = "cuda:0" if nvidia_device_present() and _cuda_available() else "cpu"
    elif device.startswith("cuda") and not _cuda_available():
        raise ModelError(f"detector.device is {device!r} but CUDA is not available on this machine "
                         "(use --device cpu or auto)")
    if half is None:
        half = device.startswith("cuda") and model_path.endswith(".pt")
    return device, bool(half)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _onnx_task(path: Path) -> Optional[str]:
    """The ``task`` an Ultralytics ONNX export stores in its metadata (None when absent)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a usable model
        raise ModelError(f"cannot load model {path}: not a valid ONNX file ({type(exc).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    task = meta.get("task")
    return task if task in TASKS else None


def _one_line(exc: BaseException) -> str:
    return re.sub(r"^\W*ERROR\W*", "", first_line(exc)).strip()


def load_model(model: str) -> Any:
    """Load an Ultralytics ``YOLO`` from a local path or an architecture yaml; never downloads.

    Raises ModelError with one line when the file is absent, unreadable or not a model.
    """
    check_model(model)   # absent, or a YAML file that is no architecture: one line, nothing downloaded
    path = Path(model).expanduser()
    if path.is_file() and path.stat().st_size == 0:
        raise ModelError(f"cannot load model {path}: the file is empty")
    task = _onnx_task(path) if path.suffix.lower() == ".onnx" else None
    try:
        ultralytics_logger()  # imports Ultralytics with its logger set as this run wants it
        from ultralytics import YOLO  # type: ignore[attr-defined]  # exported lazily by ultralytics

        return YOLO(str(path) if path.exists() else model, task=task)
    except Exception as exc:  # noqa: BLE001 - Ultralytics raises many types for unreadable weights
        raise ModelError(f"cannot load model {model}: {_one_line(exc)}") from None


def resolve_workers(workers: Optional[int], device: str, model_path: str, cores: Optional[int] = None,
                    in_flight: Optional[int] = None) -> int:
    """How many model copies run batches at once.

    ``None`` (auto): 2 on a CPU with at least 2 cores for PyTorch, ONNX and OpenVINO models, whose thread
    counts trackstream sets (each copy gets half the cores); 1 on a GPU or for other formats, which
    pick their own threads. Two single-threaded copies on 2 cores detect more frames per second than one
    copy whose layers are split over both cores (``benchmarks/pipeline_speed.py``), and the other
    stages get their share of the CPU between the copies' frames instead of stalling a split layer.
    ``in_flight``: the most detector calls the run can have under way at once (``detection_concurrency``;
    None: no bound): no more copies than that, so one source whose schedule waits for each detection's plan
    gets one copy computing on every core rather than two copies of which one always waits
    (``benchmarks/schedule.py``).
    """
    if workers is not None:
        return workers
    cpu_format = model_format(model_path) in SHARED_CORE_FORMATS
    cores = cpu_cores() if cores is None else cores
    auto = 2 if device == "cpu" and cpu_format and cores >= 2 else 1
    return auto if in_flight is None else max(1, min(auto, in_flight))


def copy_threads(workers: Optional[int], device: str, model_path: str, cores: Optional[int] = None,
                 in_flight: Optional[int] = None) -> Optional[int]:
    """The CPU threads each model copy computes with: its share of the cores (``resolve_workers`` copies);
    None off the CPU."""
    if device != "cpu":
        return None
    cores = cpu_cores() if cores is None else cores
    return max(1, cores // resolve_workers(workers, device, model_path, cores, in_flight))


def detection_concurrency(waiting: Sequence[bool]) -> Optional[int]:
    """The most detector calls that the run's sources can have under way at once; ``waiting``: for each source,
    whether its detection schedule waits for the plan of its last detected frame before it decides the next
    (``Schedule.waits_for_plans``: one call at a time); a source that does not sets no bound (None)."""
    return len(waiting) if all(waiting) else None


class Detector:
    """Maps frames to ``Detections`` with one YOLO model (see module docstring).

    ``detect`` may be called from ``workers`` threads at once: each call takes one of ``workers`` copies
    of the model (each its own Ultralytics predictor and runtime session) and gives it back after.

    Attributes:
        task: ``detect``, ``segment`` or ``pose``.
        class_names: class id -> name.
        device: torch device used; ``half``: whether half precision is used.
        workers: copies of the model (``resolve_workers``; ``in_flight`` bounds them); ``threads``: CPU threads
            each copy computes with (None: its own choice, e.g. on a GPU).
        preprocess: ``cpu`` (Ultralytics letterboxes each frame) or ``device`` (the batch is letterboxed on
            ``device``: ``pipelines/detection/letterbox.py``).
    """

    def __init__(self, config: DetectorConfig, model: Optional[str] = None, cores: Optional[int] = None,
                 in_flight: Optional[int] = None) -> None:
        self.config = config
        name = model or config.model
        if not name:
            raise ModelError("no model given: pass --model /path/to/model.pt or set detector.model")
        self.weights = str(name)
        device, _ = resolve_device(config.device, config.half, self.weights)
        cores = cores or cpu_cores()  # a Ray actor passes the CPUs Ray reserved for it
        # the threads each copy will compute with: the same for the .pt as for its ONNX or OpenVINO export
        threads = copy_threads(config.workers, device, self.weights, cores, in_flight)
        self.runtime_choice = resolve_runtime(config.runtime, self.weights, device, config.imgsz, config.cache_dir,
                                              threads)
        self.runtime = self.runtime_choice.runtime
        self.model_name = self.runtime_choice.model  # what runs: the exported model for an exported runtime
        info = native.read_info(self.model_name, self.runtime) if device == "cpu" else None
        # run without PyTorch and Ultralytics, unless the batch is to be letterboxed by PyTorch on the device
        self.native = native.supported(info, self.runtime, device) and \
            resolve_preprocess(config.preprocess, device) == "cpu"
        self._free: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._predictor: Optional[type] = None  # None: the task's own Ultralytics predictor
        if self.native and info is not None:
            self.task = info.task
            self.device, self.half, self.preprocess = device, False, "cpu"
            self.workers = resolve_workers(config.workers, self.device, self.model_name, cores, in_flight)
            self.threads: Optional[int] = max(1, cores // self.workers)
            self._info = info
            if not hushed():  # the line Ultralytics prints when it loads a model, once for all copies
                log.info("loading %s for %s inference...", self.model_name,
                         "OpenVINO" if self.runtime == "openvino" else "ONNX Runtime")
            self.model: Any = self._load_native()
            self.class_names: Mapping[int, str] = dict(info.names)
        else:
            self.model = load_model(self.model_name)
            self.task = str(getattr(self.model, "task", "detect"))
            if self.task not in TASKS:
                raise ModelError(f"model {self.model_name} is a {self.task!r} model; trackstream needs boxes from "
                                 f"a {', '.join(TASKS)} model")
            self.device, self.half = resolve_device(device, config.half, self.model_name)
            self.preprocess = resolve_preprocess(config.preprocess, self.device)
            if self.preprocess == "device":
                self._predictor = predictor_class(self.model)
                log.info("detector: frames are letterboxed on %s, one batch per call", self.device)
            self.workers = resolve_workers(config.workers, self.device, self.model_name, cores, in_flight)
            self.threads = max(1, cores // self.workers) if self.device == "cpu" else None
            if self.threads is not None:
                import torch

                # process-wide: each copy computes (PyTorch) or pre- and post-processes (others) on its share
                torch.set_num_threads(self.threads)
            self._warm_up(self.model)
            # after the warm-up: for an exported model, reading names earlier would load its runtime twice
            self.class_names = {int(k): str(v) for k, v in dict(self.model.names).items()}
            tune_runtime(self.model, self.model_name, self.threads)
        unknown = [c for c in config.classes or () if c not in self.class_names]
        if unknown:   # it would keep nothing, silently: every output empty
            have = ", ".join(f"{i}={n}" for i, n in sorted(self.class_names.items())[:12])
            more = ", ..." if len(self.class_names) > 12 else ""
            raise ModelError(f"detector.classes (--classes): {unknown[0]} is not a class of the model "
                             f"({have}{more})")
        self._free.put(self.model)
        self._detected_once = threading.Event()  # the first copy has answered a call: the rest may load now
        self.loading: Optional[threading.Thread] = None  # loads the other copies while the first one works
        if self.workers > 1:
            # not a daemon: a process that ends early waits for it rather than tear down a runtime mid-load
            self.loading = threading.Thread(target=self._load_copies, args=(self.workers - 1,),
                                            name="detector-load")
            self.loading.start()

    def _load_native(self) -> native.NativeModel:
        """One warmed-up copy of the exported model in its runtime, computing on ``threads`` threads."""
        try:
            model = native.NativeModel(self.model_name, self.runtime, self._info, self.threads)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - any runtime failure means the model is unusable
            raise ModelError(f"cannot load model {self.model_name}: {_one_line(exc)}") from None
        self._warm_up(model)
        return model

    def _load_copies(self, count: int) -> None:
        """Load and warm up ``count`` more copies, each joining the pool as soon as it is ready.

        Runs off the path to the first result: it starts loading once the first copy has answered its first
        call (or after ``FIRST_RESULT_WAIT`` seconds without one), so the first result does not share the
        cores and the GIL with a model being loaded. A copy that fails
        to load (the first one loaded, so this is rare: memory, a file replaced meanwhile) is left out with a
        warning and the detector runs with fewer copies.
        """
        # after the first result (or a moment without one): loading competes with it for the cores and the GIL
        self._detected_once.wait(FIRST_RESULT_WAIT)
        for _ in range(count):
            if self.native:
                try:
                    self._free.put(self._load_native())
                except Exception as exc:  # noqa: BLE001 - the run goes on with the copies it has
                    log.warning("detector: another copy of %s could not be loaded (%s); running with fewer "
                                "copies", Path(self.model_name).name, _one_line(exc))
                    return
                continue
            try:
                with quiet_ultralytics():  # its model-loading lines were printed for the first copy already
                    replica = load_model(self.model_name)
                    self._warm_up(replica)
                tune_runtime(replica, self.model_name, self.threads)
            except Exception as exc:  # noqa: BLE001 - the run goes on with the copies it has
                log.warning("detector: another copy of %s could not be loaded (%s); running with fewer copies",
                            Path(self.model_name).name, _one_line(exc))
                return
            self._free.put(replica)

    def _predict(self, model: Any, images: list[np.ndarray]) -> list[Any]:
        c = self.config
        return list(model.predict(
            images, imgsz=c.imgsz, conf=c.conf, iou=c.iou, classes=list(c.classes) if c.classes else None,
            max_det=c.max_det, device=self.device, verbose=False, save=False, stream=False,
            predictor=self._predictor, **({"quantize": 16} if self.half else {})))

    def _run(self, model: Any, images: list[np.ndarray]) -> list[tuple[Detections, int]]:
        """Each image's detections with one copy of the model, and the invalid rows dropped from them."""
        if isinstance(model, native.NativeModel):
            c = self.config
            return [Detections.drop_invalid(f.xyxy, f.confidence, f.class_id, keypoints=_with_visibility(f.keypoints))
                    for f in model.predict(images, c.imgsz, c.conf, c.iou, list(c.classes or ()), c.max_det)]
        return [self._convert(r) for r in self._predict(model, images)]

    def _warm_up(self, model: Any) -> None:
        """Run once on a blank image so unreadable weights fail now, with one line, not mid-stream."""
        try:
            self._run(model, [np.zeros((self.config.imgsz, self.config.imgsz, 3), np.uint8)])
        except Exception as exc:  # noqa: BLE001 - any backend failure means the model is unusable
            raise ModelError(f"cannot run model {self.model_name}: {_one_line(exc)}") from None

    def detect(self, frames: Sequence[VideoFrame]) -> list[Detections]:
        """Detections for each frame, in order (one model call for the whole batch). Thread-safe."""
        return self.detect_counted(frames)[0]

    def detect_counted(self, frames: Sequence[VideoFrame]) -> tuple[list[Detections], int]:
        """``detect`` plus how many rows it dropped from these frames' detections because their box was
        invalid (NaN/inf/negative size)."""
        if not frames:
            return [], 0
        model = self._free.get()
        try:
            converted = self._run(model, [f.image for f in frames])
        finally:
            self._free.put(model)
            self._detected_once.set()
        return [d for d, _ in converted], sum(n for _, n in converted)

    @staticmethod
    def _convert(result: Any) -> tuple[Detections, int]:
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().numpy() if boxes is not None else np.zeros((0, 4), np.float32)
        conf = boxes.conf.cpu().numpy() if boxes is not None else np.zeros(0, np.float32)
        cls = boxes.cls.cpu().numpy().astype(np.int64) if boxes is not None else np.zeros(0, np.int64)
        extra: dict[str, object] = {}
        if result.keypoints is not None:
            extra["keypoints"] = _with_visibility(result.keypoints.data.cpu().numpy().astype(np.float32))
        if result.masks is not None and len(xyxy):
            extra["mask_polygons"] = tuple(np.asarray(p, np.float32).reshape(-1, 2) for p in result.masks.xy)
        return Detections.drop_invalid(xyxy, conf, cls, **extra)


def _with_visibility(keypoints: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """(n, k, 3) keypoints: a model without visibility values has every point treated as visible."""
    if keypoints is not None and keypoints.shape[-1] == 2:
        return np.concatenate([keypoints, np.ones((*keypoints.shape[:2], 1), np.float32)], axis=-1)
    return keypoints


def tune_runtime(model: Any, path: str, threads: Optional[int]) -> None:
    """Give a warmed-up CPU model copy its share of the cores (ONNX Runtime and OpenVINO; PyTorch's share is
    set process-wide). Other runtimes and GPU sessions are left as Ultralytics made them."""
    backend: Any = getattr(getattr(getattr(model, "predictor", None), "model", None), "backend", None)
    if backend is None:
        return
    if getattr(backend, "ov_compiled_model", None) is not None:
        _tune_openvino(backend, path, threads)
    else:
        _tune_onnx_session(backend, path, threads)


def _tune_openvino(backend: Any, path: str, threads: Optional[int]) -> None:
    """Recompile an OpenVINO CPU model for ``threads`` threads, not pinned to cores (``native.compile_openvino``).

    Ultralytics compiles for latency on every core; with two copies each would spread its layers over all
    cores (and pin its threads to them), so the copies would fight over every core instead of sharing them.
    """
    if threads is None or list(backend.ov_compiled_model.get_property("EXECUTION_DEVICES")) != ["CPU"]:
        return
    backend.ov_compiled_model = native.compile_openvino(Path(path), threads)


def _tune_onnx_session(backend: Any, path: str, threads: Optional[int]) -> None:
    """Rebuild a CPU ONNX Runtime session with ``threads`` compute threads and busy-waiting switched off.

    Between runs ONNX Runtime's worker threads spin on the CPU by default. In trackstream the same cores
    decode, draw and encode while the detector waits for its next batch, so the spinning only steals their
    time.
    """
    session = getattr(backend, "session", None)
    if session is None or not hasattr(session, "get_providers"):
        return
    if session.get_providers() != ["CPUExecutionProvider"] or not Path(path).is_file():
        return
    backend.session = native.onnx_session(Path(path), threads)

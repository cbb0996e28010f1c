"""Which runtime runs the detector's model (``detector.runtime``), and the model file that runtime loads.

- ``auto`` (default): on a CPU, PyTorch weights (``.pt``, the bundled demo model among them) are exported once
  (fp32) and cached on disk (``pipelines/detection/model_cache.py``). With both OpenVINO and ONNX Runtime
  installed they are exported to both and the faster on this machine runs: timed once, at the run's input size
  on the threads one model copy gets, and remembered in the cache (``pipelines/detection/runtime_speed.py``);
  without OpenVINO (or where one of the two cannot export or load the model: a warning says why), the other
  runs, unmeasured. On CUDA/MPS, ``.pt`` weights run in PyTorch as before. Any
  other model (``.onnx``, an OpenVINO folder, ``.engine``, an architecture ``.yaml``) runs as given.
- ``torch``: ``.pt`` weights (or an architecture yaml) in PyTorch, nothing exported.
- ``onnx`` / ``openvino``: that runtime: a ``.pt`` is exported (cached); a model already in that format runs
  as given; a model in another format is refused with one line (trackstream converts only from ``.pt``).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from pipelines.detection.model_cache import ModelCache
from pipelines.detection.runtime_speed import CANDIDATES, Measurement, fastest_runtime
from pipelines.errors import ModelError

log = logging.getLogger(__name__)

RuntimeName = Literal["auto", "torch", "onnx", "openvino"]
RUNTIMES = ("auto", "torch", "onnx", "openvino")


def model_format(model: str) -> str:
    """``torch`` (.pt), ``architecture`` (.yaml), ``onnx``, ``openvino`` (a ``*_openvino_model`` folder, a
    folder with an ``.xml`` model, or the ``.xml``), ``tensorrt`` (.engine), else the suffix without its dot."""
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        return "torch"
    if suffix in (".yaml", ".yml"):
        return "architecture"
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".engine":
        return "tensorrt"
    if suffix == ".xml" or path.name.endswith("_openvino_model") or (path.is_dir() and any(path.glob("*.xml"))):
        return "openvino"
    return suffix.lstrip(".") or "unknown"


NOT_FOUND = ("model {model!r} not found: trackstream does not download models; pass a local weights file with "
             "--model /path/to/model.pt (or .onnx, .engine, ...)")


def check_model(model: str) -> None:
    """Refuse in one line a model file that is absent, or a YAML file that is no model architecture (a
    trackstream config given as --model: Ultralytics said only ``'backbone'``). A missing architecture yaml
    is an Ultralytics name (``yolo11n.yaml``), built from its own files."""
    path = Path(model).expanduser()
    if model_format(model) != "architecture":
        if not path.exists():
            raise ModelError(NOT_FOUND.format(model=model))
        return
    if path.is_file() and not _is_architecture(path):
        raise ModelError(f"{model} is not a model architecture (it has no backbone:); a trackstream config goes "
                         "in --config, weights in --model")


def _is_architecture(path: Path) -> bool:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "backbone" in doc


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def candidate_runtimes(requested: str, model: str, device: str) -> tuple[str, ...]:
    """The runtimes that may run ``model`` on ``device`` for ``detector.runtime`` (concrete: never ``auto``):
    one, or ``("onnx", "openvino")`` for ``auto`` on a CPU with both installed, the faster of which runs
    (``runtime_speed.fastest_runtime``).

    Raises:
        ModelError: the requested runtime cannot run this model here (one line saying what would).
    """
    fmt = model_format(model)
    if fmt != "torch":
        if requested in ("auto", fmt) or (fmt == "architecture" and requested == "torch"):
            return ("torch" if fmt == "architecture" else fmt,)
        raise ModelError(f"detector.runtime is {requested} but {Path(model).name} is not PyTorch .pt weights "
                         f"(it is {fmt}); trackstream exports only .pt weights (use --runtime auto to run it "
                         "as given)")
    if requested == "auto":
        if device != "cpu":
            return ("torch",)  # CUDA/MPS: PyTorch as before (a TensorRT export is for when a GPU can measure it)
        return CANDIDATES if openvino_installed() else ("onnx",)
    if requested == "openvino":
        if device != "cpu":
            raise ModelError(f"detector.runtime is openvino but detector.device is {device}; OpenVINO runs here "
                             "on the CPU (use --device cpu, or --runtime auto)")
        if not openvino_installed():
            raise ModelError("detector.runtime is openvino but OpenVINO is not installed "
                             "(pip install openvino, or use --runtime auto)")
    return (requested,)


@dataclass(frozen=True)
class RuntimeChoice:
    """What the detector loads.

    Attributes:
        runtime: ``torch``, ``onnx``, ``openvino`` or the given model's format (``tensorrt``, ...).
        model: the path (or architecture yaml) to load: the exported model for an exported runtime.
        weights: the model as configured. ``cache_entry``: the cache folder of an exported model, else None.
        exported_seconds: time spent exporting in this call (0 when found in the cache or not exported).
        measurement: why ``auto`` chose this runtime over the other (None: nothing was compared).
    """

    runtime: str
    model: str
    weights: str
    cache_entry: Optional[Path] = None
    exported_seconds: float = 0.0
    measurement: Optional[Measurement] = None

    def describe(self) -> str:
        """One line for the log: which runtime runs, why, and where its model came from."""
        if self.cache_entry is None:
            return f"runtime {self.runtime} ({Path(self.weights).name} as given)"
        why = f"{self.measurement.describe()}; " if self.measurement else ""
        how = f"exported in {self.exported_seconds:.1f} s" if self.exported_seconds else "from the cache"
        return f"runtime {self.runtime} ({why}{Path(self.weights).name} {how}: {self.cache_entry})"


def resolve_runtime(requested: str, model: str, device: str, imgsz: int, cache_dir: Optional[str] = None,
                    threads: Optional[int] = None) -> RuntimeChoice:
    """Choose the runtime (``candidate_runtimes``; the faster of two on this CPU at ``imgsz`` on ``threads``
    threads, 1 when None) and, for an exported one, get the model from the cache (exporting it on first use).
    Logs one line saying which runtime runs, why, and where its model is."""
    check_model(model)
    if model_format(model) == "architecture":   # '--model yolo11n.yaml' for the weights: every output empty, exit 0
        name = Path(model).name
        log.warning("%s is a model architecture: its weights are random, so it detects nothing real (it serves shape "
                    "and speed tests); for detections give trained weights: --model /path/to/%s.pt", name,
                    Path(name).stem)
    candidates = candidate_runtimes(requested, model, device)
    if not set(candidates) <= set(CANDIDATES) or model_format(model) != "torch":
        choice = RuntimeChoice(candidates[0], model, model)
    else:
        weights = Path(model).expanduser()
        if not weights.is_file():
            raise ModelError(NOT_FOUND.format(model=model))
        if weights.stat().st_size == 0:
            raise ModelError(f"cannot load model {weights}: the file is empty")
        cache = ModelCache(Path(cache_dir) if cache_dir else None)
        measurement: Optional[Measurement] = None
        if len(candidates) > 1:
            runtime, measurement, cached = fastest_runtime(cache, weights, imgsz, threads or 1)
        else:
            runtime, cached = candidates[0], cache.get(weights, candidates[0], imgsz)
        choice = RuntimeChoice(runtime, str(cached.path), model, cached.entry, cached.seconds, measurement)
    log.info("detector: %s", choice.describe())
    return choice

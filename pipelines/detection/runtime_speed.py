"""Which of ONNX Runtime and OpenVINO runs a ``.pt`` model faster on this CPU: measured once, then remembered.

``detector.runtime: auto`` on a CPU, with both runtimes installed, exports the weights to both (each an entry
of the model cache, ``model_cache.py``) and times them here, on this machine, before the first run uses either:
neither wins everywhere (OpenVINO's bfloat16 made it the faster on Intel CPUs with AMX; ONNX Runtime was
10-25% faster at 320 px on an AVX2-only AMD EPYC). How:

- the raw network of each (no pre- or post-processing, which is the same for both), on the threads one model
  copy of the run computes with (``threads``: the cores divided by the copies, as ``Detector`` gives them);
- input: a 16:9 picture (a 1280 x 720 camera frame letterboxed at ``imgsz``, 320 x 192 at 320 px) of fixed
  random pixels. What the pixels show does not change the time (all zeros, grey, noise and a frame of the
  bundled clip were within 3% of each other on both runtimes); the input's shape does;
- ``WARM_UP`` inferences of each, then ``ROUNDS`` rounds that alternate which runtime goes first, ``BURST``
  inferences of each per round, so a burst of load from other work hits both; the median of each wins.

The result is a small JSON file in the model cache beside the exports, ``<weights>-runtime-<imgsz>-<key>.json``:
the key (weights' SHA-256, input size, CPU model, usable cores, threads, versions of the libraries that export
and run the model), the milliseconds of each and the winner. Later runs, and other processes and Ray actors on
the machine, read it instead of measuring; a file that does not match the key or cannot be read is measured
again. It is written to a temporary file that is renamed over it, under a lock file as exports are, so
processes that start together measure once. Deleting it (or the cache) measures again on the next run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import math
import re
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np

from pipelines.cpu import cpu_cores, cpu_model
from pipelines.detection import native
from pipelines.detection.model_cache import CachedModel, ModelCache, leftovers, library_version, write_atomic
from pipelines.detection.model_identity import content_sha256
from pipelines.errors import ModelError, first_line

log = logging.getLogger(__name__)

CANDIDATES = ("onnx", "openvino")
DECISION_VERSION = 1
LIBRARIES = ("ultralytics", "torch", "onnx", "onnxruntime", "openvino")
WARM_UP, ROUNDS, BURST = 2, 6, 2
CAMERA_HW = (720, 1280)  # the frame shape whose letterboxed input is timed
STRIDE = 32              # YOLO's largest stride: inputs are padded to a multiple of it


@dataclass(frozen=True)
class Measurement:
    """Which runtime was faster, and by how much.

    Attributes:
        runtime: the faster of ``CANDIDATES``. ``ms``: median milliseconds per inference of each.
        imgsz: input size (px) it was measured at; ``threads``: threads per runtime.
        measured: True when measured in this call, False when read from the cache. ``path``: the decision file.
    """

    runtime: str
    ms: Mapping[str, float]
    imgsz: int
    threads: int
    measured: bool
    path: Path

    def describe(self) -> str:
        """``measured on this CPU: onnx 12.1 ms, openvino 14.9 ms per 320 px frame on 1 thread``."""
        times = ", ".join(f"{name} {self.ms[name]:.1f} ms" for name in CANDIDATES)
        when = "measured on this CPU" if self.measured else "measured on this CPU before, from the cache"
        return f"{when}: {times} per {self.imgsz} px frame on {self.threads} thread{'s' * (self.threads > 1)}"


def decision_key(weights: Path, imgsz: int, threads: int) -> dict[str, object]:
    """What a measurement holds for (see module docstring)."""
    return {"weights_sha256": content_sha256(weights), "imgsz": int(imgsz), "cpu": cpu_model(),
            "cores": cpu_cores(), "threads": int(threads),
            "versions": {name: library_version(name) for name in LIBRARIES}}


def fastest_runtime(cache: ModelCache, weights: Path, imgsz: int, threads: int
                    ) -> tuple[str, Optional[Measurement], CachedModel]:
    """The faster runtime for ``weights`` at ``imgsz`` on ``threads`` threads, from the cache's decision file
    or measured now (exporting both first where needed): (its name, the measurement, its cache entry). The
    entry's ``seconds`` is the time spent exporting in this call (both runtimes when measured now).

    When one runtime cannot export or load the model here (a broken install, an exporter that fails on these
    weights), the other runs: a warning says why, the measurement is None and nothing is recorded, so a later
    run (after a repair) compares them again.

    Raises:
        ModelError: the cache cannot be written, or neither runtime can export and load the model.
    """
    key = decision_key(weights, imgsz, threads)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache.root / f"{weights.stem}-runtime-{imgsz}-{digest}.json"
    found = _read(path, key, imgsz, threads)
    if isinstance(found, Measurement) and _importable(found.runtime):
        return found.runtime, found, cache.get(weights, found.runtime, imgsz)
    lock = cache.lock(path)
    try:
        found = _read(path, key, imgsz, threads)  # another process may have measured while this one waited
        if isinstance(found, Measurement) and _importable(found.runtime):
            return found.runtime, found, cache.get(weights, found.runtime, imgsz)
        if isinstance(found, str) and path.exists():
            log.warning("runtime decision %s is not usable (%s): measuring again", path, found)
        for stale in leftovers(path):  # left by a write that was killed
            stale.unlink(missing_ok=True)
        models, runs, failures = _ready(cache, weights, imgsz, threads)
        if len(runs) < len(CANDIDATES):
            return _survivor(weights, models, runs, failures)
        log.info("timing %s in onnx and openvino once on this CPU (later runs read %s)", weights.name, path)
        start = time.perf_counter()
        try:
            ms = _time_runs(runs)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot run its export is unusable here
            raise ModelError(f"cannot time {weights.name} in onnx and openvino: {first_line(exc)} "
                             "(use --runtime onnx or --runtime openvino)") from None
        seconds = time.perf_counter() - start
        runtime = min(CANDIDATES, key=lambda name: ms[name])
        record = {"decision": DECISION_VERSION, "key": key, "runtime": runtime,
                  "ms": {name: round(value, 3) for name, value in ms.items()}, "measure_seconds": round(seconds, 2),
                  "weights": str(weights), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            write_atomic(path, json.dumps(record, indent=1, sort_keys=True))
        except OSError as exc:
            raise ModelError(f"cannot write the model cache {cache.root}: {exc.strerror or exc} "
                             "(free some space, set detector.cache_dir, or use --runtime torch)") from None
    finally:
        lock.release()
    log.info("timed %s: %s in %.1f s", weights.name, ", ".join(f"{n} {ms[n]:.1f} ms" for n in CANDIDATES), seconds)
    return runtime, Measurement(runtime, ms, imgsz, threads, True, path), _with_exports(models, runtime)


def _with_exports(models: Mapping[str, CachedModel], runtime: str) -> CachedModel:
    """``runtime``'s entry, its ``seconds`` the time spent exporting every candidate in this call."""
    return replace(models[runtime], seconds=sum(model.seconds for model in models.values()))


RUNTIME_MODULES = {"onnx": "onnxruntime", "openvino": "openvino"}


def _importable(runtime: str) -> bool:
    """Whether ``runtime``'s library still imports: an install broken since the decision was recorded (its
    version unchanged, so the key is the same) must not fail every run; the other runtime runs then."""
    try:
        importlib.import_module(RUNTIME_MODULES[runtime])
    except Exception:  # noqa: BLE001 - a broken install raises ImportError, OSError or worse
        return False
    return True


def _ready(cache: ModelCache, weights: Path, imgsz: int, threads: int
           ) -> tuple[dict[str, CachedModel], dict[str, Callable[[], np.ndarray]], dict[str, ModelError]]:
    """Each candidate exported (or found in the cache) and loaded: (entries, one inference of each on the
    timing input, why each that could not be exported or loaded failed)."""
    side = -(-imgsz // STRIDE) * STRIDE  # 321 -> 352, as the detector rounds it
    models: dict[str, CachedModel] = {}
    runs: dict[str, Callable[[], np.ndarray]] = {}
    failures: dict[str, ModelError] = {}
    for name in CANDIDATES:
        try:
            models[name] = cache.get(weights, name, imgsz)
        except ModelError as exc:
            failures[name] = exc
            continue
        try:
            network, fixed = native.network(models[name].path, name, threads)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot load its export is unusable here
            failures[name] = ModelError(f"{name} cannot load {models[name].path.name}: {first_line(exc)}")
            continue
        shape = native.input_shape(CAMERA_HW, side, STRIDE, fixed)
        runs[name] = functools.partial(network, np.random.default_rng(0).random((1, 3, *shape), dtype=np.float32))
    return models, runs, failures


def _survivor(weights: Path, models: Mapping[str, CachedModel], runs: Mapping[str, object],
              failures: Mapping[str, ModelError]) -> tuple[str, None, CachedModel]:
    """The one runtime that could run ``weights`` when the other failed (a warning says why), else the error."""
    if not runs:
        first = next(iter(failures.values()))
        if len({str(exc) for exc in failures.values()}) == 1:
            raise first  # the same cause for both: a cache that cannot be written
        raise ModelError("; ".join(str(exc) for exc in failures.values()))
    (runtime,) = runs
    (failed, error), = failures.items()
    why = re.sub(r"\s*\(use --runtime [^)]*\)$", "", str(error))  # its advice is for a run of that runtime
    log.warning("detector: %s cannot run %s here (%s): running %s, unmeasured (--runtime %s skips the "
                "comparison)", failed, weights.name, why, runtime, runtime)
    return runtime, None, _with_exports(models, runtime)


def _read(path: Path, key: dict[str, object], imgsz: int, threads: int) -> "Measurement | str":
    """The measurement in ``path`` when it was made for ``key``, else why not."""
    if not path.is_file():
        return "no decision"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("decision") != DECISION_VERSION or data.get("key") != key:
            return "made for other weights, settings, CPU or library versions"
        ms = {name: float(data["ms"][name]) for name in CANDIDATES}
        if not all(math.isfinite(value) and value > 0 for value in ms.values()):
            return "its times are not positive numbers"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__})"
    return Measurement(min(CANDIDATES, key=lambda name: ms[name]), ms, imgsz, threads, False, path)


def _time_runs(runs: Mapping[str, Callable[[], np.ndarray]]) -> dict[str, float]:
    """Median ms per inference of each loaded model (see module docstring)."""
    for run in runs.values():
        for _ in range(WARM_UP):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for _ in range(ROUNDS):
        for name in order:
            for _ in range(BURST):
                start = time.perf_counter()
                runs[name]()
                times[name].append((time.perf_counter() - start) * 1000)
        order.reverse()
    return {name: statistics.median(values) for name, values in times.items()}

"""The on-disk cache of exported models: a PyTorch ``.pt`` exported once to ONNX or OpenVINO, then reused.

Where: ``detector.cache_dir``, else ``$TRACKSTREAM_MODEL_CACHE``, else ``$XDG_CACHE_HOME/trackstream/models``
(``~/.cache/trackstream/models``). Deleting the folder (or one entry in it) is always safe: what is missing is
exported again on the next run.

One entry per ``CacheKey``: the weights' SHA-256 (so the task and the classes, which live in the weights, too),
the runtime, the input size, the batch shape (``dynamic``: any batch size and any frame shape up to ``imgsz``,
which keeps Ultralytics' minimum-rectangle letterbox) and the versions of the libraries that export and run it.
Changing any of them names a new entry. An entry is a folder holding the exported files and ``manifest.json``
(the key, the file to load and each file's SHA-256). It is trusted only when the manifest's key is the one
asked for and every file hashes as recorded; anything else (a killed export, a truncated copy, a disk error,
an edited file) is exported again, never loaded.

Writers never expose a half-written entry: the export runs in a temporary folder beside the entry that is
renamed into place once its manifest is written. An exclusive lock file per entry makes concurrent first runs
(several workers, processes or Ray actors on one machine) export once: the others wait, then find it built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Optional

from pipelines.detection.model_identity import content_sha256, file_sha256
from pipelines.detection.ultralytics_env import quiet_ultralytics, telemetry_off
from pipelines.errors import ModelError

log = logging.getLogger(__name__)

CACHE_ENV = "TRACKSTREAM_MODEL_CACHE"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
EXPORT_FORMATS = ("onnx", "openvino")
# the distributions whose versions decide what an export produces and whether it loads
_LIBRARIES = {"onnx": ("ultralytics", "torch", "onnx", "onnxruntime"),
              "openvino": ("ultralytics", "torch", "openvino")}


def default_cache_dir() -> Path:
    """``$TRACKSTREAM_MODEL_CACHE``, else ``$XDG_CACHE_HOME/trackstream/models`` (``~/.cache/...``)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "trackstream" / "models"


def library_version(name: str) -> str:
    """The installed version of distribution ``name``, or ``absent``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


@dataclass(frozen=True)
class CacheKey:
    """What an exported model depends on (see module docstring)."""

    weights_sha256: str
    runtime: str
    imgsz: int
    batch: str
    versions: tuple[tuple[str, str], ...]

    @classmethod
    def for_weights(cls, weights: Path, runtime: str, imgsz: int) -> "CacheKey":
        if runtime not in EXPORT_FORMATS:
            raise ValueError(f"runtime must be one of {EXPORT_FORMATS}, got {runtime!r}")
        versions = tuple((name, library_version(name)) for name in _LIBRARIES[runtime])
        return cls(content_sha256(weights), runtime, int(imgsz), "dynamic", versions)

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["versions"] = dict(self.versions)
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedModel:
    """A verified cache entry.

    Attributes:
        path: what to load (an ``.onnx`` file or a ``*_openvino_model`` folder).
        entry: the entry's folder. ``task``: the model's task.
        built: True when this call exported it (False: found in the cache). ``seconds``: export time, or 0.
    """

    path: Path
    entry: Path
    task: str
    built: bool
    seconds: float


class ModelCache:
    """Exported models under ``root`` (see module docstring). Safe to share between threads and processes."""

    def __init__(self, root: Optional[Path] = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def entry_dir(self, weights: Path, key: CacheKey) -> Path:
        return self.root / f"{weights.stem}-{key.runtime}-{key.imgsz}-{key.digest()}"

    def get(self, weights: Path, runtime: str, imgsz: int) -> CachedModel:
        """The exported model of ``weights`` for ``runtime`` at ``imgsz``: verified from the cache, or exported
        now (once, under the entry's lock) when absent, corrupt or stale.

        Raises:
            ModelError: the cache folder cannot be written, or the export failed (one line).
        """
        key = CacheKey.for_weights(weights, runtime, imgsz)
        entry = self.entry_dir(weights, key)
        found = self._verified(entry, key)
        if isinstance(found, CachedModel):
            return found
        lock = self.lock(entry)
        try:
            found = self._verified(entry, key)  # another process may have built it while this one waited
            if isinstance(found, CachedModel):
                return found
            if entry.exists():
                log.warning("model cache entry %s is not usable (%s): exporting it again", entry, found)
            return self._build(weights, key, entry)
        finally:
            lock.release()

    def lock(self, path: Path) -> "EntryLock":
        """The exclusive lock ``<path>.lock`` of an entry of this cache, created with the cache folder if absent;
        waits while another thread or process holds it.

        Raises:
            ModelError: the cache folder cannot be created (one line).
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return EntryLock(path.with_name(path.name + ".lock"))
        except OSError as exc:
            raise ModelError(f"cannot create the model cache {self.root}: {exc.strerror or exc} "
                             f"(set detector.cache_dir or ${CACHE_ENV}, or use --runtime torch)") from None

    # -- reading ----------------------------------------------------------------------------------------------

    @staticmethod
    def _verified(entry: Path, key: CacheKey) -> "CachedModel | str":
        """The entry when its manifest matches ``key`` and every file hashes as recorded, else why not."""
        manifest = entry / MANIFEST
        if not manifest.is_file():
            return "no manifest"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if data.get("manifest") != MANIFEST_VERSION or data.get("key") != key.as_json():
                return "made for other weights, settings or library versions"
            files: dict[str, str] = data["files"]
            for name, digest in files.items():
                path = entry / name
                if not path.is_file() or file_sha256(path) != digest:
                    return f"{name} is missing or changed"
            model = entry / str(data["model"])
            if not files or not model.exists():
                return "the model file is missing"
            return CachedModel(model, entry, str(data["task"]), False, 0.0)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return f"unreadable manifest ({type(exc).__name__})"

    # -- writing ----------------------------------------------------------------------------------------------

    def _build(self, weights: Path, key: CacheKey, entry: Path) -> CachedModel:
        for stale in leftovers(entry):  # left by an export that was killed
            shutil.rmtree(stale, ignore_errors=True)
        work = scratch(entry)
        work.mkdir()
        log.info("exporting %s to %s once for this machine (later runs load it from %s)", weights.name, key.runtime,
                 self.root)
        try:
            start = time.perf_counter()
            model, task = export_model(weights, key.runtime, key.imgsz, work)
            seconds = time.perf_counter() - start
            files = {str(p.relative_to(work)): file_sha256(p) for p in sorted(work.rglob("*")) if p.is_file()}
            manifest = {"manifest": MANIFEST_VERSION, "key": key.as_json(), "model": str(model.relative_to(work)),
                        "task": task, "files": files, "weights": str(weights), "export_seconds": round(seconds, 2),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            _write_synced(work / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            _replace_dir(work, entry)
        except OSError as exc:
            raise ModelError(f"cannot write the model cache {self.root}: {exc.strerror or exc} "
                             "(free some space, set detector.cache_dir, or use --runtime torch)") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("exported %s to %s in %.1f s (cached in %s)", weights.name, key.runtime, seconds, entry)
        return CachedModel(entry / model.relative_to(work), entry, task, True, seconds)


def export_model(weights: Path, runtime: str, imgsz: int, work: Path) -> tuple[Path, str]:
    """Export ``weights`` with Ultralytics into the folder ``work``: (what to load, the model's task).

    fp32, dynamic batch and shape, no graph simplifier (``onnxslim`` is not a dependency), on the CPU, offline,
    installing nothing, with no telemetry (``ultralytics_env``).
    """
    telemetry_off()
    copy = work / f"{weights.stem}.pt"  # Ultralytics writes the export beside the weights: keep it in ``work``
    shutil.copyfile(weights, copy)

    def reason(exc: BaseException) -> str:  # one line, naming the user's file, not the working copy
        text = re.sub(r"^\W*ERROR\W*", "", " ".join(str(exc).split())).strip() or type(exc).__name__
        return text.replace(str(copy), str(weights))

    from ultralytics import YOLO  # type: ignore[attr-defined]  # exported lazily by ultralytics

    try:
        with quiet_ultralytics(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notes: nothing a user can act on
            try:
                model = YOLO(str(copy))
            except Exception as exc:  # noqa: BLE001 - Ultralytics raises many types for unreadable weights
                raise ModelError(f"cannot load model {weights}: {reason(exc)}") from None
            task = str(model.task)
            extra = {"simplify": False} if runtime == "onnx" else {}
            try:
                out = model.export(format=runtime, imgsz=imgsz, dynamic=True, batch=1, device="cpu", verbose=False,
                                   **extra)
            except Exception as exc:  # noqa: BLE001 - any exporter failure leaves the model unusable here
                raise ModelError(f"cannot export {weights.name} to {runtime}: {reason(exc)} "
                                 "(use --runtime torch)") from None
    finally:
        copy.unlink(missing_ok=True)
    path = Path(str(out))
    return (path if path.is_absolute() else work / path.name), task


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def scratch(target: Path) -> Path:
    """A name beside ``target`` for work that is renamed over it when whole: ``.tmp-<name>-<pid>-<nonce>``."""
    return target.with_name(f".tmp-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def leftovers(target: Path) -> list[Path]:
    """``scratch`` names of ``target`` left by a process that was killed before renaming (call under its lock)."""
    return sorted(target.parent.glob(f".tmp-{target.name}-*"))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a synced temporary file beside it, renamed over it."""
    work = scratch(path)
    try:
        _write_synced(work, text)
        os.replace(work, path)
    finally:
        work.unlink(missing_ok=True)


def _replace_dir(new: Path, entry: Path) -> None:
    """Put folder ``new`` at ``entry`` by rename; an unusable folder already there is moved aside first."""
    if entry.exists():
        old = entry.with_name(f".old-{entry.name}-{uuid.uuid4().hex[:8]}")
        os.replace(entry, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(new, entry)


class EntryLock:
    """An exclusive lock on ``path`` (created if absent), taken on construction (waiting for other holders)
    and given back by ``release``. Raises ``OSError`` when the lock file cannot be opened."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a+b")
        try:
            import fcntl
        except ImportError:  # not POSIX: exports may race, but renames keep every entry whole
            return
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        self._file.close()  # closing the file gives the lock back

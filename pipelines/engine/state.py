"""``--state DIR`` or ``--state redis://...``: each source's whole-camera snapshot, written atomically.

In a folder, one file per source, ``DIR/<source id>.json``; in Redis (``RedisStateStore``, what a Ray cluster
uses: a snapshot must outlive the node that wrote it), one key per source, ``trackstream:state:<source id>``,
holding the same document::

    {"format": "trackstream.state", "version": 1, "source_id": "cam1", "saved_at": 1764600000.0,
     "processor": {...StreamProcessor.state_dict()...},
     "outputs": {"jsonl": {"path": "...", "bytes": 12345}, "events": {...}, "mot": {...}, "video": {...}},
     "source": {"size": 123456, "frames": 250, "sha256_ends": "..."},   # or {"camera": "rtsp://host/path"}
     "settings": {"model": "/models/yolo11n.onnx", "model_content": {"size": 10617344, "sha256": "..."},
                  "imgsz": 640, ..., "zones": {...}, "lines": {...}}}

``settings`` is what a resume is compared against (``pipelines/engine/resume_settings.py``).

``outputs`` holds how far each file output had got when the processor state was taken (see
``Checkpoint``), so a resumed run cuts each file back to that point and continues it: lines written
after the last snapshot by a run that was killed are written once, not twice.

Files are written to a temporary name in the same folder, flushed to disk (fsync) and renamed over the
old one, so a crash at any moment leaves the old or the new snapshot, never a torn one; a Redis ``SET``
replaces the key's value in one step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from pipelines.errors import OutputError
from pipelines.processing.processor import StateError
from pipelines.sinks.base import legacy_safe_name, safe_name

log = logging.getLogger(__name__)

FORMAT = "trackstream.state"
VERSION = 1


class SnapshotStore(Protocol):
    """Where the snapshots of a run's sources live (a folder or a Redis database)."""

    def path(self, source_id: str) -> str:
        """Where ``source_id``'s snapshot is, for messages (no password)."""

    def load(self, source_id: str) -> Optional[dict[str, Any]]:
        """The saved snapshot, None when there is none; ``StateError`` (one line) when unusable."""

    def save(self, source_id: str, processor: Mapping[str, Any], outputs: Mapping[str, Any],
             source: Optional[Mapping[str, Any]] = None, settings: Optional[Mapping[str, Any]] = None) -> None:
        """Replace the snapshot in one step (``OutputError`` when it cannot be written); ``source``: the
        source's fingerprint; ``settings``: the run's detection and tracking settings (``run_settings``)."""

    def note_start(self, name: str, restarted: bool) -> int:
        """Record a start of the worker ``name``: a restart after a crash adds one, a fresh start resets the
        count to 0; returns the restarts so far."""


def in_redis(spec: str) -> bool:
    """Whether ``--state`` ``spec`` names a Redis server (``redis://``, ``rediss://``, ``unix://``), not a folder."""
    return spec.startswith(("redis://", "rediss://", "unix://"))


def snapshot_file(folder: Path, source_id: str) -> Path:
    """The file in a ``--state`` folder that holds ``source_id``'s snapshot."""
    return folder / f"{safe_name(source_id)}.json"


def restarts_file(folder: Path, name: str) -> Path:
    """The file in a ``--state`` folder that counts the restarts of the worker or source ``name``
    (``StateStore.note_start``)."""
    return folder / f".{safe_name(name)}.restarts"


def open_store(spec: str) -> SnapshotStore:
    """``--state``: a ``redis://``/``rediss://`` URL gives a ``RedisStateStore``, anything else a folder."""
    if in_redis(spec):
        return RedisStateStore(spec)
    return StateStore(spec)


def _document(source_id: str, processor: Mapping[str, Any], outputs: Mapping[str, Any],
              source: Optional[Mapping[str, Any]] = None, settings: Optional[Mapping[str, Any]] = None) -> bytes:
    doc = {"format": FORMAT, "version": VERSION, "source_id": source_id, "saved_at": round(time.time(), 3),
           "processor": processor, "outputs": outputs}
    if source is not None:  # what the snapshot belongs to (pipelines/engine/fingerprint.py)
        doc["source"] = dict(source)
    if settings is not None:  # what a resume is compared against (pipelines/engine/resume_settings.py)
        doc["settings"] = dict(settings)
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _parse(text: str, where: str, source_id: str) -> dict[str, Any]:
    """A stored snapshot document, checked (``where`` names it in messages)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise StateError(f"saved state {where} is not valid JSON ({exc}); remove it to start over") from None
    return _checked(doc, where, source_id)


def _checked(doc: object, where: str, source_id: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"{where} is not a trackstream state file; remove it to start over")
    if doc.get("version") != VERSION:
        raise StateError(f"saved state {where} has version {doc.get('version')!r}, this trackstream reads "
                         f"{VERSION}; remove it to start over")
    if doc.get("source_id") != source_id or not isinstance(doc.get("processor"), dict) \
            or not isinstance(doc.get("outputs"), dict):
        raise StateError(f"saved state {where} is malformed or of another source; remove it to start over")
    return doc


def legacy_snapshot(folder: Path, source_id: str) -> Optional[tuple[Path, dict[str, Any]]]:
    """The file and document of the snapshot an older trackstream saved in ``folder`` under the ASCII-only name
    of ``source_id`` (``café`` as ``caf.json``, ``日本`` as ``source.json``), when it is this source's."""
    legacy = folder / f"{legacy_safe_name(source_id)}.json"
    if legacy == snapshot_file(folder, source_id):
        return None
    try:
        doc = json.loads(legacy.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("source_id") != source_id:
        return None   # another source's file under that name: not this one's
    return legacy, doc


class StateStore:
    """Loads and saves the snapshots of a run's sources in one folder (created when missing)."""

    def __init__(self, directory: "str | os.PathLike[str]") -> None:
        self.dir = Path(directory).expanduser()
        if self.dir.exists() and not self.dir.is_dir():
            raise OutputError(f"--state {self.dir}: not a folder")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create state folder {self.dir}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()
        self._legacy: dict[str, Path] = {}

    def file(self, source_id: str) -> Path:
        return snapshot_file(self.dir, source_id)

    def path(self, source_id: str) -> str:
        return str(self.file(source_id))

    def load(self, source_id: str) -> Optional[dict[str, Any]]:
        """The saved snapshot of ``source_id``, None when there is none. A file that is not a snapshot
        raises ``StateError`` (one line naming the file)."""
        path = self.file(source_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._load_legacy(source_id)
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read saved state {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return _parse(text, str(path), source_id)

    def _load_legacy(self, source_id: str) -> Optional[dict[str, Any]]:
        """``legacy_snapshot``'s document; the next save writes the new name and removes the old file."""
        found = legacy_snapshot(self.dir, source_id)
        if found is None:
            return None
        self._legacy[source_id] = found[0]
        return _checked(found[1], str(found[0]), source_id)

    def save(self, source_id: str, processor: Mapping[str, Any], outputs: Mapping[str, Any],
             source: Optional[Mapping[str, Any]] = None, settings: Optional[Mapping[str, Any]] = None) -> None:
        """Write the snapshot atomically (temporary file, fsync, rename, fsync of the folder)."""
        data = _document(source_id, processor, outputs, source, settings)
        path = self.file(source_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                legacy = self._legacy.pop(source_id, None)
                if legacy is not None:   # saved under the new name now
                    legacy.unlink(missing_ok=True)
                _fsync_dir(self.dir)
            except OSError as exc:
                with contextlib.suppress(OSError):  # the folder itself may be gone or replaced
                    tmp.unlink()
                raise OutputError(f"cannot save state {path}: {exc.strerror or exc}") from None

    def note_start(self, name: str, restarted: bool) -> int:
        path = restarts_file(self.dir, name)
        with self._lock:
            restarts = 0
            if restarted:
                try:
                    restarts = int(path.read_text(encoding="utf-8").strip() or 0) + 1
                except (OSError, ValueError):
                    restarts = 1
            try:
                path.write_text(str(restarts), encoding="utf-8")
            except OSError:
                pass
        return restarts


class RedisStateStore:
    """Snapshots in Redis (``--state redis://host:port/db``): key ``<prefix>:<source id>`` per source.

    What a cluster needs: any node can load what another node saved, and nothing is kept on the node
    itself. Errors are one line with the password masked.
    """

    def __init__(self, url: str, prefix: str = "trackstream:state", timeout: float = 5.0) -> None:
        from pipelines.sinks.redis_conn import connect, describe, ping

        self.url, self.prefix = url, prefix
        self._where = describe(url)
        self._client = connect(url, timeout, socket_timeout=timeout)
        ping(self._client, url)  # an unreachable Redis or refused password: one line now

    def key(self, source_id: str) -> str:
        return f"{self.prefix}:{source_id}"

    def path(self, source_id: str) -> str:
        return f"{self._where} key {self.key(source_id)}"

    def _error(self, what: str, exc: BaseException) -> str:
        from pipelines.sinks.redis_conn import error_text

        return f"cannot {what} state in Redis at {self._where}: {error_text(exc, self.url)}"

    def load(self, source_id: str) -> Optional[dict[str, Any]]:
        try:
            raw = self._client.get(self.key(source_id))
        except Exception as exc:  # noqa: BLE001 - redis-py raises several kinds; one line for each
            raise StateError(self._error("read", exc)) from None
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return _parse(text, self.path(source_id), source_id)

    def save(self, source_id: str, processor: Mapping[str, Any], outputs: Mapping[str, Any],
             source: Optional[Mapping[str, Any]] = None, settings: Optional[Mapping[str, Any]] = None) -> None:
        try:
            self._client.set(self.key(source_id), _document(source_id, processor, outputs, source, settings))
        except Exception as exc:  # noqa: BLE001
            raise OutputError(self._error("save", exc)) from None

    def note_start(self, name: str, restarted: bool) -> int:
        key = f"{self.prefix}:restarts:{name}"
        try:
            if restarted:
                return int(self._client.incr(key))
            self._client.set(key, 0)
            return 0
        except Exception as exc:  # noqa: BLE001
            raise OutputError(self._error("count starts in", exc)) from None

    def forget(self, source_id: str) -> None:
        """Remove a source's snapshot (``trackstream cluster remove --forget``)."""
        try:
            self._client.delete(self.key(source_id))
        except Exception as exc:  # noqa: BLE001
            raise OutputError(self._error("remove", exc)) from None


# renew / release a lock only while it is still ours (another run may hold it after it expired)
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class RedisStateLock:
    """One writer per source's state in Redis (``--state redis://``): the key ``<prefix>-lock:<source id>``
    set with ``SET NX`` and an expiry of ``ttl`` seconds, holding ``PID <pid> on <host>``, renewed every
    ``ttl / 3`` by a thread while the run lives and deleted at its end. A second run refuses at start naming
    the key and the holder; the lock of a run that was killed (``kill -9``, a lost machine) expires after
    ``ttl`` seconds, as Redis has no process to watch. ``with RedisStateLock(...):`` holds it."""

    def __init__(self, url: str, source_ids: Sequence[str], ttl: float, prefix: str = "trackstream:state",
                 timeout: float = 5.0) -> None:
        from pipelines.sinks.redis_conn import connect, describe, ping

        self.url, self.ttl, self._where = url, ttl, describe(url)
        self.keys = [f"{prefix}-lock:{source_id}" for source_id in source_ids]
        self._ids = list(source_ids)
        self.holder = f"PID {os.getpid()} on {socket.gethostname()}"
        self._value = f"{self.holder} #{uuid.uuid4().hex[:12]}"  # ours alone, even for a PID reused elsewhere
        self._client = connect(url, timeout, socket_timeout=timeout)
        ping(self._client, url)  # an unreachable Redis or a refused password: one line now
        self._held: list[str] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "RedisStateLock":
        try:
            for source_id, key in zip(self._ids, self.keys):
                self._take(source_id, key)
        except BaseException:
            self.release()
            raise
        self._thread = threading.Thread(target=self._renew, name="trackstream-state-lock", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take(self, source_id: str, key: str) -> None:
        from pipelines.sinks.redis_conn import error_text

        try:
            if self._client.set(key, self._value, nx=True, px=max(1, int(self.ttl * 1000))):
                self._held.append(key)
                return
            other = self._client.get(key)
        except Exception as exc:  # noqa: BLE001 - redis-py raises several kinds; one line for each
            raise OutputError(f"cannot lock the state in Redis at {self._where}: {error_text(exc, self.url)}") \
                from None
        text = other.decode("utf-8", "replace") if isinstance(other, bytes) else str(other or "")
        by = f" ({text.split(' #')[0]})" if text else ""
        raise OutputError(f"the state of source {source_id} in Redis at {self._where} (key {key}) is being written "
                          f"by another trackstream run{by}: wait for it to end (the lock of a run that was killed "
                          f"expires within {self.ttl:g} s) or use another --state") from None

    def _renew(self) -> None:
        warned = False
        while not self._stop.wait(self.ttl / 3):
            for key in list(self._held):
                try:
                    kept = self._client.eval(_RENEW, 1, key, self._value, max(1, int(self.ttl * 1000)))
                except Exception as exc:  # noqa: BLE001 - an outage: the next turn tries again
                    if not warned:
                        log.warning("cannot renew the state lock %s in Redis at %s (%s); retrying", key,
                                    self._where, type(exc).__name__)
                        warned = True
                    continue
                if not kept:
                    log.error("the state lock %s in Redis at %s expired (Redis was out of reach longer than %g s): "
                              "another run may write this state too", key, self._where, self.ttl)
                    self._held.remove(key)

    def release(self) -> None:
        """Stop renewing and delete the keys still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for key in self._held:
            with contextlib.suppress(Exception):
                self._client.eval(_RELEASE, 1, key, self._value)
        self._held.clear()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Checkpoint:
    """A processor snapshot travelling through a source's sink queues behind the frames it covers.

    Each sink that keeps files (drop policy ``block``) reaches it after writing every earlier frame, flushes
    and acknowledges with its position; when the last one has, ``on_complete(processor, outputs)`` saves the
    snapshot. Snapshots of one source complete in the order they were taken.
    """

    def __init__(self, processor: dict[str, Any], waiting: set[str],
                 on_complete: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        self.processor = processor
        self._waiting = set(waiting)
        self._outputs: dict[str, Any] = {}
        self._on_complete = on_complete
        self._lock = threading.Lock()
        if not self._waiting:
            on_complete(processor, {})

    def ack(self, sink: str, position: Optional[Mapping[str, object]]) -> None:
        with self._lock:
            if position is not None:
                doc = dict(position)
                path = doc.get("path")
                if isinstance(path, str):   # the file itself, whatever folder a later run starts in
                    doc["path"] = os.path.abspath(path)
                self._outputs[sink] = doc
            self._waiting.discard(sink)
            done = not self._waiting
        if done:
            self._on_complete(self.processor, self._outputs)

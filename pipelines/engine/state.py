"""``--state DIR``: each source's whole-camera snapshot on disk, written atomically.

One file per source, ``DIR/<source id>.json``::

    {"format": "trackstream.state", "version": 1, "source_id": "cam1", "saved_at": 1764600000.0,
     "processor": {...StreamProcessor.state_dict()...},
     "outputs": {"jsonl": {"path": "...", "bytes": 12345}, "events": {...}, "mot": {...}, "video": {...}}}

``outputs`` holds how far each file output had got when the processor state was taken (see
``Checkpoint``), so a resumed run cuts each file back to that point and continues it: lines written
after the last snapshot by a run that was killed are written once, not twice.

Files are written to a temporary name in the same folder, flushed to disk (fsync) and renamed over the
old one, so a crash at any moment leaves the old or the new snapshot, never a torn one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from pipelines.errors import OutputError
from pipelines.processing.processor import StateError
from pipelines.sinks.base import safe_name

FORMAT = "trackstream.state"
VERSION = 1


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

    def path(self, source_id: str) -> Path:
        return self.dir / f"{safe_name(source_id)}.json"

    def load(self, source_id: str) -> Optional[dict[str, Any]]:
        """The saved snapshot of ``source_id``, None when there is none. A file that is not a snapshot
        raises ``StateError`` (one line naming the file)."""
        path = self.path(source_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read saved state {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise StateError(f"saved state {path} is not valid JSON ({exc}); remove it to start over") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise StateError(f"{path} is not a trackstream state file; remove it to start over")
        if doc.get("version") != VERSION:
            raise StateError(f"saved state {path} has version {doc.get('version')!r}, this trackstream reads "
                             f"{VERSION}; remove it to start over")
        if doc.get("source_id") != source_id or not isinstance(doc.get("processor"), dict) \
                or not isinstance(doc.get("outputs"), dict):
            raise StateError(f"saved state {path} is malformed or of another source; remove it to start over")
        return doc

    def save(self, source_id: str, processor: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Write the snapshot atomically (temporary file, fsync, rename, fsync of the folder)."""
        doc = {"format": FORMAT, "version": VERSION, "source_id": source_id, "saved_at": round(time.time(), 3),
               "processor": processor, "outputs": outputs}
        data = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        path = self.path(source_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                _fsync_dir(self.dir)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise OutputError(f"cannot save state {path}: {exc.strerror or exc}") from None


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
                self._outputs[sink] = dict(position)
            self._waiting.discard(sink)
            done = not self._waiting
        if done:
            self._on_complete(self.processor, self._outputs)

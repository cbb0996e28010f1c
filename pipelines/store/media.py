"""The media folder (``--media DIR``): file names, a writer thread, and retention.

Layout: ``DIR/<source>/<YYYYmmdd>/<kind>-<track>-<HHMMSS>-<n>.<ext>`` where kind is ``snap`` (a track's
best crop, JPEG), ``frame`` (the full frame of that view with the box drawn, JPEG) or ``clip`` (H.264 mp4
around an event); the day and time are the UTC wall-clock time of the track's end or the event. The
database stores these paths relative to ``DIR``.

``MediaWorker`` does every file write (and clip encoding) on its own thread, so neither the processing
thread nor the store sink waits for the disk. ``MediaRetention`` deletes the oldest of one source's media
beyond an age or a total size, and only files named as above inside that source's own folder (and, after an
hour, the ``.<name>.part`` files a crash left mid-write): nothing else in the media folder is ever touched.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from pipelines.retention import RetentionLimits

log = logging.getLogger("trackstream.store")

MEDIA_FILE = re.compile(r"^(snap|frame|clip)-\d+-\d{6}-\d+\.(jpg|mp4)$")
PARTIAL_FILE = re.compile(r"^\.(snap|frame|clip)-\d+-\d{6}-\d+\.(jpg|mp4)\.part$")   # a write cut short
PARTIAL_AGE_S = 3600.0
DAY_FOLDER = re.compile(r"^\d{8}$")


def source_folder(source_id: str) -> str:
    """The name of ``source_id``'s folder inside the media folder (``safe_name``): the one place it is made, for
    the store's file names, the start-up check that the folder can hold files, and the output guard."""
    from pipelines.sinks.base import safe_name  # here: importing pipelines.sinks imports this module

    return safe_name(source_id)


class MediaNames:
    """Unique media paths of one source (relative to the media folder)."""

    def __init__(self, root: Path, source_id: str) -> None:
        self.root = root
        self.folder = source_folder(source_id)
        self._n = 0

    def name(self, kind: str, track_id: Optional[int], wall_time: float, ext: str) -> str:
        self._n += 1
        day = time.strftime("%Y%m%d", time.gmtime(wall_time))
        clock = time.strftime("%H%M%S", time.gmtime(wall_time))
        return f"{self.folder}/{day}/{kind}-{track_id or 0}-{clock}-{os.getpid() % 100000}{self._n:05d}.{ext}"


def write_file(root: Path, relative: str, data: bytes) -> None:
    """Write ``data`` at ``root/relative`` atomically (a temporary file renamed into place)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        with open(partial, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)   # a full disk: the half-written file would keep its space
        raise


class MediaWorker:
    """Runs media jobs (file writes, clip encodes) in order on one thread; a failed job logs one line."""

    def __init__(self, name: str) -> None:
        self._jobs: "queue.Queue[Optional[Callable[[], None]]]" = queue.Queue()
        self.failed = 0
        self.done = 0
        self.reason: Optional[str] = None    # why the first failed job failed
        self._thread = threading.Thread(target=self._run, name=f"trackstream-media-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def pending(self) -> int:
        return self._jobs.qsize()

    def close(self, timeout: Optional[float] = None) -> None:
        """Finish the jobs already submitted (waits up to ``timeout`` s; None: until done)."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
                self.done += 1
            except Exception as exc:  # noqa: BLE001 - a full disk or a bad frame loses that file, not the run
                self.failed += 1
                if self.reason is None:
                    self.reason = str(getattr(exc, "strerror", None) or exc)
                    log.warning("media: cannot write a snapshot or clip (%s); rows keep their place and say "
                                "the file is missing", self.reason)


@dataclass(frozen=True)
class MediaRetention(RetentionLimits):
    """Keep one source's media within an age and/or a total size (None: no limit)."""

    def apply(self, folder: Path, now: Optional[float] = None) -> list[Path]:
        """Delete the oldest media files in ``folder`` (a source's folder) beyond the limits; returns them."""
        if not self.active or not folder.is_dir():
            return []
        found: list[tuple[float, str, int, Path]] = []
        for day in os.scandir(folder):
            if not (day.is_dir(follow_symlinks=False) and DAY_FOLDER.match(day.name)):
                continue
            for entry in os.scandir(day.path):
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                if MEDIA_FILE.match(entry.name):
                    found.append((info.st_mtime, entry.name, info.st_size, Path(entry.path)))
                elif PARTIAL_FILE.match(entry.name) and time.time() - info.st_mtime > PARTIAL_AGE_S:
                    Path(entry.path).unlink(missing_ok=True)   # left by a crash mid-write: never a whole file
        found.sort()
        deleted = self.expire([(path, mtime, size) for mtime, _, size, path in found], now, "media retention")
        for emptied in {p.parent for p in deleted}:
            try:
                emptied.rmdir()    # only when empty
            except OSError:
                pass
        if deleted:
            log.info("media retention: deleted %d file(s) of %s", len(deleted), folder.name)
        return deleted

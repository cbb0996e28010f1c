"""A recording still being written: a recorder appending to an MPEG-TS or MKV file while a run reads it.

FFmpeg reads such a file to its current end and stops there, as at the end of a finished file. ``GrowthWatch``
tells the two apart when reading reaches the end: the file is still growing when its size or modification time
changed since it was opened. A file of a format a recorder appends to (``appendable``) that was modified in the
last ``RECENT_SECONDS`` is watched until it is that old: growing if it changes meanwhile (a recorder writes
every few seconds at most, a loaded machine's too), finished if not. So a recording is caught even when
reading it took less time than the recorder's next write, and a file copied a moment ago costs a few seconds'
wait, not a false alarm.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

RECENT_SECONDS = 10.0
"""A file of an appendable format modified this recently when reading reached its end is watched until it is
this old: a recording still being written changes meanwhile, a finished one does not."""
POLL_SECONDS = 0.2

# FFmpeg demuxers (``container.format.name`` parts) of formats that can be read while a recorder appends to them.
# A plain MP4 cannot (its index is written at the end: ``launch.skip_unreadable`` skips it); a fragmented one can.
APPENDABLE_FORMATS = frozenset({"mpegts", "matroska", "webm", "flv", "mpeg", "mpegvideo", "h264", "hevc", "nut"})


def appendable(container: Any, stream: Any) -> bool:
    """Whether ``container`` (opened by PyAV, ``stream`` its video) is of a format a recorder appends to."""
    names = set(str(container.format.name).split(","))
    if names & APPENDABLE_FORMATS:
        return True
    return "mp4" in names and not int(stream.frames or 0)   # fragmented MP4: no frame count in its header


@dataclass(frozen=True)
class Growth:
    """How a file showed that it was still being written: it gained ``grew`` bytes (0: its size is the same,
    its modification time is not) since it was opened."""

    grew: int

    def phrase(self) -> str:
        """``it grew by 3760 bytes since it was opened`` or ``it was modified since it was opened``."""
        if self.grew > 0:
            return f"it grew by {self.grew} bytes since it was opened"
        return "it was modified since it was opened"


class GrowthWatch:
    """The size and modification time of a file when it was opened, to compare with those at its end."""

    def __init__(self, path: Path, appendable: bool) -> None:
        self.path, self.appendable = path, appendable
        self._opened = self._stat()

    def _stat(self) -> Optional[os.stat_result]:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def at_end(self, stop: threading.Event) -> Optional[Growth]:
        """Whether the file is still being written now that reading reached its end: ``Growth``, else None (also
        for a file that shrank or went away: replaced, not appended to). A recently modified appendable file is
        watched first (up to ``RECENT_SECONDS`` since it was modified; ``stop`` ends the wait: None)."""
        opened, now = self._opened, self._stat()
        if opened is None or now is None:
            return None
        age = time.time() - now.st_mtime
        deadline = time.monotonic() + RECENT_SECONDS - max(0.0, age)
        if self.appendable and age < RECENT_SECONDS and now.st_size == opened.st_size \
                and now.st_mtime_ns == opened.st_mtime_ns:
            log.info("%s was modified %.1f s ago: watching it for %.1f s more, to tell whether it is still being "
                     "written", self.path, max(0.0, age), deadline - time.monotonic())
        while True:
            if now.st_size < opened.st_size:
                return None
            if now.st_size != opened.st_size or now.st_mtime_ns != opened.st_mtime_ns:
                return Growth(now.st_size - opened.st_size)
            if not self.appendable or time.monotonic() >= deadline or stop.wait(POLL_SECONDS):
                return None
            now = self._stat()
            if now is None:
                return None


__all__ = ["APPENDABLE_FORMATS", "Growth", "GrowthWatch", "POLL_SECONDS", "RECENT_SECONDS", "appendable"]

"""Segment names and retention for outputs that rotate (annotated video, JSONL, events).

A rotating output writes a live file ``NAME.ext``; when a segment is finished it is renamed to
``NAME.<start>-<n>.ext``, where ``<start>`` is the UTC time the segment was started (``YYYYmmdd-HHMMSS``)
and ``<n>`` a 6-digit counter; sorting the names gives the segments in time order.

``Retention`` deletes the oldest finished segments of one output when they are older than ``max_age`` seconds
or together larger than ``max_bytes``. It only ever considers files named like that output's own segments
(``NAME.<stamp>-<n>.ext`` in the output's folder): the live file and anything else in the folder are never
touched.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pipelines.retention import RetentionLimits

log = logging.getLogger(__name__)

RECENT_SEGMENTS = 1000  # finished segment names a sink remembers (the files themselves are what count)


def rotated_name(path: Path, started: float, sequence: int) -> tuple[Path, int]:
    """The first free segment name for a segment of ``path`` started at ``started`` (Unix s), and the
    counter it used (pass it back next time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    while True:
        sequence += 1
        candidate = path.with_name(f"{path.stem}.{stamp}-{sequence:06d}{path.suffix}")
        if not candidate.exists():
            return candidate, sequence


def segment_pattern(path: Path) -> "re.Pattern[str]":
    """The names of ``path``'s own finished segments."""
    return re.compile(rf"^{re.escape(path.stem)}\.\d{{8}}-\d{{6}}-\d{{6}}{re.escape(path.suffix)}$")


@dataclass(frozen=True)
class Retention(RetentionLimits):
    """Keep the finished segments of an output within an age and/or a total size (None: no limit)."""

    def apply(self, path: Path, now: Optional[float] = None) -> list[Path]:
        """Delete the oldest segments of ``path`` beyond the limits; returns what was deleted."""
        if not self.active:
            return []
        pattern = segment_pattern(path)
        folder = path.parent if str(path.parent) else Path(".")
        segments = []
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and pattern.match(entry.name):
                info = entry.stat(follow_symlinks=False)
                segments.append((entry.name, info.st_mtime, info.st_size))
        segments.sort()  # names sort in time order
        deleted = self.expire([(folder / name, mtime, size) for name, mtime, size in segments], now, "retention")
        if deleted:
            log.info("retention: deleted %d old segment(s) of %s", len(deleted), path.name)
        return deleted

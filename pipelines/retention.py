"""Retention limits: keep a set of files within an age and a total size by deleting the oldest first.

One rule for every output that keeps files over time: the finished segments of a rotated JSONL or video
output (``sinks/rotation.py``) and an event store's snapshots and clips (``store/media.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionLimits:
    """An age (seconds) and/or a total size (bytes) to keep files within (None: no limit)."""

    max_age: Optional[float] = None
    max_bytes: Optional[int] = None

    @property
    def active(self) -> bool:
        return self.max_age is not None or self.max_bytes is not None

    def expire(self, files: Sequence[tuple[Path, float, int]], now: Optional[float], what: str) -> list[Path]:
        """Delete files of ``files`` (``(path, mtime, size)``, oldest first) from the oldest on, while one is
        older than ``max_age`` or they add up to more than ``max_bytes``; returns the files gone. A file
        already gone counts as deleted; one that cannot be deleted stops the pass (a warning names ``what``,
        the next pass tries again)."""
        now = time.time() if now is None else now
        total = sum(size for _, _, size in files)
        deleted: list[Path] = []
        for path, mtime, size in files:
            too_old = self.max_age is not None and now - mtime > self.max_age
            too_big = self.max_bytes is not None and total > self.max_bytes
            if not (too_old or too_big):
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("%s: cannot delete %s: %s", what, path, exc.strerror or exc)
                break
            total -= size
            deleted.append(path)
        return deleted

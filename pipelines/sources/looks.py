"""``FirstLooks``: each file of a run opened once at start, and what that look learned kept for every later look.

Opening a file tells whether it can be read, whether trackstream wrote it (its header), how many frames its video
stream states and at what rate: what the checks at start, the progress bar and a resume's fingerprint need. On a
network share every open is a round trip or more, and an archive has thousands of files, so each is opened once
for all of that. The open file itself is kept for the ``FileSource`` that reads it while few are kept
(``keep``: ``KEEP_OPEN``, fewer under a low limit on open files): a small archive opens each file once in all. The
others are closed again at once, their facts kept, and opened anew when their turn comes
(``pipelines/engine/waves.py``): a file that waits holds no open file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Mapping, Optional, Union

from pipelines.errors import SourceError
from pipelines.sources.file import open_container

if TYPE_CHECKING:
    import av.container

KEEP_OPEN = 16   # files kept open after their first look, at most (a small archive: one open per file in all)


def keep_open_limit(keep: int = KEEP_OPEN) -> int:
    """How many looked-at files may stay open: ``keep``, or an eighth of the soft limit on open files if lower."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return keep
    return keep if soft == resource.RLIM_INFINITY else max(0, min(keep, soft // 8))


def _rate(value: Optional[Fraction]) -> Optional[float]:
    return float(value) if value else None


@dataclass(frozen=True)
class Look:
    """What the first look at a file learned.

    Attributes:
        tags: the container's metadata (whether trackstream wrote it: ``sinks.video.segment_in``).
        frames: the frame count its video stream states (None: none stated), as ``FileSource.frame_count``.
        fps: its average (else guessed) frame rate, as ``FileSource.fps``.
    """

    tags: Mapping[str, str]
    frames: Optional[int]
    fps: Optional[float]


def look_at(container: "av.container.InputContainer") -> Look:
    """The ``Look`` of an open file."""
    stream = container.streams.video[0]
    return Look({str(k): str(v) for k, v in container.metadata.items()}, int(stream.frames) or None,
                _rate(stream.average_rate) or _rate(stream.guessed_rate))


class FirstLooks:
    """Files opened once at start (``open_container``); at most ``keep`` of them kept open for the source that
    reads it (default ``keep_open_limit()``), the others closed with their ``Look`` kept. ``close()`` (or the
    end of a ``with`` block) closes what no source took."""

    def __init__(self, keep: Optional[int] = None) -> None:
        self.keep = keep_open_limit() if keep is None else keep
        self._looked: dict[str, Union[Look, SourceError]] = {}
        self._open: dict[str, "av.container.InputContainer"] = {}

    def __enter__(self) -> "FirstLooks":
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    @staticmethod
    def _key(path: Union[str, Path]) -> str:
        return os.path.realpath(Path(path).expanduser())

    def _look(self, path: Union[str, Path]) -> Union[Look, SourceError]:
        key = self._key(path)
        if key not in self._looked:
            try:
                container = open_container(Path(path).expanduser())
            except SourceError as exc:
                self._looked[key] = exc
                return exc
            try:
                self._looked[key] = look_at(container)
            finally:
                if len(self._open) < self.keep:
                    self._open[key] = container
                else:
                    container.close()
        return self._looked[key]

    def look(self, path: Union[str, Path]) -> Look:
        """What opening ``path`` learned (the first call opens it); ``SourceError`` (one line, as
        ``open_container`` says it) when it cannot be read."""
        looked = self._look(path)
        if isinstance(looked, SourceError):
            raise looked
        return looked

    def check(self, path: Union[str, Path]) -> None:
        """``SourceError`` when ``path`` cannot be read."""
        self.look(path)

    def tags(self, path: Union[str, Path]) -> Optional[Mapping[str, str]]:
        """The metadata of ``path``'s container; None when it cannot be read."""
        looked = self._look(path)
        return None if isinstance(looked, SourceError) else looked.tags

    def take(self, path: Union[str, Path]) -> Optional["av.container.InputContainer"]:
        """The open file of ``path``, handed over (the caller closes it); None when it was not kept open (the caller
        opens it itself, and says why it cannot)."""
        return self._open.pop(self._key(path), None)

    def drop(self, path: Union[str, Path]) -> None:
        """Close ``path``'s file if it is kept open (it is left out of the run, or is not read after all)."""
        container = self.take(path)
        if container is not None:
            container.close()

    @property
    def held(self) -> int:
        """Files kept open now."""
        return len(self._open)

    def close(self) -> None:
        """Close every file no source took."""
        for key in list(self._open):
            self.drop(key)


__all__ = ["KEEP_OPEN", "FirstLooks", "Look", "keep_open_limit", "look_at"]

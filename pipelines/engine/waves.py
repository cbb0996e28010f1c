"""The files of an archive run a few at a time, so an archive of any size runs with a bounded number of open files
and bounded memory.

``open_sources`` (``launch.py``) opens every camera, every file played at its own pace (``realtime``) or looping,
and the first ``file_lanes`` plain files; each other file becomes a ``WaitingFile``: what its first look learned
(its frame count and rate, for the progress bar, the ETA and a resume's fingerprint), no open file, no decoder,
no thread, no outputs. The ``Runner`` keeps one ``Slot`` per source for the whole run: waiting, open (its
``Lane``) or done (a ``Finished`` record: its counts, the files it wrote, what it lost). Whenever fewer than
``file_lanes`` files are being read, the next waiting file, in order, is opened, its outputs with it; a file whose
reader has reached its end still holds its last frames and its outputs until the processing thread finished it and
every output thread closed its output, and at most twice ``file_lanes`` files hold anything. Stopped (Ctrl-C), the
files still waiting are not started: the summary says so, and no snapshot is written for them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Union

from pipelines.engine.lane import Lane
from pipelines.engine.stats import SourceStats
from pipelines.engine.view import OutputState, SourceState
from pipelines.frames import Counts, StreamStatus, VideoFrame
from pipelines.settings import SourceSettings
from pipelines.sources.base import Source, file_path

if TYPE_CHECKING:
    from pipelines.sources.looks import FirstLooks

MIN_FILE_LANES = 4


def file_lanes(workers: Optional[int]) -> int:
    """Plain files open at once: twice the detector's copies (``workers``; None: not known yet, taken as 1), at
    least ``MIN_FILE_LANES``. Each copy takes a batch of one file, and a file whose detection schedule waits for
    each detection's plan has one frame in a call at a time; the others decode meanwhile, and one that ends
    leaves the detector the rest while the next is opened."""
    return max(MIN_FILE_LANES, 2 * (workers or 1))


def in_waves(settings: SourceSettings) -> bool:
    """Whether ``settings``' source waits for its turn: a plain file. A camera, a file played at its own pace
    (``realtime``) and a looping one are open for the whole run, as a camera is."""
    return not settings.is_live and not settings.latest_frame and not settings.options.loop


class WaitingFile:
    """A file that waits for its turn: what its first look learned (``FirstLooks.look``; a file that cannot be
    read is a ``SourceError`` now, as opening it would be), and ``open()`` for its turn. Holds no open file
    (unless ``looks`` keeps the one of its first look, in a small archive)."""

    is_live = False
    size: Optional[tuple[int, int]] = None
    dropped = 0
    pending = 0
    connected = True
    connect_failures = 0

    def __init__(self, settings: SourceSettings, looks: "FirstLooks") -> None:
        path = file_path(settings.url)
        if path is None:
            raise ValueError(f"not a file: {settings.url}")
        look = looks.look(path)
        self.settings, self.looks, self.path = settings, looks, Path(path)
        self.source_id = settings.id
        self.frame_count: Optional[int] = look.frames
        self.fps: Optional[float] = look.fps

    def open(self) -> Source:
        """The file's source, as ``open_source`` opens it (taking the file its first look kept open, if any)."""
        from pipelines.sources import open_source

        return open_source(self.settings, self.looks)

    def frames(self) -> Iterator[Union[VideoFrame, StreamStatus]]:
        """Nothing: a waiting file is opened (``open()``) before it is read."""
        return iter(())

    def stop(self) -> None:
        """Nothing to stop."""

    def close(self) -> None:
        """Close the file its first look kept open, if any: it will not be read."""
        self.looks.drop(self.path)


@dataclass(frozen=True)
class Finished:
    """What is kept of a source once its lane let go of everything.

    Attributes:
        counts: its counts after its last frame.
        files: the files its outputs wrote (an output that stopped early, a full disk, is left out).
        losses: one phrase per output that lost data (``Outlet.loss``).
        state_failure: why its last snapshot could not be saved; None when saved (or no ``--state``).
    """

    counts: Counts
    files: tuple[str, ...]
    losses: tuple[str, ...]
    state_failure: Optional[str]
    shown: tuple[OutputState, ...] = ()   # its live view's output (closed), holding the last picture it showed


NOTHING = Counts({}, {}, 0)


class Slot:
    """One source for the whole run: ``waiting`` for its turn, open (``lane``) or done (``finished``); its
    counters (``stats``) live through all three."""

    def __init__(self, settings: SourceSettings, stats: SourceStats, waiting: Optional[WaitingFile] = None) -> None:
        self.settings, self.stats, self.waiting = settings, stats, waiting
        self.lane: Optional[Lane] = None
        self.finished: Optional[Finished] = None

    def retire(self) -> None:
        """The lane let go of everything: keep only what the summary and the view read of it."""
        lane = self.lane
        if lane is None:
            return
        files = tuple(path for outlet, path in lane.output_files if outlet.failure is None)
        losses = tuple(phrase for outlet in lane.outlets if (phrase := outlet.loss(self.settings.id)) is not None)
        shown = tuple(OutputState(o.name, 0, None, o.failure, o.sink) for o in lane.outlets if o.name == "viewer")
        self.finished = Finished(lane.counts, files, losses, lane.state_failure, shown)
        self.lane = None

    def forget_picture(self) -> None:
        """Let go of the last picture a finished source's live view showed (its counts stay)."""
        if self.finished is not None and self.finished.shown:
            self.finished = dataclasses.replace(self.finished, shown=())

    def state(self) -> SourceState:
        """The source now, as readers of the engine see it."""
        if self.lane is not None:
            return self.lane.state()
        return SourceState(id=self.settings.id, live=self.settings.is_live, connected=True, connect_failures=0,
                           pending=0, inbox=0, stats=self.stats.snapshot(), latency=self.stats.latency,
                           counts=self.finished.counts if self.finished is not None else NOTHING,
                           outputs=self.finished.shown if self.finished is not None else ())

    def files(self) -> list[str]:
        """The files its outputs write or wrote (an output that stopped early left out)."""
        if self.lane is not None:
            return [path for outlet, path in self.lane.output_files if outlet.failure is None]
        return list(self.finished.files) if self.finished is not None else []

    def output_losses(self) -> list[str]:
        if self.lane is not None:
            return [phrase for outlet in self.lane.outlets if (phrase := outlet.loss(self.settings.id)) is not None]
        return list(self.finished.losses) if self.finished is not None else []

    def state_failure(self) -> Optional[str]:
        if self.lane is not None:
            return self.lane.state_failure
        return self.finished.state_failure if self.finished is not None else None


__all__ = ["MIN_FILE_LANES", "Finished", "Slot", "WaitingFile", "file_lanes", "in_waves"]

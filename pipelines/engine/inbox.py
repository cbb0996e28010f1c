"""Per-source buffer between a reader thread and the detector thread.

Two policies (see docs/architecture.md):

- *every frame* (files): a bounded FIFO; the reader blocks while it is full, nothing is dropped.
- *latest frame* (live cameras, or ``realtime: true``): at most one frame waits; a newer frame replaces
  it and the replaced frame is counted as dropped.

Status values (``StreamStatus``) are never dropped and keep their place among the frames.
All inboxes of one runner share one ``threading.Condition`` so the detector can wait for "any input".
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque, Union

from pipelines.frames import StreamStatus, VideoFrame
from pipelines.engine.stats import SourceStats

Item = Union[VideoFrame, StreamStatus]


class Inbox:
    """A bounded, ordered buffer of frames and statuses for one source (see module docstring)."""

    def __init__(self, cond: threading.Condition, capacity: int, latest: bool, stats: SourceStats) -> None:
        self._cond = cond
        self.capacity = max(1, capacity)
        self.latest = latest
        self.stats = stats
        self._items: Deque[Item] = deque()
        self._frames = 0
        self.ended = False

    def put(self, item: Item, cancelled: Callable[[], bool]) -> bool:
        """Add ``item``; with the every-frame policy wait for room. False if ``cancelled()`` became true."""
        with self._cond:
            if isinstance(item, VideoFrame):
                if self.latest:
                    self._drop_waiting_frames()
                else:
                    while self._frames >= self.capacity:
                        if cancelled():
                            return False
                        self._cond.wait(0.1)
                self._frames += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def _drop_waiting_frames(self) -> None:
        kept: Deque[Item] = deque(i for i in self._items if not isinstance(i, VideoFrame))
        dropped = len(self._items) - len(kept)
        if dropped:
            self._items = kept
            self._frames = 0
            self.stats.add(dropped=dropped)

    @property
    def depth(self) -> int:
        """Items waiting (frames and statuses), for the metrics' queue-depth gauge."""
        return len(self._items)

    def close(self) -> None:
        """The reader is done: no more items will come."""
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    # The methods below are called by the detector thread with the shared condition held.

    def ready(self, batch: int) -> bool:
        """Whether ``take`` would return something now without waiting for a fuller batch."""
        if not self._items:
            return False
        if self.latest or self.ended or isinstance(self._items[0], StreamStatus):
            return True
        return self._frames >= min(batch, self.capacity)

    def finished(self) -> bool:
        """Ended and emptied."""
        return self.ended and not self._items

    def take(self, batch: int) -> list[Item]:
        """Pop items in order until ``batch`` frames are taken or the buffer is empty. Statuses at the head
        come alone while a file's frames behind them are fewer than a batch (``ready`` let them through): the
        frames wait for their full batch, so a file's batches never depend on when its status came."""
        out: list[Item] = []
        while self._items and isinstance(self._items[0], StreamStatus):
            out.append(self._items.popleft())
        if out and not (self.latest or self.ended) and self._frames < min(batch, self.capacity):
            self._cond.notify_all()
            return out
        frames = 0
        while self._items and frames < batch:
            item = self._items.popleft()
            if isinstance(item, VideoFrame):
                frames += 1
                self._frames -= 1
            out.append(item)
        while self._items and isinstance(self._items[0], StreamStatus):
            out.append(self._items.popleft())
        self._cond.notify_all()
        return out

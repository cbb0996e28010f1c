"""The bounded queue in front of each sink thread, with the sink's drop policy.

``block``: ``put`` waits while the queue is full (files: nothing is lost). ``drop_oldest``: ``put`` never
waits for room; the oldest waiting frame result is dropped and counted (network sinks, live viewers).
Status changes and checkpoints are never dropped and keep their place among the frames.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque, Generic, TypeVar

from pipelines.frames import FrameResult
from pipelines.sinks.base import DropPolicy

T = TypeVar("T")


class SinkQueue(Generic[T]):
    """A FIFO of at most ``capacity`` items (see module docstring). Thread-safe."""

    def __init__(self, capacity: int, policy: DropPolicy) -> None:
        self.capacity = max(1, capacity)
        self.policy = policy
        self.dropped = 0
        self._items: Deque[T] = deque()
        self._cond = threading.Condition()

    def put(self, item: T, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Add ``item``; with ``block`` wait for room (giving up once ``cancelled()``)."""
        with self._cond:
            while len(self._items) >= self.capacity:
                if self.policy is DropPolicy.DROP_OLDEST and self._drop_oldest_frame():
                    break
                if cancelled():
                    return
                self._cond.wait(0.1)
            self._items.append(item)
            self._cond.notify_all()

    def put_always(self, item: T) -> None:
        """Add ``item`` even when full (the end marker: a sink must always learn that its input ended)."""
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def _drop_oldest_frame(self) -> bool:
        for i, waiting in enumerate(self._items):
            if isinstance(waiting, FrameResult):
                del self._items[i]
                self.dropped += 1
                return True
        return False

    def get(self) -> T:
        """The oldest item; waits for one."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def qsize(self) -> int:
        with self._cond:
            return len(self._items)

"""``Roster``: every source of one run, in order (its ``Slot``: waiting, open or done), and the lanes open now.

A lane is retired (``release``) once nothing holds its resources any more: its reader ended (the file is closed),
the processing thread finished it, every output thread closed its output. Only what the summary and the view
read of it is kept (``Slot.retire``), and a waiting file may take its place (``room``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque

from pipelines.engine.lane import Lane
from pipelines.engine.waves import Slot

KEPT_PICTURES = 16   # finished files of an archive whose last picture the live view keeps (their counts stay all)


class Roster:
    """The slots of every source and the lanes open now.

    Args:
        cond: the run's lock: the lanes and the waiting files change under it.
        file_lanes: plain files read at once (``waves.file_lanes``).
        on_retire: called (with the lock held) for a lane that let go of everything.
    """

    def __init__(self, cond: threading.Condition, file_lanes: int, on_retire: Callable[[Lane], None]) -> None:
        self.lanes: list[Lane] = []   # the sources open now (replaced, never changed in place: read without a lock)
        self.slots: list[Slot] = []   # every source, in order, waiting, open or done (``waves.py``)
        self.waiting: Deque[Slot] = deque()   # files not opened yet, in order
        self.file_lanes = file_lanes
        self._cond = cond
        self._on_retire = on_retire
        self._slot_of: dict[Lane, Slot] = {}
        self._shown: Deque[Slot] = deque()     # finished files whose live view still holds its last picture

    def enter(self, slot: Slot) -> None:
        """Count ``slot`` among the run's sources (before ``run()``); a waiting file waits for its turn."""
        self.slots.append(slot)
        if slot.waiting is not None:
            self.waiting.append(slot)

    def add(self, slot: Slot, lane: Lane) -> None:
        """``slot``'s source is open on ``lane`` (called before ``run()`` or with the lock held)."""
        slot.lane, slot.waiting = lane, None
        self._slot_of[lane] = slot
        self.lanes = [*self.lanes, lane]

    def room(self) -> bool:
        """Whether another waiting file may be opened (called with the lock held): fewer than ``file_lanes`` plain
        files are being read, and fewer than twice that hold anything (those whose reader has ended may still
        have frames to detect and outputs to close: the next file is read meanwhile, so the detector does not wait
        for it; the files of a wave end together)."""
        files = [lane for lane in self.lanes if lane.in_waves]
        reading = sum(1 for lane in files if not lane.reader_done)
        return reading < self.file_lanes and len(files) < 2 * self.file_lanes

    def close_waiting(self) -> None:
        """Let go of the files that never had their turn (a stopped or failed run)."""
        with self._cond:
            waiting, self.waiting = list(self.waiting), deque()
        for slot in waiting:
            if slot.waiting is not None:
                slot.waiting.close()

    def release(self, lane: Lane) -> None:
        """Retire ``lane`` once nothing holds its resources (see the module's docstring); in any case wake whoever
        waits for room."""
        with self._cond:
            self._cond.notify_all()   # a reader that ended makes room for the next file's reader
            if not lane.reader_done or not lane.finished or lane.outlets_running or lane not in self._slot_of:
                return
            slot = self._slot_of.pop(lane)
            self.lanes = [other for other in self.lanes if other is not lane]
            self._shown.append(slot)   # the live view keeps the last picture of the newest finished files only
            while len(self._shown) > KEPT_PICTURES:
                self._shown.popleft().forget_picture()
            self._on_retire(lane)
            slot.retire()
            self._cond.notify_all()


__all__ = ["KEPT_PICTURES", "Roster"]

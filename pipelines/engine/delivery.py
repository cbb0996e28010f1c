"""``Delivery``: the detector threads' results handed on to the processing thread, each source's in the order of
its batches, whichever worker finishes first, so results never depend on timing.

Batches are numbered (tickets) in the order they are taken; each lane lists the tickets holding its items. A
batch's results of a source wait, parked with its lane, until its earlier batches are delivered, and whoever
delivers those delivers them: no worker waits for another, and a source is never held up by a batch without its
frames. After a failed detection no later batch of the sources that asked is delivered, as with one worker. The
last worker to leave closes the queue (``END``).
"""

from __future__ import annotations

import functools
import queue
import sys
import threading
from typing import Optional, Union

from pipelines.engine.inbox import Item
from pipelines.engine.lane import Lane
from pipelines.engine.outlet import END, End
from pipelines.engine.roster import Roster
from pipelines.processing.schedule import ScheduleState
from tracker.types import Detections

# a frame (with its detections; None: the schedule skipped it) or a status, for processing, with the
# detection schedule's state after that frame (None: no schedule other than every)
Work = tuple[Lane, Item, Optional[Detections], Optional[ScheduleState]]


class Delivery:
    """The ordered hand-over from ``workers`` detector threads to the processing thread.

    Args:
        cond: the run's lock, notified once a source's batches are delivered (it may take more).
        roster: the lanes open now.
        size: how many results the processing thread's queue holds.
        workers: the detector threads that deliver.
    """

    def __init__(self, cond: threading.Condition, roster: Roster, size: int, workers: int) -> None:
        self._cond, self._roster = cond, roster
        self._queue: "queue.Queue[Union[Work, End]]" = queue.Queue(maxsize=size)
        self._order = threading.Condition()  # detector workers queue each source's results in ticket order
        self._gone = threading.Event()  # the processing thread is gone: nobody takes from its queue
        self._failed_ticket = sys.maxsize  # first batch whose detection failed
        self._running = workers

    def deliver(self, ticket: int, out: list[Work], lanes: list[Lane]) -> None:
        """Hand one batch's results of ``lanes`` on to the processing thread, each source's in the order of its
        batches: a source's results wait (parked with it) until its earlier batches are delivered, and whoever
        delivers those delivers them. No worker waits here, and one source's results are never held up by a
        batch that has none of its frames. A source's batches after one whose detection failed are not queued,
        as with one worker.
        """
        with self._order:
            for lane in lanes:
                lane.parked[ticket] = [entry for entry in out if entry[0] is lane]
            for lane in lanes:
                while lane.tickets and lane.tickets[0] in lane.parked:
                    entries = lane.parked.pop(lane.tickets[0])
                    try:
                        if lane.tickets[0] < self._failed_ticket:
                            for entry in entries:
                                self._put(entry)
                    finally:
                        lane.tickets.popleft()
            self._order.notify_all()  # a failed worker waits for the batches before its own
        with self._cond:
            self._cond.notify_all()  # a source that had as many batches out as there are workers may go on

    def fail(self, ticket: int) -> None:
        """The detection of batch ``ticket`` failed: no later batch of its sources is delivered."""
        with self._order:
            self._failed_ticket = min(self._failed_ticket, ticket)

    def wait_through(self, ticket: int) -> None:
        """Wait until every batch up to ``ticket`` is delivered (a failed worker, before the run aborts)."""
        with self._order:
            self._order.wait_for(functools.partial(self._delivered_through, ticket))

    def leave(self) -> None:
        """A detector thread ends; the last one closes the processing thread's queue."""
        with self._order:
            self._running -= 1
            last = self._running == 0
        if last:
            self._put(END)

    def get(self) -> Union[Work, End]:
        """The next result for the processing thread (``END``: no more come); waits for one."""
        return self._queue.get()

    def consumer_gone(self) -> None:
        """The processing thread is gone: whatever is still delivered is let go."""
        self._gone.set()

    def _delivered_through(self, ticket: int) -> bool:
        """Whether every batch up to ``ticket`` has been delivered (called with ``_order`` held)."""
        return all(not lane.tickets or lane.tickets[0] > ticket for lane in self._roster.lanes)

    def _put(self, item: Union[Work, End]) -> None:
        """Blocking put that gives up only once the processing thread is gone: until then it takes every item,
        also after a failure (what was detected before it is still written)."""
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._gone.is_set():
                    return


__all__ = ["Delivery", "Work"]

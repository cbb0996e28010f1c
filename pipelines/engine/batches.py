"""``Batches``: which items of which sources the detector takes next, each batch numbered (its ticket).

Sources take turns (the order rotates, so none is starved), and cameras and files take turns. A file's batch is
always of one file and full (or the file's tail), so two runs over one file give identical results. Each source's
detection schedule decides, frame by frame and in order, whether a frame is detected: a skipped frame takes no
place in a call. A camera's frame that needs no detection leaves the batch to cameras that do; a file with a
schedule other than ``every`` is taken one frame per call, and its next frame waits until its last detected frame
has been processed and its plan came back (a camera's frames meanwhile are predicted, not dropped).
"""

from __future__ import annotations

from typing import Callable, Optional

from pipelines.engine.control import RunControl
from pipelines.engine.inbox import Item
from pipelines.engine.lane import Lane
from pipelines.engine.roster import Roster
from pipelines.frames import VideoFrame
from pipelines.processing.motion import MotionMask
from pipelines.processing.schedule import ScheduleState

Taken = tuple[Lane, Item, bool, Optional[ScheduleState]]  # an item taken from an inbox: detect it or not


def lanes_of(work: list[Taken]) -> list[Lane]:
    """The sources of a batch, each once, in the order of their first item."""
    return list(dict.fromkeys(lane for lane, *_ in work))


class Batches:
    """Takes the detector's next batch from the open sources' inboxes.

    Args:
        control: the run's lock (the inboxes and schedules change under it) and abort flag.
        roster: the lanes open now.
        more_to_come: whether a waiting file may still be opened (called with the lock held).
        workers: the detector's copies: a source has at most this many batches out.
        batch: frames per call for files; ``live_batch``: frames needing detection per call for cameras.
    """

    def __init__(self, control: RunControl, roster: Roster, more_to_come: Callable[[], bool], *, workers: int,
                 batch: int, live_batch: int) -> None:
        self._control, self._roster, self._more_to_come = control, roster, more_to_come
        self._workers, self._batch, self._live_batch = workers, batch, live_batch
        self._tickets = 0

    def next(self) -> Optional[tuple[int, list[Taken]]]:
        """Wait for the next batch of work and its ticket (batches are numbered in the order taken);
        None when every inbox is finished."""
        with self._control.cond:
            while True:
                lanes = self._roster.lanes
                if all(lane.inbox.finished() for lane in lanes) and not self._more_to_come():
                    return None
                turn, n = self._tickets, len(lanes)
                order = [lanes[(turn + k) % n] for k in range(n)]  # rotate: no source is starved
                live = [lane for lane in order if lane.inbox.latest and self._ready(lane)]
                files = [lane for lane in order if not lane.inbox.latest and self._ready(lane)]
                work: list[Taken] = []
                if live and (not files or turn % 2 == 0):  # cameras and files take turns
                    room = self._live_batch  # frames that need detection: skipped ones take no place
                    for lane in live:
                        if room <= 0:
                            break
                        taken = self._take(lane, 1)
                        room -= sum(1 for entry in taken if entry[2])
                        work.extend(taken)
                elif files:
                    every = files[0].schedule.schedule.every_frame
                    work = self._take(files[0], self._batch if every else 1)
                if work:
                    self._tickets += 1
                    # not under the delivery's order lock: a worker holds it while it waits for room in the
                    # processing thread's queue, and that thread may need the run's lock (held here) to make that
                    # room. An append to a deque is atomic, and no result of a ticket is delivered before it is
                    # handed out
                    for lane in lanes_of(work):
                        lane.tickets.append(turn)
                    return turn, work
                self._control.cond.wait(0.1)

    def _ready(self, lane: Lane) -> bool:
        """Whether the detector can take from ``lane`` now (called with the run's lock held). Not while ``workers``
        of its batches are out (in a call, or done and waiting for an earlier one): what a source holds in
        batches stays bounded, as when each worker waited with its batch."""
        if len(lane.tickets) >= self._workers:
            return False
        schedule = lane.schedule
        if schedule.schedule.every_frame:
            return lane.inbox.ready(self._batch)
        # a file's next decision waits for the plan (output never depends on timing; after a failure nothing
        # comes back: drain); a camera's frames meanwhile are predicted rather than dropped
        if schedule.waiting and not lane.inbox.latest and not self._control.aborted.is_set():
            return False
        return lane.inbox.ready(1)

    def _take(self, lane: Lane, wanted: int) -> list[Taken]:
        """Items of ``lane`` in order, each decided by its schedule, up to ``wanted`` frames to detect."""
        schedule = lane.schedule
        if schedule.schedule.every_frame:
            return [(lane, item, isinstance(item, VideoFrame), None) for item in lane.inbox.take(wanted)]
        out: list[Taken] = []
        while wanted > 0 and (not schedule.waiting or lane.inbox.latest or self._control.aborted.is_set()):
            items = lane.inbox.take(1)
            if not items:
                break
            for item in items:
                if isinstance(item, VideoFrame):
                    detect = schedule.decide(item.pts, _motion_of(lane, item.index))
                    wanted -= int(detect)
                    out.append((lane, item, detect, schedule.state))
                else:
                    out.append((lane, item, False, None))
        return out


def _motion_of(lane: Lane, index: int) -> Optional[MotionMask]:
    """The reader's motion measure of frame ``index``; measures of frames dropped before are forgotten."""
    if lane.meter is None:
        return None
    for old in [k for k in lane.motion if k < index]:
        del lane.motion[old]
    return lane.motion.pop(index, None)


__all__ = ["Batches", "Taken", "lanes_of"]

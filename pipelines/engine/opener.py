"""``Opener``: the thread (``trackstream-opener``) that opens the waiting files of an archive in their turn
(``waves.py``): whenever there is room (``Roster.room``), the next one, in order, with its processor (resumed
from its snapshot) and outputs, and starts its reader; until none waits or the run stops.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping, Optional

from pipelines.engine.control import RunControl
from pipelines.engine.lane import Lane
from pipelines.engine.launch import warn_skipping
from pipelines.engine.outputs import Outputs
from pipelines.engine.roster import Roster
from pipelines.engine.snapshots import Snapshots
from pipelines.engine.waves import Slot
from pipelines.errors import SourceError
from pipelines.processing.processor import StreamProcessor
from pipelines.sources.base import Source

AddLane = Callable[[Slot, Source, StreamProcessor, Optional[Mapping[str, Any]]], Lane]


class Opener:
    """Opens the waiting files in turn.

    Args:
        control: the run's lock, stop flag and threads.
        roster: the waiting files and the room for them.
        snapshots: a file's saved state, loaded into its processor at its turn.
        outputs: opens the file's sinks.
        add_lane: opens a slot's lane on its opened source (with the lock held).
        start_reader: starts the reader thread of a lane.
        skippable: the URLs of the files a folder or glob found: one that cannot be opened at its turn is
            skipped (one warning line, then ``on_skip(url)``); any other stops the run.
    """

    def __init__(self, control: RunControl, roster: Roster, snapshots: Snapshots, outputs: Outputs,
                 add_lane: AddLane, start_reader: Callable[[Lane], None], *, skippable: Collection[str] = (),
                 on_skip: Callable[[str], None] = lambda url: None) -> None:
        self._control, self._roster, self._snapshots, self._outputs = control, roster, snapshots, outputs
        self._add_lane, self._start_reader = add_lane, start_reader
        self._skippable, self._on_skip = frozenset(skippable), on_skip
        self._opening = 0   # waiting files being opened now

    def more_to_come(self) -> bool:
        """Whether a waiting file may still be opened (called with the run's lock held)."""
        return self._opening > 0 or (bool(self._roster.waiting) and not self._control.stopped.is_set())

    def run(self) -> None:
        """Opener thread: whenever there is room (``Roster.room``), open the next waiting file (in order), with its
        outputs, and start its reader; until none waits or the run stops."""
        cond, roster, stopped = self._control.cond, self._roster, self._control.stopped
        while True:
            with cond:
                while roster.waiting and not stopped.is_set() and not roster.room():
                    cond.wait(0.1)
                if not roster.waiting or stopped.is_set():
                    return
                slot = roster.waiting.popleft()
                self._opening += 1
            try:
                self._open_turn(slot)
            finally:
                with cond:
                    self._opening -= 1
                    cond.notify_all()

    def _open_turn(self, slot: Slot) -> None:
        """Open a waiting file's source, processor and outputs and start its reader. A file that cannot be opened
        now (removed since the start) is skipped when a folder or glob found it (``skippable``), else it stops the
        run, as any named file's error does."""
        waiting = slot.waiting
        assert waiting is not None
        try:
            source = waiting.open()
        except SourceError as exc:
            if slot.settings.url not in self._skippable:
                raise
            warn_skipping(slot.settings.url, str(exc))
            waiting.close()
            slot.stats.skip()
            self._on_skip(slot.settings.url)
            return
        try:
            saved = self._snapshots.saved(slot.settings)
            processor = self._snapshots.processor(slot.settings, saved, warn=False)
        except BaseException:
            source.close()
            raise
        with self._control.cond:
            if self._control.stopped.is_set():   # stopped meanwhile: the file is not started
                source.close()
                self._roster.waiting.appendleft(slot)
                return
            slot.stats.start()
            lane = self._add_lane(slot, source, processor, saved)
        try:
            if source.size is not None:
                self._outputs.open(lane, source.size)
        except BaseException:
            lane.inbox.close()
            source.close()
            lane.reader_done = True
            raise
        self._start_reader(lane)


__all__ = ["AddLane", "Opener"]

"""``Outlet``: one sink of one source, with its queue and drop policy, run on its own thread.

An outlet writes the output values of its source in order. When its output fails (``OutputError``: a full
disk, an I/O error) it logs one line and stops alone: its queue is still drained, so the engine never waits
for it, and the snapshots still complete (the failed output keeps the position of its last good snapshot).
When the reader of a pipe or device output goes away (``ReaderGone``: ``--jsonl /dev/stdout | head``), the run
stops as after Ctrl-C (``stop``): frames in flight still reach the other outputs, and this one drains its queue.
Any other error is handed to the engine, which stops the run. The sink is closed whatever happens.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Mapping, Optional, Union

from pipelines.engine.sinkqueue import SinkQueue
from pipelines.engine.state import Checkpoint
from pipelines.errors import OutputError, ReaderGone
from pipelines.frames import FrameResult, Sink, StreamStatus
from pipelines.sinks.base import DropPolicy, Lossy

log = logging.getLogger(__name__)


class End:
    """Marks the end of a queue."""


END = End()
SinkItem = Union[FrameResult, StreamStatus, Checkpoint, End]




@dataclass
class Outlet:
    """One sink of one source: the sink, its queue and its registry name."""

    name: str
    sink: Sink
    queue: "SinkQueue[SinkItem]"
    drops_lose_data: bool = True
    failure: Optional[str] = None   # why the output stopped (it failed alone; the run went on)
    lost: int = 0                   # entries dropped in the queue or never delivered (set when closed)

    @property
    def keeps_files(self) -> bool:
        return self.queue.policy is DropPolicy.BLOCK

    def run(self, fail: Callable[[BaseException], None], stop: Callable[[str], None]) -> None:
        """Write the queue's items until its end; close the sink whatever happens. ``stop(reason)``: the reader of
        this pipe output went away, stop the run gracefully.

        After a failure elsewhere the results already queued are still written (nothing processed is
        lost); after its own failure the outlet only drains its queue so producers never block.
        """
        sink, q = self.sink, self.queue
        # a sink whose frames reach the file later than written (the video's MP4 fragments) acknowledges a
        # checkpoint only once the frames it covers are there: a resume then never skips frames it lacks
        stored: Optional[Callable[[int], bool]] = getattr(sink, "stored", None)
        held: Deque[tuple[Checkpoint, Optional[Mapping[str, object]], int]] = deque()
        try:
            while True:
                item = q.get()
                if isinstance(item, End):
                    break
                if isinstance(item, StreamStatus):
                    sink.status(item)
                elif isinstance(item, Checkpoint):
                    if stored is None:
                        item.ack(self.name, sink.position())
                    else:
                        held.append((item, sink.position(), int(getattr(sink, "frames_total", 0))))
                else:
                    sink.write(item)
                while held and stored is not None and stored(held[0][2]):
                    checkpoint, position, _ = held.popleft()
                    checkpoint.ack(self.name, position)
        except ReaderGone as exc:  # `| head` has what it wanted: not a loss, the run stops as on Ctrl-C
            stop(str(exc))
            self._drain(held)
        except OutputError as exc:  # disk full, I/O error: this output stops alone, the others go on
            self._failed(exc)
            self._drain(held)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller of run()
            fail(exc)
            self._drain(held)
        finally:
            closed = False
            try:
                sink.close()
                closed = True
            except OutputError as exc:
                if self.failure is None:
                    self._failed(exc)
            while held:  # closed: every frame is in the file; else the output keeps its last good position
                checkpoint, position, _ = held.popleft()
                checkpoint.ack(self.name, position if closed and self.failure is None else None)
            lost = sink.undelivered() if isinstance(sink, Lossy) else 0
            self.lost = lost + (q.dropped if self.drops_lose_data else 0)

    def loss(self, source_id: str) -> Optional[str]:
        """What this output lost, as a phrase for the summary; None when it got everything."""
        where = f"{self.name} output of {source_id}"
        if self.failure is not None:
            return f"{where} stopped: {self.failure}"
        if self.lost:
            return f"{where}: {self.lost} entries dropped or not delivered"
        return None

    def _failed(self, exc: OutputError) -> None:
        self.failure = str(exc)
        log.error("%s output stopped: %s (everything else goes on)", self.name, exc)

    def _drain(self, held: "Deque[tuple[Checkpoint, Optional[Mapping[str, object]], int]]") -> None:
        """Consume the queue until its end, so producers never block; snapshots still complete (this output
        keeps the position of its last good snapshot)."""
        while held:
            held.popleft()[0].ack(self.name, None)
        while True:
            item = self.queue.get()
            if isinstance(item, End):
                return
            if isinstance(item, Checkpoint):
                item.ack(self.name, None)

"""The ``viewer`` sink: the newest result of one source, for the web view to show.

The pipeline hands every result to ``write``, which only replaces a slot (one reference, under a lock held
for a few assignments): nothing is drawn, encoded or copied here, so a viewer can never slow a run, and a
run nobody watches pays a slot swap per frame. The web server reads the slot when, and as often as, a
viewer asks for a picture (``pipelines/web/server.py``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Deque, Optional

from pipelines.frames import Event, FrameResult, StatusKind, StreamStatus
from pipelines.processing.overlays import OverlayConfig
from pipelines.settings import SourceSettings
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry

Wake = Callable[[], None]


@dataclass(frozen=True)
class ViewerState:
    """What a viewer sink holds at one instant.

    Attributes:
        seq: number of results written so far (a newer picture has a larger ``seq``); 0 before the first.
        result: the newest result, None before the first.
        kind: the latest stream status (started, gap, resumed, ended), None before the first.
        events: the latest events (oldest first), at most ``keep_events``.
        closed: the source's lane ended (its last picture stays).
    """

    seq: int
    result: Optional[FrameResult]
    kind: Optional[StatusKind]
    events: tuple[Event, ...]
    closed: bool


class ViewerSink:
    """Keeps the newest ``FrameResult`` of one source and its latest events; ``write`` never waits.

    Args:
        settings: the source's settings (its zones and lines are drawn on the picture).
        overlay: what the picture shows (the ``overlay:`` section).
        keep_events: how many of the latest events to keep.
    """

    def __init__(self, settings: SourceSettings, overlay: OverlayConfig = OverlayConfig(),
                 keep_events: int = 20) -> None:
        self.settings = settings
        self.overlay = overlay
        self._lock = threading.Lock()
        self._seq = 0
        self._result: Optional[FrameResult] = None
        self._kind: Optional[StatusKind] = None
        self._events: Deque[Event] = deque(maxlen=max(1, keep_events))
        self._closed = False
        self._listeners: tuple[Wake, ...] = ()

    @property
    def source_id(self) -> str:
        return self.settings.id

    @property
    def seq(self) -> int:
        """Results written so far (read without the lock: an int is replaced atomically)."""
        return self._seq

    def write(self, result: FrameResult) -> None:
        """Replace the slot with ``result`` and wake whoever waits for a newer picture."""
        with self._lock:
            self._result = result
            self._seq += 1
            if result.events:
                self._events.extend(result.events)
            listeners = self._listeners
        for wake in listeners:
            wake()

    def status(self, status: StreamStatus) -> None:
        """Remember the source's state (live, in a gap, ended), the events of the change and the counts after
        them (the tracks a stream's end ended left their zones: the newest result's counts no longer hold)."""
        with self._lock:
            if status.kind is not StatusKind.CLOSED:
                self._kind = status.kind
            if status.counts is not None and self._result is not None:
                self._result = replace(self._result, counts=status.counts)
            self._events.extend(status.events)
            listeners = self._listeners
        for wake in listeners:
            wake()

    def position(self) -> None:
        """Nothing to continue: a view shows the present."""
        return None

    def close(self) -> None:
        """The lane ended; the last picture and events stay readable."""
        with self._lock:
            self._closed = True

    def state(self) -> ViewerState:
        """A consistent copy of what the sink holds."""
        with self._lock:
            return ViewerState(self._seq, self._result, self._kind, tuple(self._events), self._closed)

    def listen(self, wake: Wake) -> Callable[[], None]:
        """Call ``wake()`` (from the pipeline's thread; it must not block) after each write or status,
        until the returned function is called. Only viewers listen: without them a write wakes nobody."""
        with self._lock:
            self._listeners = (*self._listeners, wake)

        def unlisten() -> None:
            with self._lock:
                self._listeners = tuple(w for w in self._listeners if w is not wake)

        return unlisten


def _build(ctx: SinkContext) -> ViewerSink:
    return ViewerSink(ctx.settings, ctx.config.overlay, ctx.config.http.events)


ENTRY = SinkEntry("viewer", DropPolicy.DROP_OLDEST, lambda config: config.http.enabled, _build,
                  drops_lose_data=False)

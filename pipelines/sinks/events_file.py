"""Events file sink (``--events FILE.jsonl``): every event of a source as one JSON line, in order.

Each line is one event document exactly as the processor made it: the same JSON and schema
(``pipelines/schemas/event.schema.json``) as the Redis events stream, without the Redis-only
``publish_time``. Lines are flushed as written; a resumed run (``--state``) continues the file where the
saved state left it, so an interrupted and resumed run writes each event once.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

from pipelines.frames import Event, FrameResult, StreamStatus
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry
from pipelines.sinks.jsonl import JsonlSink, encode_record


class EventsFileSink:
    """Appends every event of one source to ``path`` as JSON Lines (truncated at start unless resumed).

    Raises:
        OutputError: at construction, when the file cannot be created or written.
    """

    def __init__(self, path: "str | os.PathLike[str]", resume: Optional[Mapping[str, object]] = None) -> None:
        self._lines = JsonlSink(path, resume=resume, what="events output")
        self.path = self._lines.path
        self.events_written = 0

    def write(self, result: FrameResult) -> None:
        self._write(result.events)

    def status(self, status: StreamStatus) -> None:
        self._write(status.events)

    def _write(self, events: "tuple[Event, ...]") -> None:
        for event in events:
            self._lines.write_line(encode_record(dict(event)))
        self.events_written += len(events)

    def position(self) -> Optional[Mapping[str, object]]:
        return self._lines.position()

    def close(self) -> None:
        self._lines.close()


def _build(ctx: SinkContext) -> EventsFileSink:
    assert ctx.config.output.events is not None
    return EventsFileSink(ctx.path(ctx.config.output.events), resume=ctx.resume)


ENTRY = SinkEntry("events", DropPolicy.BLOCK, lambda config: bool(config.output.events), _build)

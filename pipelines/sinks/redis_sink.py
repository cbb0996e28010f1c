"""The Redis Streams sink: one frames stream and one events stream per source.

Each stream entry has one field, ``data``, holding a JSON document (schema version 1; see
``docs/redis.md`` and ``pipelines/schemas/``):

- frames stream (``trackstream:{source}:frames``): ``records.frame_record(result, with_times=True)``
  plus ``publish_time``; one entry per processed frame;
- events stream (``trackstream:{source}:events``): the lifecycle, zone, line and stream events the source's
  processor produced (``FrameResult.events``, ``StreamStatus.events``) plus ``publish_time``.

``write``/``status`` only build the documents and queue them; a background thread does all network
I/O (``pipelines/sinks/redis_publisher.py``), so a slow or dead Redis never blocks the pipeline.

With ``frame_ids`` (the run keeps state: ``--state``, and every Ray worker) entry ids come from the frame:
``<ms>-<seq>`` where ``ms`` is the frame's time on the stream's persistent clock (``FrameResult.stream_time``:
the stream's start plus the frame's timestamp, saved with the snapshot). A worker that restarts from its
snapshot and processes frames again produces the same ids, and Redis refuses an id it already holds, so a
replayed frame is never stored twice. Status events take the wall clock (never below the last id) and are
never dropped as replays.
"""

from __future__ import annotations

import logging
import time
from typing import Optional, Sequence

from pipelines.errors import UserError
from pipelines.frames import Event, FrameResult, StreamStatus
from pipelines.sinks.records import frame_record
from pipelines.sinks.redis_conn import RedisConfig, RedisRefused, connect, describe, ping, stream_name
from pipelines.sinks.publisher import PublisherCounters
from pipelines.sinks.base import DropPolicy, SinkEntry
from pipelines.sinks.redis_publisher import StreamPublisher

log = logging.getLogger("trackstream.redis")


def check_reachable(config: RedisConfig) -> None:
    """Fail early (UserError, one line, password masked) when Redis refuses the credentials, and when
    ``on_unreachable: fail`` and Redis cannot be reached (``wait``: an unreachable Redis is waited for)."""
    if not config.url:
        return
    client = connect(config.url, config.connect_timeout, socket_timeout=max(5.0, config.connect_timeout))
    try:
        ping(client, config.url)
    except RedisRefused:
        raise  # a wrong password is no outage: one line now, whatever on_unreachable says
    except UserError:
        if config.on_unreachable == "fail":
            raise
    finally:
        client.close()


class RedisSink(PublisherCounters):
    """Publish one source's frames and events to Redis Streams.

    Args:
        config: the ``redis:`` section; ``config.url`` must be set.
        source_id: the source's id (``config.source_id`` overrides it in stream names and documents; in a
            pipeline the source's id already is ``redis.source_id``, so records match the other outputs).

    Raises:
        UserError: ``on_unreachable: fail`` and Redis cannot be reached (or refuses the credentials).
    """

    _publisher: StreamPublisher

    def __init__(self, config: RedisConfig, source_id: str, frame_ids: bool = False) -> None:
        if not config.url:
            raise UserError("the Redis sink needs a URL (--redis URL or redis.url in the config)")
        url = config.url
        self.source_id = config.source_id or source_id
        self.frames_stream = stream_name(config.frames_stream, self.source_id, "redis.frames_stream")
        self.events_stream = stream_name(config.events_stream, self.source_id, "redis.events_stream")
        self._cfg = config

        def factory() -> object:
            return connect(url, config.connect_timeout, socket_timeout=max(5.0, config.connect_timeout))

        check_reachable(config)
        self._publisher = StreamPublisher(factory, url, config.buffer_max_entries)
        self._frame_ids = frame_ids
        self._last: dict[str, tuple[int, int]] = {}  # stream -> last id given (frame_ids)
        self._closed = False
        log.info("publishing %s to Redis at %s (%s, %s)", self.source_id, describe(url),
                 self.frames_stream if config.publish_frames else "no frames", self.events_stream)

    def write(self, result: FrameResult) -> None:
        """Queue the frame's record and the events it causes (never waits for Redis)."""
        ms = None
        if self._frame_ids and result.stream_time is not None:
            ms = int(round(result.stream_time * 1000))
        if self._cfg.publish_frames:
            rec = frame_record(result, with_times=True, numpy_values=True)  # orjson writes the arrays
            rec["source_id"] = self.source_id
            self._publisher.put(self.frames_stream, rec, self._cfg.frames_maxlen, self._id(self.frames_stream, ms))
        self._put_events(result.events, ms)

    def status(self, status: StreamStatus) -> None:
        """Queue the events of a stream status change."""
        self._put_events(status.events, int(time.time() * 1000) if self._frame_ids else None, replayable=False)

    def _id(self, stream: str, ms: Optional[int]) -> Optional[str]:
        """The next entry id of ``stream`` at ``ms`` (None: the publisher chooses)."""
        if ms is None:
            return None
        last = self._last.get(stream, (0, 0))
        nxt = (ms, 0) if ms > last[0] else (last[0], last[1] + 1)
        self._last[stream] = nxt
        return f"{nxt[0]}-{nxt[1]}"

    def position(self) -> None:
        """Entries are not continued from a saved state (a resumed frame is published again)."""
        return None

    def close(self) -> None:
        """Deliver what is buffered (up to ``flush_timeout`` s), stop."""
        if self._closed:
            return
        self._closed = True
        self._publisher.close(self._cfg.flush_timeout)  # it says in one line what could not be delivered
        if self._publisher.duplicates:
            log.info("%s: %d entries were already in Redis (frames processed again after a restart from the "
                     "saved state); not stored twice", self.source_id, self._publisher.duplicates)

    def _put_events(self, events: "Sequence[Event]", ms: Optional[int] = None, replayable: bool = True) -> None:
        for event in events:
            doc = dict(event)
            if doc.get("source_id") != self.source_id:
                doc["source_id"] = self.source_id
            self._publisher.put(self.events_stream, doc, self._cfg.events_maxlen, self._id(self.events_stream, ms),
                                replayable)


ENTRY = SinkEntry("redis", DropPolicy.DROP_OLDEST, lambda config: bool(config.redis.url),
                  lambda ctx: RedisSink(ctx.config.redis, ctx.settings.id, frame_ids=bool(ctx.config.state.dir)))

"""The Redis Streams sink: one frames stream and one events stream per source.

Each stream entry has one field, ``data``, holding a JSON document (schema version 1; see
``docs/redis.md`` and ``pipelines/schemas/``):

- frames stream (``trackstream:{source}:frames``): ``records.frame_record(result, with_times=True)``
  plus ``publish_time``; one entry per processed frame;
- events stream (``trackstream:{source}:events``): the lifecycle, zone, line and stream events the source's
  processor produced (``FrameResult.events``, ``StreamStatus.events``) plus ``publish_time``;
- counts stream (``trackstream:{source}:counts``, a source with zones or lines): the source's counts
  (``counts_record``: occupancy, entries, exits, dwell, line totals, the warnings standing) each time they
  change, so its last entry is the counts now (as MQTT's retained topics), the last one after the exits of the
  tracks that the end of the stream ended.

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
from typing import Any, Optional, Sequence

from pipelines.errors import UserError
from pipelines.frames import SCHEMA_VERSION, Counts, Event, FrameResult, StreamStatus
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
        self.counts_stream = stream_name(config.counts_stream, self.source_id, "redis.counts_stream")
        self._cfg = config
        self._counts: Optional[Any] = None   # what the last counts entry said (``_counts_key``)

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
        if result.counts is not None:
            frame = result.frame
            self._put_counts(result.counts, frame.index, frame.pts, frame.capture_time, ms)

    def status(self, status: StreamStatus) -> None:
        """Queue the events of a stream status change, and the counts they changed (the exits of the tracks
        that the end of the stream ended)."""
        ms = int(time.time() * 1000) if self._frame_ids else None
        self._put_events(status.events, ms, replayable=False)
        if status.counts is not None and status.events:
            last = status.events[-1]
            self._put_counts(status.counts, last.get("frame_index"), last.get("pts"), float(last.get("time") or 0),
                             ms, replayable=False)

    def _put_counts(self, counts: Counts, frame_index: Optional[int], pts: Optional[float], when: float,
                    ms: Optional[int], replayable: bool = True) -> None:
        """Queue a counts entry when the counts differ from the last entry's."""
        key = _counts_key(counts)
        if key == self._counts:
            return
        self._counts = key
        doc = counts_record(counts, self.source_id, frame_index, pts, when)
        self._publisher.put(self.counts_stream, doc, self._cfg.counts_maxlen, self._id(self.counts_stream, ms),
                            replayable)

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


def counts_record(counts: Counts, source_id: str, frame_index: Optional[int], pts: Optional[float],
                  when: float) -> dict[str, Any]:
    """The counts stream's document (``pipelines/schemas/redis_counts.schema.json``): ``Counts.doc()`` with
    the source and the frame that changed the counts (``time``: its capture time, Unix seconds)."""
    return {"schema_version": SCHEMA_VERSION, "source_id": source_id, "frame_index": frame_index,
            "pts": None if pts is None else round(float(pts), 6), "time": round(float(when), 6), **counts.doc()}


def _counts_key(counts: Counts) -> Any:
    """What decides whether the counts changed: everything but the seconds that grow or count down every
    frame (a dwell's tracks inside, the warnings standing); a track in or out, a warning made or withdrawn is a
    change."""
    doc = counts.doc()
    doc["predictions"] = [(p.track_id, p.line, p.direction, p.zone) for p in counts.predictions]
    return _without_seconds(doc)


def _without_seconds(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: [item["id"] for item in v] if k == "inside" else _without_seconds(v) for k, v in value.items()}
    return value


ENTRY = SinkEntry("redis", DropPolicy.DROP_OLDEST, lambda config: bool(config.redis.url),
                  lambda ctx: RedisSink(ctx.config.redis, ctx.settings.id, frame_ids=bool(ctx.config.state.dir)))

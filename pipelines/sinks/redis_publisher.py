"""Redis Streams delivery: the Redis part of a ``BufferedPublisher`` (``pipelines/sinks/publisher.py``).

``StreamPublisher.put`` serialises a document and queues it without waiting for the network; the base
class's background thread sends the buffer in order, survives outages (buffer, drop the oldest beyond
``buffer_max_entries``, retry with backoff) and reports what could not be delivered at close. This
module adds what is Redis-specific: pipelined ``XADD`` batches (``transaction=False``) and entry ids.

Entry ids are chosen here (``<unix ms>-<seq>``, strictly increasing across all streams of one
publisher) rather than by the server, so a batch that is re-sent after a connection broke mid-reply
cannot be stored twice: the server rejects an id that is not above the stream's last one, and for a
re-sent entry that rejection means "already stored". A subscriber reading after an id it has seen
also skips re-sent entries. If another writer has put larger ids into the stream, the entry is added
with a server-chosen id instead (logged once).

An entry may also come with its own id (``put(..., entry_id=...)``: the Redis sink derives it from the
frame when the run keeps state). Then a rejected id means "this frame is already stored" (a worker
restarted from its snapshot replays frames it had published): it is counted as a duplicate, not stored
twice. An entry that is not a replay (``replayable=False``: a stream status) is added with a server-chosen
id instead when its own is too small.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.sinks.publisher import BufferedPublisher, PublisherStats
from pipelines.sinks.redis_conn import describe, error_text

try:  # orjson writes these float-heavy documents ~10x faster than the standard library
    import orjson

    def _dumps(doc: dict[str, Any]) -> bytes:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - orjson is a declared dependency; stay usable without it
    def _dumps(doc: dict[str, Any]) -> bytes:
        return json.dumps(doc, separators=(",", ":"), default=lambda v: v.tolist()).encode()

__all__ = ["PublisherStats", "StreamPublisher"]

log = logging.getLogger("trackstream.redis")

_ID_TOO_SMALL = "equal or smaller than the target stream top item"


@dataclass
class _Entry:
    """A queued document: its JSON without the closing brace (bytes are cheap to keep: the garbage
    collector does not scan them), completed with ``publish_time`` when first sent."""

    stream: str
    maxlen: int | None
    head: bytes
    entry_id: str | None = None
    payload: bytes | None = None
    sent_before: bool = False
    fixed_id: bool = False
    replayable: bool = True


class StreamPublisher(BufferedPublisher[_Entry]):
    """Deliver documents to Redis streams from a background thread.

    Args:
        client_factory: returns a fresh ``redis.Redis`` client (called again after each failure).
        url: the server URL, used (masked) in log lines only.
        buffer_max_entries: most entries kept while undelivered.
        batch_max: most entries per pipelined round trip.
        field_name: the stream entry field holding the JSON document.
    """

    def __init__(self, client_factory: Callable[[], Any], url: str, buffer_max_entries: int,
                 batch_max: int = 500, field_name: str = "data") -> None:
        super().__init__(f"Redis at {describe(url)}", buffer_max_entries, batch_max=batch_max, log=log,
                         thread_name="redis-publisher")
        self._factory = client_factory
        self._url = url
        self._field = field_name
        self._client: Any = None
        self._rejected = 0
        self._last_id = (0, -1)
        self._warned_foreign_ids = False
        self.duplicates = 0  # entries with their own id that the stream already held
        self._start()

    def put(self, stream: str, doc: dict[str, Any], maxlen: int | None, entry_id: str | None = None,
            replayable: bool = True) -> None:
        """Queue ``doc`` for ``stream``; never blocks on the network. Drops the oldest entry when full.

        ``doc`` is serialised now (it may be changed by the caller afterwards); ``publish_time`` (Unix s)
        is added when the entry is first sent. ``entry_id`` (``<ms>-<seq>``): store it under this id, or
        not at all when the stream already holds it or a later one (unless not ``replayable``: then under a
        server-chosen id).
        """
        self.enqueue(_Entry(stream, maxlen, _dumps(doc)[:-1], entry_id=entry_id, fixed_id=entry_id is not None,
                            replayable=replayable))

    # -- BufferedPublisher hooks (background thread) ------------------------------------------------------
    def _connect(self) -> None:
        if self._client is None:
            self._client = self._factory()
        self._client.ping()

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.connection_pool.disconnect()

    def _destination(self, entry: _Entry) -> str:
        return entry.stream

    def _error_text(self, exc: BaseException) -> str:
        return error_text(exc, self._url)

    def _send(self, batch: list[_Entry]) -> list[_Entry]:
        resent = [e.sent_before for e in batch]
        for entry in batch:
            self._prepare(entry)
            entry.sent_before = True     # if this send breaks, the server may have stored it anyway
        results = self._xadd(batch, use_own_ids=True)
        retry = [e for e, r, again in zip(batch, results, resent)
                 if isinstance(r, Exception) and _ID_TOO_SMALL in str(r) and not again
                 and not (e.fixed_id and e.replayable)]
        if retry:
            if any(not e.fixed_id for e in retry):
                self._warn_foreign_ids()
            by_entry = dict(zip(map(id, retry), self._xadd(retry, use_own_ids=False)))
            results = [by_entry.get(id(e), r) for e, r in zip(batch, results)]
        return self._refused(batch, results, resent)

    # -- Redis specifics ----------------------------------------------------------------------------------
    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last_id[0]}-{self._last_id[1]}"

    def _prepare(self, entry: _Entry) -> None:
        if entry.payload is None:
            sep = b"" if entry.head == b"{" else b","
            stamp = repr(round(time.time(), 6)).encode()
            entry.payload = entry.head + sep + b'"publish_time":' + stamp + b"}"
            if not entry.fixed_id:
                entry.entry_id = self._next_id()

    def _xadd(self, entries: list[_Entry], use_own_ids: bool) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for e in entries:
            pipe.xadd(e.stream, {self._field: e.payload}, id=e.entry_id if use_own_ids else "*",
                      maxlen=e.maxlen, approximate=True)
        return list(pipe.execute(raise_on_error=False))

    def _refused(self, batch: list[_Entry], results: list[Any], resent: list[bool]) -> list[_Entry]:
        """The entries Redis refused (logged, the first five and every thousandth)."""
        refused = []
        for entry, res, again in zip(batch, results, resent):
            if not isinstance(res, Exception):
                self._bump_id(res)
            elif entry.fixed_id and entry.replayable and _ID_TOO_SMALL in str(res):
                if not again:
                    self.duplicates += 1   # a replayed frame: stored by the run before a restart
            elif not (again and _ID_TOO_SMALL in str(res)):   # else: stored by the try whose reply was lost
                refused.append(entry)
                self._rejected += 1
                if self._rejected <= 5 or self._rejected % 1000 == 0:
                    log.warning("Redis rejected an entry for %s: %s (dropped; %d so far)", entry.stream,
                                error_text(res, self._url), self._rejected)
        return refused

    def _bump_id(self, entry_id: Any) -> None:
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        ms, _, seq = text.partition("-")
        if ms.isdigit() and seq.isdigit():
            self._last_id = max(self._last_id, (int(ms), int(seq)))

    def _warn_foreign_ids(self) -> None:
        if not self._warned_foreign_ids:
            self._warned_foreign_ids = True
            log.warning("%s: a stream already holds newer entry ids (another writer, or the clock went "
                        "back); adding entries with server-chosen ids", self.name)

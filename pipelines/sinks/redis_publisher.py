"""Background delivery of JSON documents to Redis Streams: never blocks the caller, survives outages.

``StreamPublisher.put`` appends to a bounded in-memory buffer and returns at once. One background
thread sends the buffer in order, in pipelined batches (``transaction=False``); while Redis is
unreachable it keeps the entries and retries with backoff; beyond ``buffer_max_entries`` the oldest
are dropped and counted.

Entry ids are chosen here (``<unix ms>-<seq>``, strictly increasing across all streams of one
publisher) rather than by the server, so a batch that is re-sent after a connection broke mid-reply
cannot be stored twice: the server rejects an id that is not above the stream's last one, and for a
re-sent entry that rejection means "already stored". A subscriber reading after an id it has seen
also skips re-sent entries. If another writer has put larger ids into the stream, the entry is added
with a server-chosen id instead (logged once).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pipelines.sinks.redis_conn import describe, error_text

try:  # orjson writes these float-heavy documents ~10x faster than the standard library
    import orjson

    def _dumps(doc: dict[str, Any]) -> bytes:
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - orjson is a declared dependency; stay usable without it
    def _dumps(doc: dict[str, Any]) -> bytes:
        return json.dumps(doc, separators=(",", ":"), default=lambda v: v.tolist()).encode()

log = logging.getLogger("trackstream.redis")

_ID_TOO_SMALL = "equal or smaller than the target stream top item"


@dataclass
class _Entry:
    """A queued document: its JSON without the closing brace (bytes are cheap to keep: the garbage
    collector does not scan them), completed with ``publish_time`` when first sent."""

    stream: str
    maxlen: Optional[int]
    head: bytes
    entry_id: Optional[str] = None
    payload: Optional[bytes] = None
    sent_before: bool = False


@dataclass(frozen=True)
class PublisherStats:
    """Counters of one publisher: entries ``published``, ``dropped`` (buffer full, undeliverable at close
    or rejected by the server), ``buffered`` now, ``connected`` now, ``outages`` seen so far."""

    published: int
    dropped: int
    buffered: int
    connected: bool
    outages: int


class StreamPublisher:
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
        self._factory = client_factory
        self._url = url
        self._max = buffer_max_entries
        self._batch_max = max(1, min(batch_max, buffer_max_entries))
        self._field = field_name
        self._buf: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._client: Any = None
        self._connected = False
        self._published = 0
        self._dropped = 0
        self._outages = 0
        self._rejected = 0
        self._drops_this_outage = 0
        self._down_since: Optional[float] = None
        self._next_down_log = 0.0
        self._last_id = (0, -1)
        self._warned_foreign_ids = False
        self._thread = threading.Thread(target=self._run, name="redis-publisher", daemon=True)
        self._thread.start()

    # -- caller side ------------------------------------------------------------------------------------
    def put(self, stream: str, doc: dict[str, Any], maxlen: Optional[int]) -> None:
        """Queue ``doc`` for ``stream``; never blocks on the network. Drops the oldest entry when full.

        ``doc`` is serialised now (it may be changed by the caller afterwards); ``publish_time`` (Unix s)
        is added when the entry is first sent.
        """
        head = _dumps(doc)[:-1]
        with self._cond:
            if self._closing:
                raise RuntimeError("publisher is closed")
            if len(self._buf) >= self._max:
                self._drop_oldest(len(self._buf) - self._max + 1)
            self._buf.append(_Entry(stream, maxlen, head))
            if self._connected or len(self._buf) == 1:   # while Redis is down the thread is backing off
                self._cond.notify()

    def stats(self) -> PublisherStats:
        with self._cond:
            return PublisherStats(self._published, self._dropped, len(self._buf), self._connected,
                                  self._outages)

    def close(self, timeout: float) -> PublisherStats:
        """Deliver what is buffered (trying for at most ``timeout`` s), then stop the thread."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + 10.0)
        with self._cond:
            left = len(self._buf)
            if left:
                self._dropped += left
                self._buf.clear()
                log.warning("Redis at %s: %d entries could not be delivered before closing (dropped)",
                            describe(self._url), left)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
                pass
        return self.stats()

    def _drop_oldest(self, n: int) -> None:
        for _ in range(n):
            self._buf.popleft()
        self._dropped += n
        if self._drops_this_outage == 0:
            log.warning("Redis buffer full (%d entries): dropping the oldest entries (counted in stats)",
                        self._max)
        self._drops_this_outage += n

    # -- background thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._buf and not self._closing:
                    self._cond.wait()
                if not self._buf or time.monotonic() > self._deadline:
                    return
            if not self._connected and not self._connect():
                self._back_off(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            self._send_batch()

    def _back_off(self, seconds: float) -> None:
        """Wait ``seconds`` (not past the close deadline); new entries do not cut it short, close() does."""
        with self._cond:
            until = time.monotonic() + seconds
            closing = self._closing
            while self._closing == closing:
                remaining = min(until, self._deadline) - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def _connect(self) -> bool:
        try:
            if self._client is None:
                self._client = self._factory()
            self._client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure to reach Redis means "buffer and retry"
            self._mark_down(exc)
            return False
        with self._cond:
            self._connected = True
            if self._down_since is not None:
                log.warning("Redis at %s reachable again after %.1f s; delivering %d buffered entries "
                            "(%d dropped during the outage)", describe(self._url),
                            time.monotonic() - self._down_since, len(self._buf), self._drops_this_outage)
            self._down_since = None
            self._drops_this_outage = 0
        return True

    def _mark_down(self, exc: BaseException) -> None:
        with self._cond:
            was_up = self._connected or self._down_since is None
            self._connected = False
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._outages += 1
            now = time.monotonic()
            if was_up:
                log.warning("Redis at %s unreachable (%s); buffering up to %d entries and retrying",
                            describe(self._url), error_text(exc, self._url), self._max)
                self._next_down_log = now + 30.0
            elif now >= self._next_down_log:
                log.warning("Redis at %s still unreachable after %.0f s: %d entries buffered, %d dropped",
                            describe(self._url), now - self._down_since, len(self._buf), self._drops_this_outage)
                self._next_down_log = now + 30.0
        if self._client is not None:
            try:
                self._client.connection_pool.disconnect()
            except Exception:  # noqa: BLE001
                pass

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        return f"{self._last_id[0]}-{self._last_id[1]}"

    def _prepare(self, entry: _Entry) -> None:
        if entry.payload is None:
            sep = b"" if entry.head == b"{" else b","
            entry.payload = entry.head + sep + b'"publish_time":' + repr(round(time.time(), 6)).encode() + b"}"
            entry.entry_id = self._next_id()

    def _send_batch(self) -> None:
        with self._cond:
            batch = [self._buf.popleft() for _ in range(min(self._batch_max, len(self._buf)))]
        for entry in batch:
            self._prepare(entry)
        try:
            results = self._xadd(batch, use_own_ids=True)
            retry = [e for e, r in zip(batch, results) if isinstance(r, Exception)
                     and _ID_TOO_SMALL in str(r) and not e.sent_before]
            if retry:
                self._warn_foreign_ids()
                results2 = self._xadd(retry, use_own_ids=False)
                again = dict(zip(map(id, retry), results2))
                results = [again.get(id(e), r) for e, r in zip(batch, results)]
        except Exception as exc:  # noqa: BLE001 - connection broke: put the batch back, in order
            for entry in batch:
                entry.sent_before = True
            with self._cond:
                self._buf.extendleft(reversed(batch))
                if len(self._buf) > self._max:
                    self._drop_oldest(len(self._buf) - self._max)
            self._mark_down(exc)
            return
        self._count(batch, results)

    def _xadd(self, entries: list[_Entry], use_own_ids: bool) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for e in entries:
            pipe.xadd(e.stream, {self._field: e.payload}, id=e.entry_id if use_own_ids else "*",
                      maxlen=e.maxlen, approximate=True)
        return list(pipe.execute(raise_on_error=False))

    def _count(self, batch: list[_Entry], results: list[Any]) -> None:
        ok = failed = 0
        for entry, res in zip(batch, results):
            if not isinstance(res, Exception):
                ok += 1
                self._bump_id(res)
            elif entry.sent_before and _ID_TOO_SMALL in str(res):
                ok += 1  # stored by the attempt whose reply was lost
            else:
                failed += 1
                self._rejected += 1
                if self._rejected <= 5 or self._rejected % 1000 == 0:
                    log.warning("Redis rejected an entry for %s: %s (dropped; %d so far)", entry.stream,
                                error_text(res, self._url), self._rejected)
        with self._cond:
            self._published += ok
            self._dropped += failed

    def _bump_id(self, entry_id: Any) -> None:
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        ms, _, seq = text.partition("-")
        if ms.isdigit() and seq.isdigit():
            self._last_id = max(self._last_id, (int(ms), int(seq)))

    def _warn_foreign_ids(self) -> None:
        if not self._warned_foreign_ids:
            self._warned_foreign_ids = True
            log.warning("Redis at %s: a stream already holds newer entry ids (another writer, or the clock went "
                        "back); adding entries with server-chosen ids", describe(self._url))

"""Read trackstream's Redis streams: a Python iterator, with consumer groups and crash recovery.

>>> with Subscriber("redis://localhost:6379/0", ["bikes"], group="counter", consumer="c1") as sub:
...     for entry in sub:              # the previous entry is acknowledged when you ask for the next
...         handle(entry.data)

Without ``group`` every subscriber sees every entry (``XREAD``); ``start`` is ``"$"`` (only new
entries), ``"0"`` (everything retained) or an entry id to resume after. With ``group`` the entries of
each stream are shared out among the group's consumers (``XREADGROUP``): each is delivered to one
consumer and stays pending until acknowledged (``XACK``). On start a consumer first re-reads its own
pending entries (resume where it left off), and every ``claim_interval`` s it takes over entries that
other consumers left pending for more than ``claim_idle_ms`` (``XAUTOCLAIM``), e.g. because they died.
Delivery is at least once: handle entries idempotently (entry ids are unique).

With no ``sources``, sources are discovered by scanning for keys that match the events stream name
(``trackstream:*:events``), again every ``discover_interval`` s. A lost connection is retried; if the
server came back empty (restarted without persistence) the consumer groups are created again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Optional, Sequence

from pipelines.errors import UserError
from pipelines.sinks.redis_conn import connect, describe, error_text, ping, stream_name

log = logging.getLogger("trackstream.subscriber")

DEFAULT_FRAMES = "trackstream:{source}:frames"
DEFAULT_EVENTS = "trackstream:{source}:events"


@dataclass(frozen=True)
class Entry:
    """One stream entry: where it came from and its decoded JSON document."""

    stream: str
    id: str
    source_id: str
    kind: Literal["frames", "events"]
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """``{"stream", "id", "source", "kind", "data"}``: the line ``trackstream subscribe`` prints."""
        return {"stream": self.stream, "id": self.id, "source": self.source_id, "kind": self.kind,
                "data": self.data}


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class Subscriber:
    """Iterate over entries of the events (and optionally frames) streams of some sources.

    Args:
        url: Redis URL (see ``pipelines.sinks.redis_conn``).
        sources: source ids; None or empty discovers them.
        frames: also read the frames streams.
        group / consumer: consumer group and this consumer's name (both or neither).
        start: where to begin (see module docstring); for a group, where a new group starts.
        block_ms: longest wait of one read.
        batch: most entries read per stream per round trip.
        claim_idle_ms / claim_interval: reclaim entries pending longer than this at most this often (s).
        auto_ack: acknowledge an entry when the iterator is asked for the next one.

    Raises:
        UserError: the server cannot be reached at start, or bad arguments.
    """

    def __init__(self, url: str, sources: Optional[Sequence[str]] = None, *, frames: bool = False,
                 group: Optional[str] = None, consumer: Optional[str] = None, start: str = "$",
                 frames_stream: str = DEFAULT_FRAMES, events_stream: str = DEFAULT_EVENTS,
                 block_ms: int = 1000, batch: int = 100, claim_idle_ms: int = 30000,
                 claim_interval: float = 5.0, discover_interval: float = 2.0,
                 connect_timeout: float = 2.0, auto_ack: bool = True) -> None:
        if isinstance(sources, str):
            sources = [sources]
        if (group is None) != (consumer is None):
            raise UserError("a consumer group needs both --group and --consumer")
        if start not in ("$", "0") and not _valid_id(start):
            raise UserError(f"--from must be $, 0 or a stream entry id like 1700000000000-0, got {start!r}")
        self._url = url
        self._templates = {"events": events_stream, "frames": frames_stream}
        self._frames = frames
        self._group, self._consumer = group, consumer
        self._start = "0-0" if start == "0" else start
        self._block_ms, self._batch = block_ms, batch
        self._claim_idle_ms, self._claim_interval = claim_idle_ms, claim_interval
        self._discover = not sources
        self._discover_interval = discover_interval
        self._auto_ack = auto_ack
        self._client = connect(url, connect_timeout, socket_timeout=block_ms / 1000 + connect_timeout + 1,
                               decode_responses=True)
        ping(self._client, url)
        self._streams: dict[str, tuple[str, Literal["frames", "events"]]] = {}
        self._pos: dict[str, str] = {}          # XREAD: last id seen; group: pending-pass cursor
        self._pending_done: set[str] = set()
        self._to_ack: list[Entry] = []
        self._next_claim = time.monotonic() + claim_interval
        self._next_discover = 0.0
        self._down = False
        try:
            for src in sources or ():
                self._warn_unknown(src)
                self._add_source(src, initial=True)
            if self._discover:
                self._discover_sources(initial=True)
        except Exception as exc:  # noqa: BLE001 - e.g. WRONGTYPE, NOPERM: one line for the user
            raise _user_error(exc, url) from None
        log.info("reading %s from Redis at %s", ", ".join(self._streams) or "trackstream streams (none yet)",
                 describe(url))

    # -- public API -------------------------------------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        """Source ids being read so far."""
        return sorted({src for src, _ in self._streams.values()})

    def __iter__(self) -> Iterator[Entry]:
        while True:
            for entry in self.read():
                yield entry
                if self._auto_ack and self._group:
                    self._to_ack.append(entry)

    def read(self, block_ms: Optional[int] = None) -> list[Entry]:
        """One round: send due acks, reclaim/discover when due, return entries (empty after a timeout)."""
        block = self._block_ms if block_ms is None else block_ms
        try:
            self._flush_acks()
            if self._discover and time.monotonic() >= self._next_discover:
                self._discover_sources(initial=False)
            entries = self._read_once(block)
        except Exception as exc:  # noqa: BLE001 - sorted below; anything else is a bug to surface
            if _is_nogroup(exc):
                self._recreate_groups()
                return []
            if not _is_connection_error(exc):
                raise _user_error(exc, self._url) from None
            self._connection_lost(exc, block)
            return []
        if self._down:
            log.warning("Redis at %s reachable again", describe(self._url))
            self._down = False
        return entries

    def ack(self, *entries: Entry) -> None:
        """Acknowledge handled entries now (group mode; a no-op otherwise)."""
        if self._group:
            self._to_ack.extend(entries)
            self._flush_acks()

    def close(self) -> None:
        """Send outstanding acknowledgements and close the connection."""
        try:
            self._flush_acks()
        except Exception as exc:  # noqa: BLE001 - nothing more to do for a dead connection
            log.warning("could not acknowledge %d entries: %s", len(self._to_ack), error_text(exc, self._url))
        self._client.close()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- streams ----------------------------------------------------------------------------------------
    def _warn_unknown(self, source: str) -> None:
        """Say so when ``source`` has published nothing yet (a typo waits silently forever), naming the
        sources that have; reading starts all the same, since a camera may come later."""
        key = stream_name(self._templates["events"], source, "events_stream")
        if self._client.exists(key):
            return
        known = sorted(found for _, found in self._event_streams())
        log.warning("source %s has published nothing yet (no stream %s); waiting for it. Sources found: %s",
                    source, key, ", ".join(known) or "none")

    def _add_source(self, source: str, initial: bool) -> None:
        kinds: tuple[Literal["frames", "events"], ...] = ("events", "frames") if self._frames else ("events",)
        for kind in kinds:
            key = stream_name(self._templates[kind], source, f"{kind}_stream")
            if key in self._streams:
                continue
            self._streams[key] = (source, kind)
            start = self._start if initial else "0-0"
            if self._group:
                self._create_group(key, "$" if start == "$" else start)
            else:
                self._pos[key] = self._last_id(key) if start == "$" else start

    def _last_id(self, key: str) -> str:
        last = self._client.xrevrange(key, count=1)
        return last[0][0] if last else "0-0"

    def _create_group(self, key: str, start: str) -> None:
        try:
            self._client.xgroup_create(key, self._group, id=start, mkstream=True)
        except Exception as exc:  # noqa: BLE001
            if "BUSYGROUP" not in str(exc):
                raise

    def _recreate_groups(self) -> None:
        log.warning("consumer group %r missing (Redis restarted empty?); creating it again", self._group)
        for key in self._streams:
            self._create_group(key, "0-0")
        self._pending_done = set(self._streams)

    def _discover_sources(self, initial: bool) -> None:
        self._next_discover = time.monotonic() + self._discover_interval
        for key, source in self._event_streams():
            if key not in self._streams:
                log.info("reading source %s", source)
                self._add_source(source, initial)

    def _event_streams(self) -> Iterator[tuple[str, str]]:
        """(key, source id) of every events stream in Redis named by the events template."""
        prefix, _, suffix = self._templates["events"].partition("{source}")
        pattern = _glob_escape(prefix) + "*" + _glob_escape(suffix)
        for key in self._client.scan_iter(match=pattern, count=500, _type="STREAM"):
            if key.startswith(prefix) and key.endswith(suffix):
                source = key[len(prefix):len(key) - len(suffix)] if suffix else key[len(prefix):]
                if source:
                    yield key, source

    # -- reading ----------------------------------------------------------------------------------------
    def _read_once(self, block: int) -> list[Entry]:
        if not self._streams:
            time.sleep(block / 1000)
            return []
        if self._group:
            claimed = self._claim_due()
            if claimed:
                return claimed
            pending = [k for k in self._streams if k not in self._pending_done]
            if pending:
                got = self._client.xreadgroup(self._group, self._consumer,
                                              {k: self._pos.get(k, "0-0") for k in pending}, count=self._batch)
                entries = self._decode(got, cursor=True)
                self._pending_done.update(k for k in pending if not any(e.stream == k for e in entries))
                if entries:
                    return entries
            got = self._client.xreadgroup(self._group, self._consumer, {k: ">" for k in self._streams},
                                          count=self._batch, block=block or None)
            return self._decode(got)
        got = self._client.xread(dict(self._pos), count=self._batch, block=block or None)
        return self._decode(got, cursor=True)

    def _claim_due(self) -> list[Entry]:
        if time.monotonic() < self._next_claim:
            return []
        self._next_claim = time.monotonic() + self._claim_interval
        out: list[Entry] = []
        for key in self._streams:
            reply = self._client.xautoclaim(key, self._group, self._consumer, self._claim_idle_ms,
                                            start_id="0-0", count=self._batch)
            out.extend(self._decode([[key, reply[1]]]))
        if out:
            log.info("reclaimed %d entries left pending by other consumers", len(out))
        return sorted(out, key=lambda e: _id_key(e.id))

    def _decode(self, reply: Any, cursor: bool = False) -> list[Entry]:
        out: list[Entry] = []
        for key, items in _stream_items(reply):
            source, kind = self._streams.get(key, ("", "events"))
            for entry_id, fields in items:
                if cursor:
                    self._pos[key] = entry_id
                doc = _parse(fields)
                if doc is None:
                    log.warning("skipping entry %s of %s: no JSON document in field 'data'", entry_id, key)
                    if self._group:
                        self._client.xack(key, self._group, entry_id)
                    continue
                out.append(Entry(key, entry_id, source, kind, doc))
        out.sort(key=lambda e: _id_key(e.id))
        return out

    def _flush_acks(self) -> None:
        if not self._to_ack or not self._group:
            self._to_ack.clear()
            return
        by_stream: dict[str, list[str]] = {}
        for e in self._to_ack:
            by_stream.setdefault(e.stream, []).append(e.id)
        pipe = self._client.pipeline(transaction=False)
        for key, ids in by_stream.items():
            pipe.xack(key, self._group, *ids)
        pipe.execute()
        self._to_ack.clear()

    def _connection_lost(self, exc: BaseException, block: int) -> None:
        if not self._down:
            log.warning("lost Redis at %s (%s); retrying", describe(self._url), error_text(exc, self._url))
            self._down = True
        try:
            self._client.connection_pool.disconnect()
        except Exception:  # noqa: BLE001
            pass
        time.sleep(min(max(block, 100) / 1000, 1.0))


def _stream_items(reply: Any) -> list[tuple[str, list[Any]]]:
    """``[[stream, [[id, fields], ...]], ...]`` (RESP2 XREAD/XREADGROUP reply) as pairs."""
    return [(key, items) for key, items in reply or ()]


def _parse(fields: Any) -> Optional[dict[str, Any]]:
    if not fields or "data" not in fields:
        return None
    try:
        doc = json.loads(fields["data"])
    except (TypeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _valid_id(text: str) -> bool:
    ms, sep, seq = text.partition("-")
    return ms.isdigit() and (not sep or seq.isdigit())


def _user_error(exc: BaseException, url: str) -> BaseException:
    """A Redis error the user must fix (wrong key type, missing ACL permission) as one masked line."""
    import redis

    if isinstance(exc, redis.RedisError):
        return UserError(f"Redis at {describe(url)}: {error_text(exc, url)}")
    return exc


def _is_nogroup(exc: BaseException) -> bool:
    return "NOGROUP" in str(exc)


def _is_connection_error(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError))

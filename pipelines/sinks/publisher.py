"""Delivery to a network server from a background thread: the caller never waits, outages are survived.

``BufferedPublisher`` is the transport-independent part of every network sink (Redis Streams, MQTT):

- ``enqueue`` appends to a bounded in-memory buffer and returns at once; beyond ``buffer_max_entries``
  the oldest entries are dropped and counted.
- One background thread connects (``_connect``), sends the buffer in order in batches (``_send``), backs
  off with a growing delay while the server is unreachable, and puts a batch whose send broke back at
  the head of the buffer.
- ``close(timeout)`` delivers what it can within ``timeout`` s and returns by ``timeout + close_grace``
  s whatever the network does (a thread stuck in a socket read is left behind, and what it holds is
  counted as undelivered); one WARNING line then says how many entries could not be delivered.

A transport implements three hooks: ``_connect`` (raise when the server cannot be reached),
``_send(batch)`` (raise when the connection broke; return the entries the server refused) and
``_disconnect`` (drop the connection; called after a failure and when the thread ends). Log lines name
the server by the ``name`` given to the constructor (``"Redis at redis://:***@host:6379/0"``), which
must not contain a password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["BufferedPublisher", "PublisherStats"]

_MAX_NAMED_DESTINATIONS = 8   # the close line names at most this many destinations of lost entries


@dataclass(frozen=True)
class PublisherStats:
    """Counters of one publisher: entries ``published``, ``dropped`` (buffer full, undeliverable at close
    or rejected by the server), ``buffered`` now, ``connected`` now, ``outages`` seen so far."""

    published: int
    dropped: int
    buffered: int
    connected: bool
    outages: int


class BufferedPublisher(Generic[T]):
    """Send entries of type ``T`` to a server from one background thread, in order, without blocking.

    Args:
        name: the server as log lines show it (no password), e.g. ``"Redis at redis://host:6379/0"``.
        buffer_max_entries: most entries kept while undelivered; the oldest go first when it is full.
        batch_max: most entries per ``_send`` call.
        log: where outages, reconnects and losses are reported (WARNING).
        thread_name: name of the background thread (shown by debuggers and ``py-spy``).

    Subclasses implement ``_connect``, ``_send`` and ``_disconnect`` (see the module docstring), and may
    override ``_destination`` (which stream or topic an entry is for, named in the close line) and
    ``_error_text`` (one line describing a failure, without secrets). They must call ``_start()`` at the
    end of their constructor.
    """

    backoff_initial = 0.05      # s before the first reconnection attempt; doubles up to backoff_max
    backoff_max = 2.0
    still_down_interval = 30.0  # s between "still unreachable" lines during one outage
    close_grace = 0.5           # s close() waits past its timeout for a send in flight

    def __init__(self, name: str, buffer_max_entries: int, *, batch_max: int = 500,
                 log: logging.Logger | None = None, thread_name: str = "publisher") -> None:
        if buffer_max_entries < 1:
            raise ValueError(f"buffer_max_entries must be at least 1, got {buffer_max_entries}")
        self.name = name
        self._max = buffer_max_entries
        self._batch_max = max(1, min(batch_max, buffer_max_entries))
        self._log = log or logging.getLogger("trackstream.publisher")
        self._buf: deque[T] = deque()
        self._in_flight: list[T] = []
        self._cond = threading.Condition()
        self._closing = False
        self._abandoned = False     # close() has returned: the thread's results no longer count
        self._final: PublisherStats | None = None
        self._deadline = float("inf")
        self._connected = False
        self._published = 0
        self._outages = 0
        self._lost = Counter[str]()           # destination -> entries dropped, rejected or unsent
        self._lost_full = self._lost_rejected = self._lost_at_close = 0
        self._flush_timeout = 0.0
        self._drops_this_outage = 0
        self._down_since: float | None = None
        self._next_down_log = 0.0
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _start(self) -> None:
        """Start the background thread (the subclass's constructor calls this once it is ready)."""
        self._thread.start()

    # -- hooks ------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        """Make sure a connection is up (a round trip, not only a socket); raise if it is not."""
        raise NotImplementedError

    def _send(self, batch: list[T]) -> Sequence[T]:
        """Send ``batch`` in order; return the entries the server refused (dropped and counted).

        Raise when the connection broke: the whole batch is sent again after reconnecting, so a send
        whose reply was lost must be safe to repeat (or the subclass must recognise the repeat)."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Drop the connection (after a failure, and when the thread ends); must not raise."""

    def _destination(self, entry: T) -> str:
        """Where ``entry`` goes (stream, topic), named in the close line; empty: not named."""
        return ""

    def _error_text(self, exc: BaseException) -> str:
        """One line describing ``exc`` for the log (override to mask secrets)."""
        return " ".join(str(exc).split()) or type(exc).__name__

    # -- caller side ------------------------------------------------------------------------------------
    def enqueue(self, entry: T) -> None:
        """Queue ``entry``; never blocks on the network. Drops the oldest entry when the buffer is full.

        Raises RuntimeError after ``close()``."""
        with self._cond:
            if self._closing:
                raise RuntimeError(f"{self.name}: publisher is closed")
            if len(self._buf) >= self._max:
                self._drop_oldest(len(self._buf) - self._max + 1)
            self._buf.append(entry)
            if self._connected or len(self._buf) == 1:   # while the server is down the thread backs off
                self._cond.notify()

    def stats(self) -> PublisherStats:
        """The counters now (after ``close()``: the final ones)."""
        with self._cond:
            if self._final is not None:
                return self._final
            return self._stats()

    def close(self, timeout: float) -> PublisherStats:
        """Deliver what is buffered (trying for at most ``timeout`` s), then stop; return the final counters.

        Returns within ``timeout + close_grace`` s. Entries still buffered, or in a send that has not
        completed by then, are counted as dropped; one WARNING line says how many could not be delivered.
        Calling it again returns the same counters."""
        timeout = max(0.0, timeout)
        with self._cond:
            if self._final is not None:
                return self._final
            self._closing = True
            self._flush_timeout = timeout
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + self.close_grace)
        with self._cond:
            self._abandoned = True
            left = [*self._in_flight, *self._buf]
            self._buf.clear()
            self._in_flight = []
            self._lose(left)
            self._lost_at_close = len(left)
            self._final = self._stats()
            line = self._loss_line()
        if line:
            self._log.warning("%s", line)
        return self._final

    # -- bookkeeping (callers hold self._cond) ----------------------------------------------------------
    def _stats(self) -> PublisherStats:
        return PublisherStats(self._published, sum(self._lost.values()), len(self._buf), self._connected,
                              self._outages)

    def _lose(self, entries: Sequence[T]) -> None:
        for entry in entries:
            where = self._destination(entry)
            if where not in self._lost and len(self._lost) >= _MAX_NAMED_DESTINATIONS:
                where = "other"
            self._lost[where] += 1

    def _drop_oldest(self, n: int) -> None:
        self._lose([self._buf.popleft() for _ in range(n)])
        self._lost_full += n
        if self._drops_this_outage == 0:
            self._log.warning("%s: buffer full (%d entries): dropping the oldest entries (counted in stats)",
                              self.name, self._max)
        self._drops_this_outage += n

    def _loss_line(self) -> str:
        """The close line: how many entries were lost, where to, and why; empty when none was."""
        total = sum(self._lost.values())
        if not total:
            return ""
        where = ", ".join(f"{n} for {dest}" for dest, n in self._lost.most_common() if dest)
        why = [f"{n} {reason}" for n, reason in (
            (self._lost_full, "dropped as the buffer filled"),
            (self._lost_rejected, "refused by the server"),
            (self._lost_at_close, f"unsent after the {self._flush_timeout:g} s flush timeout")) if n]
        detail = "; ".join(part for part in (where, ", ".join(why)) if part)
        return f"{self.name}: {total} entries could not be delivered ({self._published} published; {detail})"

    # -- background thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.backoff_initial
        try:
            while True:
                with self._cond:
                    while not self._buf and not self._closing:
                        self._cond.wait()
                    if self._abandoned or not self._buf or time.monotonic() >= self._deadline:
                        return
                if (self._connected or self._try_connect()) and self._send_next_batch():
                    backoff = self.backoff_initial
                    continue
                # unreachable, or it connects and then fails every send (a full disk): wait all the same,
                # or the thread spins and logs "unreachable" / "reachable again" a thousand times a second
                self._back_off(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        except Exception:  # noqa: BLE001 - a bug in a hook must not print a thread traceback mid-run
            self._log.exception("%s: publisher thread failed; entries are kept until close()", self.name)
        finally:
            self._quiet_disconnect()

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

    def _try_connect(self) -> bool:
        try:
            self._connect()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "buffer and retry"
            self._mark_down(exc)
            return False
        with self._cond:
            self._connected = True   # the outage ends when a batch goes through (_send_next_batch)
        return True

    def _mark_up(self, delivered: int) -> None:
        """A batch went through: an outage, if any, is over (callers hold self._cond)."""
        if self._down_since is not None and not self._abandoned:
            down = time.monotonic() - self._down_since
            self._log.warning("%s reachable again after %.1f s; delivering %d buffered entries "
                              "(%d dropped during the outage)", self.name, down, delivered + len(self._buf),
                              self._drops_this_outage)
        self._down_since = None
        self._drops_this_outage = 0

    def _mark_down(self, exc: BaseException) -> None:
        with self._cond:
            was_up = self._down_since is None   # a connection that fails each send is one outage, logged once
            self._connected = False
            if self._abandoned:
                return
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                self._outages += 1
            if was_up:
                self._log.warning("%s unreachable (%s); buffering up to %d entries and retrying", self.name,
                                  self._error_text(exc), self._max)
                self._next_down_log = now + self.still_down_interval
            elif now >= self._next_down_log:
                self._log.warning("%s still unreachable after %.0f s: %d entries buffered, %d dropped",
                                  self.name, now - self._down_since, len(self._buf), self._drops_this_outage)
                self._next_down_log = now + self.still_down_interval
        self._quiet_disconnect()

    def _quiet_disconnect(self) -> None:
        try:
            self._disconnect()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
            self._log.debug("%s: disconnecting failed", self.name, exc_info=True)

    def _send_next_batch(self) -> bool:
        """Send the oldest batch; False when the send broke (the batch is back at the head of the buffer)."""
        with self._cond:
            batch = [self._buf.popleft() for _ in range(min(self._batch_max, len(self._buf)))]
            self._in_flight = batch
        try:
            refused = self._send(batch)
        except Exception as exc:  # noqa: BLE001 - connection broke: put the batch back, in order
            with self._cond:
                self._in_flight = []
                if self._abandoned:      # close() has counted the batch as undelivered
                    return False
                self._buf.extendleft(reversed(batch))
                if len(self._buf) > self._max:
                    self._drop_oldest(len(self._buf) - self._max)
            self._mark_down(exc)
            return False
        with self._cond:
            self._in_flight = []
            if self._abandoned:
                return True
            self._mark_up(len(batch))
            self._published += len(batch) - len(refused)
            self._lose(refused)
            self._lost_rejected += len(refused)
        return True


class PublisherCounters:
    """What a sink that delivers through a ``BufferedPublisher`` (``self._publisher``) tells the engine."""

    _publisher: "BufferedPublisher[Any]"

    def undelivered(self) -> int:
        """Entries dropped (buffer full, refused, or not delivered by close): a run that lost any exits 3."""
        return self._publisher.stats().dropped

    def buffered(self) -> int:
        """Entries waiting for the server now (grows during an outage)."""
        return self._publisher.stats().buffered

    @property
    def stats(self) -> PublisherStats:
        """Published / dropped / buffered counters (for metrics and logs)."""
        return self._publisher.stats()

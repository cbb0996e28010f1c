"""``StoreWriter``: writes event and track rows to the database from one background thread, in batches.

It is a ``BufferedPublisher`` (``pipelines/sinks/publisher.py``), the same delivery the Redis and MQTT sinks
use: ``put`` never waits for the database; rows are written in order, up to ``batch_max`` per
transaction; while the database is unreachable they are buffered (up to ``buffer_max_entries``, then the
oldest are dropped and counted), and ``close`` writes what it can within ``flush_timeout`` s, then says in
one line what was lost (the run then exits 3).

A batch is one transaction: after a crash (``kill -9``) the database holds every batch committed before it
and nothing of the one in flight. The schema is created or migrated on the first connection.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Sequence

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError, InterfaceError

from pipelines.sinks.publisher import BufferedPublisher
from pipelines.store.db import describe, error_text, open_engine, ping
from pipelines.store.schema import events, has_media, media, migrate, tracks

log = logging.getLogger("trackstream.store")

Kind = Literal["event", "track", "interrupted", "media"]
Row = tuple[Kind, dict[str, Any]]
_TRACK_KEY = ("source_id", "track_id", "first_time")
INTERRUPTED = "interrupted"   # end_reason of a track whose run stopped before it ended


class StoreWriter(BufferedPublisher[Row]):
    """Rows of one source (or several) into the database ``db`` (a SQLite path or a PostgreSQL URL)."""

    def __init__(self, db: str, *, buffer_max_entries: int = 100000, batch_max: int = 500,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(describe(db), buffer_max_entries, batch_max=batch_max, log=log,
                         thread_name="trackstream-store")
        self._db = db
        self._engine: Engine = open_engine(db, writer=True, connect_timeout=connect_timeout)
        self._migrated = False
        self._media_rows = True   # False: the database has no media table (this login may not make it)
        self._start()

    def put(self, kind: Kind, row: dict[str, Any]) -> None:
        self.enqueue((kind, row))

    def _connect(self) -> None:
        ping(self._engine)
        if not self._migrated:
            with self._engine.begin() as conn:
                migrate(conn)
                self._media_rows = has_media(conn)
            self._migrated = True
            if not self._media_rows:
                log.warning("%s: no media table, and this login may not create it: files written are not "
                            "recorded, so the history cannot tell a deleted snapshot or clip from one never "
                            "written", self.name)

    def _disconnect(self) -> None:
        self._engine.dispose()

    def _destination(self, entry: Row) -> str:
        return {"event": "events", "media": "media"}.get(entry[0], "tracks")

    def _error_text(self, exc: BaseException) -> str:
        return error_text(exc, self._engine.url.password)

    def _send(self, batch: list[Row]) -> Sequence[Row]:
        if not self._media_rows:
            batch = [row for row in batch if row[0] != "media"]
        try:
            with self._engine.begin() as conn:
                write_rows(conn, batch)
            return []
        except (OperationalError, InterfaceError):
            raise                         # the connection broke or the file is locked: the batch is retried
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            log.warning("%s refused a batch (%s); writing its rows one by one", self.name, self._error_text(exc))
        refused: list[Row] = []
        for row in batch:               # one bad row must not cost the others
            try:
                with self._engine.begin() as conn:
                    write_rows(conn, [row])
            except (OperationalError, InterfaceError):
                raise
            except DBAPIError:
                refused.append(row)
        return refused


def write_rows(conn: Connection, batch: Sequence[Row]) -> None:
    """Insert the event rows and upsert the track rows of ``batch`` in the caller's transaction.

    An ``interrupted`` row (``{"source_id"}``, put by a run as it starts a source, before any row of its own)
    ends the tracks of that source that an earlier run left open (killed, crashed, stopped with ``--state``):
    ``ended`` with ``end_reason`` ``interrupted``; their end time is unknown (``last_time``: when last stored)."""
    for kind, row in batch:
        if kind == "interrupted":   # first: the batch's track rows may be the new run's own
            conn.execute(tracks.update().where(tracks.c.source_id == row["source_id"], tracks.c.ended.is_(False))
                         .values(ended=True, end_reason=INTERRUPTED))
    event_rows = [row for kind, row in batch if kind == "event"]
    media_rows = [row for kind, row in batch if kind == "media"]   # files written (store/media.py)
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for kind, row in batch:
        if kind == "track":
            latest[tuple(row[k] for k in _TRACK_KEY)] = row   # a later state of a track replaces an earlier one
    if event_rows:
        add = pg_insert(events) if conn.dialect.name == "postgresql" else sqlite_insert(events)
        conn.execute(add.on_conflict_do_nothing(index_elements=["source_id", "replay_key"]), event_rows)
    if media_rows:
        add = pg_insert(media) if conn.dialect.name == "postgresql" else sqlite_insert(media)
        conn.execute(add.on_conflict_do_nothing(index_elements=["path"]), media_rows)
    if latest:
        upsert = pg_insert(tracks) if conn.dialect.name == "postgresql" else sqlite_insert(tracks)
        changed = {c.name: upsert.excluded[c.name] for c in tracks.columns if c.name not in ("id", *_TRACK_KEY)}
        conn.execute(upsert.on_conflict_do_update(index_elements=list(_TRACK_KEY), set_=changed),
                     list(latest.values()))

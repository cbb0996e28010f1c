"""The event history's tables (SQLAlchemy Core) and their versioned migrations.

Tables:

- ``events``: one row per event document (the same JSON as the events file, in ``doc``), with the fields a
  search filters on as columns: source, kind, wall-clock ``time``, ``pts``, ``stream_time``, track id,
  class, zone, line, direction, and the event's clip (a path inside the media folder). ``replay_key``
  (the frame's time on the stream's persistent clock, the event, its track and zone or line) is unique per
  source: a frame processed again after a restart from ``--state`` does not store its events twice.
- ``tracks``: one row per track of a source (key: source, track id, first wall-clock time, so ids a
  later run hands out again are other rows): class, first/last seen (wall clock, video time, stream
  clock), zones visited with the seconds inside each, lines crossed with direction and time, a
  downsampled path, best confidence, and its snapshot files.
- ``media``: one row per snapshot or clip file once it is written (its path inside the media folder, source,
  wall-clock time): a file that is not there is ``deleted`` (by retention) when it has a row, and still being
  written (a clip's post-event part is recorded first) or never written when it has none. Made on every
  migration check when missing, with no new version: older trackstreams use such a history as before. Its
  row of path ``""`` (``MEDIA_SINCE``) holds when it was made: a file due before that and not there may have
  been deleted, so it is ``deleted``, not ``missing``. A login that may not create tables goes on without it
  (no media rows; every file that is not there past its time is ``deleted``, as before the table).
- ``trackstream_schema``: the schema version (one row).

Migrations are a list of numbered steps run in order inside one transaction, under a lock (PostgreSQL:
an advisory transaction lock; SQLite: ``BEGIN IMMEDIATE``), so several processes starting against one
new database create it once. A database whose tables (PostgreSQL: of ``current_schema()``) hold no
``trackstream_schema`` is another program's: nothing is made in it (``foreign_tables``). Indexes serve the
searches of ``pipelines/store/query.py``: every filter starts with the source and ends with the time range, so
(source, line, time), (source, zone, time), (source, time) and (time) answer them without a table scan.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, inspect, text)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError

from pipelines.errors import UserError

metadata = MetaData()

_ID = BigInteger().with_variant(Integer(), "sqlite")   # SQLite: INTEGER PRIMARY KEY is the rowid (autoincrement)

events = Table(
    "events", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("source_id", String(255), nullable=False),
    Column("event", String(32), nullable=False),
    Column("time", Float, nullable=False),          # wall clock, Unix s (the frame's capture time)
    Column("pts", Float),                           # video time, s
    Column("stream_time", Float),                   # the stream's persistent clock, Unix s
    Column("frame_index", BigInteger),
    Column("track_id", BigInteger),
    Column("class_name", String(255)),
    Column("zone", String(255)),
    Column("line", String(255)),
    Column("direction", String(16)),
    Column("clip", String(1024)),                   # path inside the media folder, None: no clip
    Column("doc", Text, nullable=False),            # the event document, JSON
    Column("replay_key", String(512)),              # a frame's event: the same when the frame is processed again
    UniqueConstraint("source_id", "replay_key", name="uq_events_source_replay"),
    Index("ix_events_source_time", "source_id", "time"),
    Index("ix_events_source_line_time", "source_id", "line", "time"),
    Index("ix_events_source_zone_time", "source_id", "zone", "time"),
    Index("ix_events_source_track", "source_id", "track_id", "time"),
    Index("ix_events_time", "time"),
)

tracks = Table(
    "tracks", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("source_id", String(255), nullable=False),
    Column("track_id", BigInteger, nullable=False),
    Column("class_id", Integer, nullable=False),
    Column("class_name", String(255), nullable=False),
    Column("first_time", Float, nullable=False),
    Column("last_time", Float, nullable=False),
    Column("first_pts", Float),
    Column("last_pts", Float),
    Column("first_stream_time", Float),
    Column("last_stream_time", Float),
    Column("frames_seen", Integer, nullable=False),
    Column("best_confidence", Float, nullable=False),
    Column("zones", Text, nullable=False),          # JSON {zone: {"entries": n, "seconds": s}}
    Column("lines", Text, nullable=False),          # JSON [{"line", "direction", "time", "pts"}]
    Column("path", Text, nullable=False),           # JSON [[pts, x, y], ...] downsampled
    Column("snapshot", String(1024)),               # media path of the best crop (JPEG)
    Column("snapshot_frame", String(1024)),         # media path of the full frame with the box drawn
    Column("ended", Boolean, nullable=False),
    Column("end_reason", String(32)),
    UniqueConstraint("source_id", "track_id", "first_time", name="uq_tracks_source_track_first"),
    Index("ix_tracks_source_last", "source_id", "last_time"),
    Index("ix_tracks_source_track", "source_id", "track_id"),
)

MEDIA_SINCE = ""   # the path of the media row whose time is when the table was made (no file has that path)
media = Table(
    "media", metadata,
    Column("path", String(1024), primary_key=True),   # inside the media folder, as the rows name it
    Column("source_id", String(255), nullable=False),
    Column("written", Float, nullable=False),         # wall clock, Unix s
)

schema_version = Table("trackstream_schema", metadata, Column("version", Integer, nullable=False))


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[events, tracks])


MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = ((1, _v1),)
VERSION = MIGRATIONS[-1][0]
_PG_LOCK = 0x7472_6B73   # advisory lock id of trackstream migrations ("trks")


def _add_media(conn: Connection) -> None:
    """Make the ``media`` table when missing. A login that may not create tables (a PostgreSQL role granted only
    the rows of a history its owner made, before this table existed) goes on without it: the migration around
    it stands, the writer leaves media rows out (``has_media``) and the history never says ``deleted``."""
    if has_media(conn):
        return
    try:
        with conn.begin_nested():   # a refusal must not undo the transaction around it (PostgreSQL aborts it)
            media.create(conn)
            # since when files are recorded: a gone file due before was maybe deleted, not surely never written
            conn.execute(media.insert().values(path=MEDIA_SINCE, source_id="", written=time.time()))
    except ProgrammingError:        # permission denied for the schema
        pass


# tables and views of the schema trackstream writes (PostgreSQL: current_schema(), usually public), leaving out
# those an extension made (pg_stat_statements' views, PostGIS' spatial_ref_sys): they are no other program's data
_PG_RELATIONS = text(
    "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT EXISTS ("
    "SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid "
    "AND d.deptype = 'e') ORDER BY c.relname")


def relations(conn: Connection) -> list[str]:
    """The tables and views, sorted, of the schema trackstream would create its tables in (SQLite: the file;
    PostgreSQL: ``current_schema()``). Reads only."""
    if conn.dialect.name == "postgresql":
        return [str(row[0]) for row in conn.execute(_PG_RELATIONS)]
    found = inspect(conn)
    return sorted({*found.get_table_names(), *found.get_view_names()})


def foreign_tables(names: Sequence[str]) -> list[str]:
    """``names`` (``relations``) when they are another program's: tables without ``trackstream_schema``, which
    trackstream makes in the transaction that makes its others. Empty for an empty database and for a history."""
    return [] if schema_version.name in names else list(names)


def listed(names: Sequence[str], most: int = 5) -> str:
    """``names`` for a message: the first ``most``, then ``...``."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def has_media(conn: Connection) -> bool:
    """Whether the database holds the ``media`` table."""
    return bool(inspect(conn).has_table(media.name))


def migrate(conn: Connection) -> int:
    """Bring the database to ``VERSION`` inside the caller's transaction; returns the version found.

    Raises UserError, having made nothing, when the database was made by a newer trackstream or is another
    program's (``foreign_tables``: the run's start refuses it, but a server down then is first seen here)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
    foreign = foreign_tables(relations(conn))
    if foreign:
        raise UserError(f"the event database is another program's (tables: {listed(foreign)}), not a trackstream "
                        "event history: nothing is written to it")
    schema_version.create(conn, checkfirst=True)
    found = conn.execute(schema_version.select()).scalar()
    current = int(found) if found is not None else 0
    if current > VERSION:
        raise UserError(f"the event database has schema version {current}, newer than this trackstream "
                        f"knows ({VERSION}): upgrade trackstream")
    for number, step in MIGRATIONS:
        if number > current:
            step(conn)
    # added without a new version: a trackstream that does not know the table reads and writes the rest as before
    _add_media(conn)
    if found is None:
        conn.execute(schema_version.insert().values(version=VERSION))
    elif current < VERSION:
        conn.execute(schema_version.update().values(version=VERSION))
    return current

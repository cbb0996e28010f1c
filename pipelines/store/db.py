"""Opening the event database: a SQLite file or a PostgreSQL server, through SQLAlchemy Core.

``--db events.db`` (or ``sqlite:///events.db``) is a SQLite file in WAL mode: readers (the CLI, the web
view) never wait for the writer, every committed batch survives a ``kill -9``, and a crash leaves the file
consistent. ``--db postgresql://user:pass@host:5432/name`` uses psycopg 3 (``pip install
'trackstream[postgres]'``); several processes and machines (Ray actors) write one database.

Passwords never appear in messages: ``describe(url)`` masks them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, Optional
from urllib.parse import quote

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, OperationalError

from pipelines.errors import OutputError, UserError
from pipelines.secrets import redact_text, url_password
from pipelines.store.config import is_postgres, sqlite_path


def describe(db: str) -> str:
    """The database as messages show it: ``SQLite events.db`` or ``PostgreSQL postgresql://u:***@host/db``."""
    if is_postgres(db):
        return f"PostgreSQL at {redact_text(db, url_password(db))}"
    return f"SQLite {sqlite_path(db)}"


def database_url(db: str) -> URL:
    """The SQLAlchemy URL of ``db`` (a path or URL); UserError (password masked) when it is malformed."""
    if not is_postgres(db):
        return URL.create("sqlite", database=str(sqlite_path(db)))
    password = url_password(db)
    try:
        url = make_url(db)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UserError(f"--db: cannot read the database URL {redact_text(db, password)}") from None
    if "@" in (password or ""):
        # the driver would cut the password at its first '@' and send the rest to the resolver as the host name,
        # whose error message would then show that part of the password
        raise UserError(f"--db: the password in {redact_text(db, password)} holds '@': write it "
                        "percent-encoded (%40), as in postgresql://user:p%40ss@host/db")
    return url.set(drivername="postgresql+psycopg")


def open_engine(db: str, *, writer: bool = False, connect_timeout: float = 5.0) -> Engine:
    """An engine for ``db``. ``writer``: SQLite transactions take the write lock at their start (``BEGIN
    IMMEDIATE``), so two writers queue instead of failing half-way, and the file is put in WAL mode (readers
    never wait for the writer); readers never take the lock nor change the file's journal mode.

    A SQLite file's folder is created. Raises UserError when psycopg is missing for PostgreSQL."""
    url = database_url(db)
    if url.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise UserError("--db postgresql://... needs psycopg: pip install 'trackstream[postgres]'") from None
        return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                             connect_args={"connect_timeout": max(1, int(round(connect_timeout)))})
    path = sqlite_path(db)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder of {path}: {exc.strerror or exc}") from None
    engine = create_engine(url, connect_args={"timeout": max(connect_timeout, 30.0), "check_same_thread": False})
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None      # transactions are begun below, not by the driver
        cursor = dbapi_conn.cursor()
        if writer:   # a reader leaves the file's journal mode alone: another program's database stays as it was
            cursor.execute("PRAGMA journal_mode=WAL")   # readers never wait for the writer; atomic commits
        cursor.execute("PRAGMA synchronous=NORMAL")  # a commit survives a crash of the process (kill -9)
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def open_reader(db: str) -> Engine:
    """An engine that only reads ``db``. A SQLite history in a folder this user may not write (the service's
    ``/var/lib/...`` read by an operator, a read-only copy or mount) cannot be opened the usual way: a WAL
    reader creates the ``-shm`` file beside it. When it has no ``-wal`` file (nothing is written to it now, so
    the file alone holds every row), it is opened as immutable, which needs neither."""
    engine = open_engine(db)
    if is_postgres(db):
        return engine
    path = sqlite_path(db)
    try:
        ping(engine)
        return engine
    except OperationalError as exc:
        if "unable to open database file" not in driver_text(exc) or not path.is_file() \
                or path.with_name(f"{path.name}-wal").exists():
            return engine   # its own error, reported by the first query
    except DatabaseError as exc:   # not a database at all (the run's JSONL given for it): a traceback before
        engine.dispose()
        raise UserError(f"cannot read {describe(db)}: {error_text(exc, None, 200)}") from None
    engine.dispose()
    uri = f"file:{quote(str(path.resolve()))}?immutable=1"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
                         execution_options={_IMMUTABLE: True})


_IMMUTABLE = "trackstream_immutable"   # an execution option marking the engines open_reader opened immutable


def fresh_reader(engine: Engine, db: str) -> Engine:
    """``engine`` for the next poll of ``events --follow``. One that ``open_reader`` opened immutable never sees
    what a writer adds later (SQLite takes the file for one that cannot change and ignores a ``-wal``), so it is
    opened anew: the file as it is now, and the usual way once a writer's ``-wal`` and ``-shm`` are there."""
    if not engine.get_execution_options().get(_IMMUTABLE):
        return engine
    path = sqlite_path(db)
    if path.with_name(f"{path.name}-wal").exists() and not path.with_name(f"{path.name}-shm").exists():
        return engine   # a writer is opening it this moment: its -shm comes next, and the usual open with it
    engine.dispose()
    return open_reader(db)


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def driver_text(exc: BaseException) -> str:
    """What the database said about ``exc`` (the driver's own message when SQLAlchemy wraps one), on one line."""
    detail = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return " ".join(str(detail).split())


def error_text(exc: BaseException, password: Optional[str], limit: int = 300) -> str:
    """``driver_text`` cut to ``limit`` characters with ``password`` masked (the exception's type when empty)."""
    return redact_text(driver_text(exc)[:limit], password) or type(exc).__name__


def check_sqlite(db: str) -> None:
    """Fail now, in one line, when the existing SQLite file ``db`` is not a database, is another program's
    database or holds an event history of a newer trackstream: the writer would otherwise retry it as
    "unreachable" for the whole run and lose every row (another program's ``events`` table stays in the way of
    ours). Reads only, through the driver without this module's WAL switch, so a refused file is left byte for
    byte as it was; a missing or empty file is fine (the run creates it)."""
    from pipelines.store.schema import foreign_tables, listed

    path = sqlite_path(db)
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(str(path), timeout=30.0)) as conn:
            tables = sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
            row = conn.execute("SELECT version FROM trackstream_schema").fetchone() \
                if "trackstream_schema" in tables else None
    except sqlite3.Error as exc:
        raise OutputError(f"--db: cannot use {path} as the event database: {' '.join(str(exc).split())[:200]}") \
            from None
    foreign = foreign_tables(tables)
    if foreign:
        raise OutputError(f"--db: {path} is another program's database (tables: {listed(foreign)}), not a "
                          "trackstream event history; give --db a file of its own")
    _refuse_newer(str(path), row[0] if row else None)


def _refuse_newer(shown: str, found: Any) -> None:
    """OutputError when the stored schema version ``found`` (None: none yet) is newer than this trackstream's."""
    from pipelines.store.schema import VERSION

    if found is not None and int(found) > VERSION:
        raise OutputError(f"--db: {shown} has schema version {found}, newer than this trackstream knows "
                          f"({VERSION}): upgrade trackstream")


# what a PostgreSQL server that answers says when it will never take this URL (it is not down: retrying is futile)
_REFUSALS = ("password authentication failed", "authentication failed", "no password supplied",
             "no pg_hba.conf entry", "does not exist")


def check_postgres(db: str, connect_timeout: float = 5.0) -> None:
    """Fail now, in one line, when the PostgreSQL server answers but refuses ``db`` (a wrong password or user, a
    database that does not exist), when the schema the run would write (``current_schema()``, usually public) is
    another program's (tables, but no ``trackstream_schema``) or holds the history of a newer trackstream. The
    writer would buffer for the whole run and then lose every row, and into another program's database it would
    first have added trackstream's tables beside (or, for an ``events`` table, in the way of) its own. Reads
    only, in a read-only transaction: a refused database is left as it was. A server that cannot be reached is
    no error here: the run starts and buffers until it is back (docs/events.md), and the writer checks then
    before it makes anything (``schema.migrate``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.store.schema import foreign_tables, listed, relations, schema_version

    engine = open_engine(db, connect_timeout=connect_timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET TRANSACTION READ ONLY"))
            tables = relations(conn)
            found = conn.execute(schema_version.select()).scalar() if schema_version.name in tables else None
            schema = conn.dialect.default_schema_name
    except SQLAlchemyError as exc:
        if any(refusal in driver_text(exc) for refusal in _REFUSALS):
            raise OutputError(f"--db: {describe(db)} refused the connection: "
                              f"{error_text(exc, url_password(db), 200)}") from None
        return
    finally:
        engine.dispose()
    foreign = foreign_tables(tables)
    if foreign:
        raise OutputError(f"--db: {describe(db)} is another program's database (tables in schema {schema}: "
                          f"{listed(foreign)}), not a trackstream event history; give --db a database of its own")
    _refuse_newer(describe(db), found)

"""The event history on a real PostgreSQL server: a fleet's database, outages, and several writers at once."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.sinks.store import StoreSink
from pipelines.store.config import StoreConfig
from pipelines.store.db import open_engine
from pipelines.store.query import EventFilter, search_events, track_rows
from tests.conftest import REPO, free_port
from tests.pgserver import PG_PASSWORD, PostgresServer
from tests.store.conftest import feed, synthetic_results


def stored_docs(url: str, source: str) -> list[dict]:
    from sqlalchemy.exc import ProgrammingError

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            rows = search_events(conn, EventFilter(sources=(source,), limit=10000))
    except ProgrammingError:     # the writer has not made the tables yet
        return []
    finally:
        engine.dispose()
    return [r["doc"] for r in sorted(rows, key=lambda r: r["id"])]


def test_events_and_tracks_on_postgresql(pg_url: str) -> None:
    sink = StoreSink(StoreConfig(db=pg_url), "cam")
    docs = feed(sink, synthetic_results("cam"))
    sink.close()
    assert sink.undelivered() == 0
    assert stored_docs(pg_url, "cam") == docs
    engine = open_engine(pg_url)
    with engine.connect() as conn:
        track = track_rows(conn, "cam", 2)[0]
        line = search_events(conn, EventFilter(sources=("cam",), line="gate"))
    engine.dispose()
    assert track["ended"] and track["lines"][0]["line"] == "gate" and track["zones"]["yard"]["seconds"] > 0
    assert len(line) == 4


def test_a_database_stopped_mid_run_buffers_then_delivers(postgres: PostgresServer, pg_url: str) -> None:
    items = synthetic_results("cam")
    sink = StoreSink(StoreConfig(db=pg_url, flush_timeout=30.0), "cam")
    docs = feed(sink, items[:20])
    deadline = time.monotonic() + 10
    while len(stored_docs(pg_url, "cam")) < len(docs) and time.monotonic() < deadline:
        time.sleep(0.1)
    postgres.stop()                                  # SIGKILL: the server is gone mid-run
    try:
        docs += feed(sink, items[20:])
        time.sleep(1.0)
        assert sink._writer.stats().buffered > 0     # held while the database is down
    finally:
        postgres.start()
    sink.close()
    assert sink.undelivered() == 0
    assert stored_docs(pg_url, "cam") == docs


def test_a_database_that_stays_down_reports_the_loss_without_the_password(
        postgres: PostgresServer, pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trackstream.store")
    items = synthetic_results("cam")
    sink = StoreSink(StoreConfig(db=pg_url, flush_timeout=1.0), "cam")
    feed(sink, items[:5])
    time.sleep(0.5)
    postgres.stop()
    try:
        docs = feed(sink, items[5:])
        sink.close()
    finally:
        postgres.start()
    assert sink.undelivered() >= len(docs)
    text = caplog.text
    assert "could not be delivered" in text and "unreachable" in text
    assert PG_PASSWORD not in text and "***" in text


def test_an_unreachable_server_at_start_is_buffered_and_named_without_its_password(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trackstream.store")
    url = f"postgresql://someone:{PG_PASSWORD}@127.0.0.1:{free_port()}/nothing"
    sink = StoreSink(StoreConfig(db=url, flush_timeout=0.5, connect_timeout=1.0), "cam")
    feed(sink, synthetic_results("cam")[:3])
    sink.close()
    assert sink.undelivered() > 0
    assert PG_PASSWORD not in caplog.text and "postgresql://someone:***@127.0.0.1" in caplog.text


@pytest.mark.parametrize("fault", ["wrong_password", "no_such_database"])
def test_a_server_that_refuses_the_url_stops_the_run_at_start(postgres: PostgresServer, pg_url: str,
                                                              bikes_video, fault: str) -> None:  # type: ignore[no-untyped-def]
    """The writer took a refusal for an outage: the whole video ran, then every row was lost (exit 3)."""
    from tests.conftest import run_cli

    url = pg_url.replace(PG_PASSWORD, "Wrong-pw-55") if fault == "wrong_password" else \
        pg_url.rsplit("/", 1)[0] + "/no_such_db"
    done = run_cli("run", str(bikes_video), "--db", url, "--max-frames", "12", "--imgsz", "160", "--quiet",
                   timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("trackstream: error: --db: PostgreSQL at ")
    assert "refused the connection" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert PG_PASSWORD not in done.stderr and "Wrong-pw-55" not in done.stderr


WRITER = """
import sys, time
from pipelines.sinks.store import StoreSink
from pipelines.store.config import StoreConfig
from tests.store.conftest import feed, synthetic_results
url, source = sys.argv[1], sys.argv[2]
sink = StoreSink(StoreConfig(db=url, batch_max=7), source)
for item in synthetic_results(source, n_frames=120):
    feed(sink, [item])
    time.sleep(0.002)
sink.close()
sys.exit(3 if sink.undelivered() else 0)
"""


def test_two_processes_write_one_database(pg_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, source], cwd=str(REPO),
                              env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE,
                              text=True) for source in ("north", "south")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    expected = [e for item in synthetic_results("north", n_frames=120) for e in item.events]
    for source in ("north", "south"):
        got = stored_docs(pg_url, source)
        assert [d["event"] for d in got] == [e["event"] for e in expected]
        assert {d["source_id"] for d in got} == {source}
    engine = open_engine(pg_url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version FROM trackstream_schema").fetchall()
        ends = [json.loads(r[0])["event"] for r in conn.exec_driver_sql(
            "SELECT doc FROM events WHERE event = 'track_ended'").fetchall()]
    engine.dispose()
    assert versions == [(1,)]              # the schema was made once although both started at the same time
    assert len(ends) == 2 * sum(1 for e in expected if e["event"] == "track_ended")


def test_trackstream_events_reads_postgresql_and_never_prints_the_password(postgres: PostgresServer,
                                                                           pg_url: str) -> None:
    from tests.conftest import run_cli

    sink = StoreSink(StoreConfig(db=pg_url), "cam")
    feed(sink, synthetic_results("cam"))
    sink.close()
    done = run_cli("events", "--db", pg_url, "--line", "gate", "--format", "jsonl", timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["line"] for line in done.stdout.splitlines()] == ["gate"] * 4
    wrong = pg_url.replace(PG_PASSWORD, "Wrong-Pw-123")
    done = run_cli("events", "--db", wrong, timeout=60)
    assert done.returncode == 2 and "cannot read PostgreSQL at postgresql://trackstream:***@" in done.stderr
    assert "Wrong-Pw-123" not in done.stderr and PG_PASSWORD not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_trackstream_events_on_a_database_that_does_not_exist_says_so(postgres: PostgresServer, pg_url: str) -> None:
    """A misspelt database name was reported as '... holds no event history', as if the run had written
    nothing there: the server's own reason is named, as for a wrong password."""
    from tests.conftest import run_cli

    done = run_cli("events", "--db", pg_url + "_typo", timeout=60)
    assert done.returncode == 2 and "holds no event history" not in done.stderr
    assert f'database "{pg_url.rsplit("/", 1)[1]}_typo" does not exist' in done.stderr, done.stderr
    assert PG_PASSWORD not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = run_cli("events", "--db", pg_url, timeout=60)                 # there, but nothing written yet
    assert done.returncode == 2 and "holds no event history" in done.stderr


def test_the_database_password_need_not_be_on_the_command_line(postgres: PostgresServer, pg_url: str,
                                                                 bikes_video: Path, tmp_path: Path) -> None:
    """Redis and MQTT passwords can come from a file or the environment; the PostgreSQL one could only be in the
    --db URL, where ps and the shell history show it (the run's own command line)."""
    from tests.conftest import run_cli

    bare = pg_url.replace(f":{PG_PASSWORD}@", "@")
    assert PG_PASSWORD not in bare
    done = run_cli("run", str(bikes_video), "--db", bare, "--max-frames", "3", "--imgsz", "160", "--quiet",
                   env={"TRACKSTREAM_DB_PASSWORD": PG_PASSWORD}, timeout=120)
    assert done.returncode == 0, done.stderr
    secret = tmp_path / "db-password"
    secret.write_text(PG_PASSWORD + "\n")
    done = run_cli("events", "--db", bare, "--db-password-file", str(secret), "--format", "jsonl", timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["event"] for line in done.stdout.splitlines()] == ["stream_started", "stream_ended"]
    assert PG_PASSWORD not in done.stderr


def test_a_role_that_may_not_create_tables_still_writes_a_history_made_before_the_media_table(
        postgres: PostgresServer, pg_url: str, tmp_path: Path) -> None:
    """A DBA made the history (schema version 1, as a trackstream before the ``media`` table left it) and lets
    the cameras' role only read and write its rows, not create tables. That run stored every row; the
    ``media`` table made on every connect without a version bump failed it (permission denied for schema
    public), so every row was lost (exit 3). It runs without the table now (its snapshots and clips are
    written, just not recorded as written)."""
    import psycopg
    from sqlalchemy import inspect

    from pipelines.store.schema import events, schema_version, tracks

    owner = open_engine(pg_url)
    with owner.begin() as conn:   # what trackstream made before the media table existed
        for table in (schema_version, events, tracks):
            table.create(conn)
        conn.execute(schema_version.insert().values(version=1))
    owner.dispose()
    role, database = f"cams{next(_ROLES)}_{int(time.time() * 1000) % 10**9}", pg_url.rsplit("/", 1)[1]
    postgres.admin(f"CREATE ROLE {role} LOGIN PASSWORD 'Cams-pw-77'")
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
            conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        url = f"postgresql://{role}:Cams-pw-77@127.0.0.1:{postgres.port}/{database}"
        sink = StoreSink(StoreConfig(db=url, flush_timeout=5.0, media=str(tmp_path / "media")), "cam")
        docs = feed(sink, synthetic_results("cam"))
        sink.close()
        assert sink.undelivered() == 0
        assert stored_docs(pg_url, "cam") == docs
        assert list((tmp_path / "media" / "cam").rglob("snap-*.jpg")) and list((tmp_path / "media").rglob("*.mp4"))
        owner = open_engine(pg_url)
        with owner.connect() as conn:
            assert not inspect(conn).has_table("media")
        owner.dispose()
    finally:
        postgres.admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        postgres.admin(f"DROP ROLE IF EXISTS {role}")


_ROLES = itertools.count(1)


def _relations_and_rows(url: str) -> tuple[list[str], list[tuple]]:   # type: ignore[type-arg]
    """The tables and views of the database's public schema, and the rows of its 'events' table."""
    import psycopg

    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON "
                                            "n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN "
                                            "('r', 'v', 'S', 'i') ORDER BY 1")]
        rows = conn.execute("SELECT * FROM events ORDER BY 1").fetchall() if "events" in names else []
    return names, rows


@pytest.mark.parametrize("kind", ["another_programs_events", "another_programs_tables", "newer_schema"])
def test_a_database_it_must_not_write_is_refused_at_start_and_left_as_it_was(postgres: PostgresServer, pg_url: str,
                                                                             bikes_video: Path, kind: str) -> None:
    """Another program's database (its own 'events' table, or other tables, and no trackstream_schema) got
    trackstream_schema and the 'tracks' table added to it; with its own 'events' table every row then failed
    after the whole video had run (exit 3). A newer trackstream's history lost every row the same way."""
    import psycopg

    from tests.conftest import run_cli

    with psycopg.connect(pg_url, autocommit=True) as conn:
        if kind == "another_programs_events":
            conn.execute("CREATE TABLE events (day date, what text)")
            conn.execute("INSERT INTO events VALUES ('2026-12-01', 'dentist')")
        elif kind == "another_programs_tables":
            conn.execute("CREATE TABLE invoices (id serial PRIMARY KEY, total numeric)")
            conn.execute("CREATE VIEW big_invoices AS SELECT * FROM invoices WHERE total > 100")
        else:
            conn.execute("CREATE TABLE trackstream_schema (version integer NOT NULL)")
            conn.execute("INSERT INTO trackstream_schema VALUES (99)")
    before = _relations_and_rows(pg_url)
    done = run_cli("run", str(bikes_video), "--db", pg_url, "--max-frames", "12", "--imgsz", "160", "--quiet",
                   timeout=120)
    assert done.returncode == 2, done.stderr
    shown = pg_url.replace(PG_PASSWORD, "***")
    assert done.stderr.strip().splitlines() == [f"trackstream: error: --db: PostgreSQL at {shown} " + {
        "another_programs_events": "is another program's database (tables in schema public: events), not a "
                                   "trackstream event history; give --db a database of its own",
        "another_programs_tables": "is another program's database (tables in schema public: big_invoices, "
                                   "invoices), not a trackstream event history; give --db a database of its own",
        "newer_schema": "has schema version 99, newer than this trackstream knows (1): upgrade trackstream"}[kind]]
    assert _relations_and_rows(pg_url) == before


def test_a_server_that_comes_back_as_another_programs_database_gets_nothing_made_in_it(pg_url: str) -> None:
    """The start's check cannot see a server that is down; the writer's first connection checks the same before
    it makes trackstream's tables (here: a database that is there, written to without the start's check)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (day date, what text)")
        conn.execute("INSERT INTO events VALUES ('2026-12-01', 'dentist')")
    before = _relations_and_rows(pg_url)
    sink = StoreSink(StoreConfig(db=pg_url, flush_timeout=1.0), "cam")
    feed(sink, synthetic_results("cam")[:5])
    sink.close()
    assert sink.undelivered() > 0
    assert _relations_and_rows(pg_url) == before


def test_an_empty_database_an_extension_s_views_and_its_own_history_are_written(postgres: PostgresServer,
                                                                               pg_url: str,
                                                                               bikes_video: Path) -> None:
    """The check at start must not refuse a new database (one with an extension's views in public, as a
    template's pg_stat_statements leaves them, too) nor trackstream's own history, written run after run."""
    import psycopg

    from tests.conftest import run_cli

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    for _ in range(2):
        done = run_cli("run", str(bikes_video), "--db", pg_url, "--max-frames", "3", "--imgsz", "160", "--quiet",
                       timeout=120)
        assert done.returncode == 0, done.stderr
    assert [d["event"] for d in stored_docs(pg_url, "bikes")] == ["stream_started", "stream_ended"] * 2

"""`trackstream events`: searching a history from the command line, as a user types it."""

from __future__ import annotations

import contextlib

import csv
import io
import json
import threading
import time
from pathlib import Path

import pytest

from pipelines.sinks.store import StoreSink
from pipelines.store.config import StoreConfig
from tests.conftest import bind, run_cli
from tests.store.conftest import feed, synthetic_results


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, float]:
    """Two cameras: cam1 an hour ago, cam2 now."""
    db = str(tmp_path_factory.mktemp("history") / "events.db")
    now = time.time()
    for source, t0 in (("cam1", now - 3600), ("cam2", now - 5)):
        sink = StoreSink(StoreConfig(db=db), source)
        feed(sink, synthetic_results(source, t0=t0))
        sink.close()
    return db, now


def test_table_of_a_line_in_the_last_half_hour(history: tuple[str, float]) -> None:
    db, _ = history
    done = run_cli("events", "--db", db, "--since", "30m", "--line", "gate", timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "source", "event"]
    assert len(lines) == 5 and all(" cam2 " in ln and "line_crossed" in ln and "gate" in ln for ln in lines[1:])


@pytest.mark.parametrize("args, note", [
    (["--source", "cam3"], "trackstream events: no event matches: the history holds no source 'cam3' (its sources: "
                           "cam1, cam2)"),
    (["--source", "cam1", "--line", "gaet"], "trackstream events: no event matches these filters"),
])
def test_a_search_that_matches_nothing_says_so_and_names_the_sources_when_one_is_unknown(
        history: tuple[str, float], args: list[str], note: str) -> None:
    """It printed nothing at all (not even the table's header): a typo looked like an empty history."""
    db, _ = history
    for fmt in ("table", "csv"):
        done = run_cli("events", "--db", db, *args, "--format", fmt, timeout=60)
        assert done.returncode == 0 and done.stdout == "", done.stderr
        assert done.stderr.strip() == note


def test_jsonl_is_the_event_documents(history: tuple[str, float]) -> None:
    db, now = history
    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 1800))      # local ISO time
    done = run_cli("events", "--db", db, "--until", until, "--type", "track_started", "--format", "jsonl",
                   timeout=60)
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["track"]["id"] for d in docs] == [1, 2, 3, 4]
    assert all(d["source_id"] == "cam1" and d["schema_version"] == 1 and "id" in d for d in docs)


def test_csv_of_one_track(history: tuple[str, float]) -> None:
    db, _ = history
    done = run_cli("events", "--db", db, "--source", "cam2", "--track", "3", "--format", "csv", timeout=60)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows[0]["event"] == "track_started" and rows[-1]["event"] == "track_ended"
    assert {r["track"] for r in rows} == {"3"} and {r["source"] for r in rows} == {"cam2"}


def test_follow_prints_events_stored_after_it_started(history: tuple[str, float], tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    db, _ = history
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "events", "--db", db, "--follow", "--source",
                             "cam3", "--format", "jsonl"], stdout=subprocess.PIPE, text=True, cwd=str(REPO),
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        time.sleep(3.0)
        sink = StoreSink(StoreConfig(db=db), "cam3")
        docs = feed(sink, synthetic_results("cam3"))
        sink.close()
        assert proc.stdout is not None
        got = [json.loads(proc.stdout.readline()) for _ in docs]
    finally:
        proc.kill()
        proc.wait(10)
    assert [d["event"] for d in got] == [d["event"] for d in docs]


def test_follow_until_a_time_already_past_prints_and_ends(history: tuple[str, float]) -> None:
    """It printed the matches, then waited for new events forever: none could ever match."""
    db, _ = history
    done = run_cli("events", "--db", db, "--follow", "--until", "30m", "--type", "track_started", timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 + 4 and all(" cam1 " in ln for ln in done.stdout.splitlines()[1:])


def test_follow_never_prints_events_stored_before_it_started(tmp_path: Path) -> None:
    """cam2's events of an hour ago were stored after cam1's of now (a camera uploading late): --follow went on
    from the id of the newest event by time, and printed cam2's old events as if they had just happened."""
    db = str(tmp_path / "events.db")
    now = time.time()
    for source, t0 in (("cam1", now - 5), ("cam2", now - 3600)):
        sink = StoreSink(StoreConfig(db=db), source)
        feed(sink, synthetic_results(source, t0=t0))
        sink.close()
    done = run_cli("events", "--db", db, "--follow", "--limit", "2", "--until", repr(time.time() + 1.5),
                   "--format", "jsonl", timeout=60)
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(docs) == 2 and {d["source_id"] for d in docs} == {"cam1"}, docs


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since: expected a time like 2h"),
    (["--limit", "0"], "--limit: must be 1.."),
    (["--db-password-file", "pw.txt"], "--db-password-file: needs --db postgresql://"),   # was ignored silently
    (["--since", "1h", "--until", "2h"], "--until: must not be before --since"),   # named 'until:', as the API
    (["--track", str(2**63)], "--track: must be a track id (at most 9223372036854775807)"),  # was a traceback
])
def test_bad_input_is_one_line(history: tuple[str, float], args: list[str], message: str) -> None:
    db, _ = history
    done = run_cli("events", "--db", db, *args, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--since", "0001-01-01"], ["--until", "0001-01-01T00:00"], ["--since", "nan"],
                                  ["--until", "inf"]])
def test_a_time_out_of_range_is_one_line(history: tuple[str, float], args: list[str]) -> None:
    """Year 1 in local time is before the epoch's range (was a ValueError traceback); nan and inf matched nothing
    without a word."""
    db, _ = history
    done = run_cli("events", "--db", db, *args, timeout=60)
    assert done.returncode == 2 and f"{args[0]}: expected a time like 2h" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_url_of_another_database_is_refused_without_its_password(tmp_path: Path) -> None:
    """It was taken for a SQLite file name: 'no event database at mysql:/watcher:Hidden-Pw-77@db/history'."""
    done = run_cli("events", "--db", "mysql://watcher:Hidden-Pw-77@db/history", timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "got a mysql:// URL" in done.stderr, done.stderr
    assert "Hidden-Pw-77" not in done.stderr + done.stdout and len(done.stderr.strip().splitlines()) == 1


def test_a_password_with_a_raw_at_sign_is_refused_without_any_of_it(tmp_path: Path) -> None:
    """libpq cut 'Hidden@Pw77' at its '@' and its resolver error named the host 'Pw77@127.0.0.1'."""
    from pipelines.assets import demo_video

    url = "postgresql://watcher:Hidden@Pw77@127.0.0.1:1/history"
    for args in (["events", "--db", url], ["run", str(demo_video()), "--db", url]):
        done = run_cli(*args, timeout=60, cwd=tmp_path)
        assert done.returncode == 2 and "holds '@': write it percent-encoded (%40)" in done.stderr, done.stderr
        assert "Hidden" not in done.stderr + done.stdout and "Pw77" not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1


def test_another_programs_database_is_only_read(tmp_path: Path) -> None:
    """'events --db' on another program's SQLite file switched it to WAL mode: a reader changed the user's file."""
    import sqlite3

    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.commit()
    before = other.read_bytes()
    done = run_cli("events", "--db", str(other), timeout=60)
    assert done.returncode == 2 and "holds no event history" in done.stderr
    assert other.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_a_file_without_history_says_so(tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "other.db").close()
    done = run_cli("events", "--db", str(tmp_path / "other.db"), timeout=60)
    assert done.returncode == 2 and "holds no event history" in done.stderr
    assert (tmp_path / "other.db").stat().st_size == 0  # only read: it was given a database header (4 KiB)
    done = run_cli("events", "--db", str(tmp_path / "missing.db"), timeout=60)
    assert done.returncode == 2 and "no event database at" in done.stderr
    assert not (tmp_path / "missing.db").exists()
    done = run_cli("events", "--db", f"{tmp_path}/", timeout=60)
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("trackstream")]
    assert done.returncode == 2 and line.endswith(f"{tmp_path} is a folder: --db names the event database file "
                                                  f"in it (e.g. {tmp_path / 'events.db'})"), done.stderr


def test_a_file_that_is_not_a_database_is_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    """'--db tracks.jsonl' (the run's JSONL given for its database) was a DatabaseError traceback."""
    jsonl = tmp_path / "tracks.jsonl"
    jsonl.write_text('{"frame_index": 0, "tracks": []}\n' * 300)
    before = jsonl.read_bytes()
    done = run_cli("events", "--db", str(jsonl), timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"trackstream: error: cannot read SQLite {jsonl}: file is not a database"]
    assert jsonl.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["tracks.jsonl"]


def test_the_error_quoted_in_the_docs_is_the_one_printed(history: tuple[str, float]) -> None:
    from tests.test_docs_quotes import printed, quoted

    db, _ = history
    done = run_cli("events", "--db", db, "--since", "yesterday", timeout=60)
    assert quoted("events.md", "--since") == printed(done.stderr)


def test_a_history_of_a_newer_trackstream_is_refused_as_run_refuses_it(tmp_path: Path) -> None:
    """'run --db' refuses a history with a newer schema; 'events' printed its rows as if it knew what they mean."""
    import sqlite3

    db = str(tmp_path / "events.db")
    sink = StoreSink(StoreConfig(db=db), "cam1")
    feed(sink, synthetic_results("cam1"))
    sink.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE trackstream_schema SET version = 99")
    conn.close()
    done = run_cli("events", "--db", db, timeout=60)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.strip() == ("trackstream: error: --db: the event history has schema version 99, newer than "
                                   "this trackstream knows (1): upgrade trackstream")


def test_a_history_in_a_folder_it_may_not_write_is_read(tmp_path: Path) -> None:
    """An operator reading the service's history (a folder only the service may write), or a read-only copy:
    'cannot read SQLite ...: unable to open database file', since a WAL reader makes the -shm file beside it.
    Made for real with a read-only bind mount (needs root: fails under CI, skipped otherwise)."""
    folder, mount = tmp_path / "service", tmp_path / "readonly"
    folder.mkdir()
    sink = StoreSink(StoreConfig(db=str(folder / "events.db")), "cam1")
    docs = feed(sink, synthetic_results("cam1"))
    sink.close()
    with bind(folder, mount, read_only=True):
        done = run_cli("events", "--db", str(mount / "events.db"), "--format", "jsonl", "--limit", "1000",
                       timeout=60)
        assert done.returncode == 0, done.stderr
        assert [json.loads(line)["event"] for line in done.stdout.splitlines()] == [d["event"] for d in docs]
        assert sorted(p.name for p in mount.iterdir()) == ["events.db"]


def test_follow_of_a_history_in_a_folder_it_may_not_write_prints_what_the_service_stores_later(tmp_path: Path) -> None:
    """A read-only history without a -wal file is opened immutable (SQLite then takes the file for one that never
    changes); '--follow' begun while the service was stopped printed nothing of what it stored once started
    again. Made for real with a read-only bind mount (needs root: fails under CI, skipped otherwise)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    folder, mount = tmp_path / "service", tmp_path / "readonly"
    folder.mkdir()
    sink = StoreSink(StoreConfig(db=str(folder / "events.db")), "cam1")
    feed(sink, synthetic_results("cam1"))
    sink.close()
    proc = None
    with bind(folder, mount, read_only=True):
        try:
            proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "events", "--db",
                                     str(mount / "events.db"), "--follow", "--source", "cam2", "--format", "jsonl"],
                                    stdout=subprocess.PIPE, text=True, cwd=str(REPO),
                                    env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
            time.sleep(3.0)
            sink = StoreSink(StoreConfig(db=str(folder / "events.db")), "cam2")   # the service, started again
            docs = feed(sink, synthetic_results("cam2"))
            sink.close()
            assert proc.stdout is not None
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stdout),   # type: ignore[union-attr]
                                      daemon=True)
            reader.start()
            for _ in range(40):   # up to 10 s
                time.sleep(0.25)
                if len(lines) >= len(docs):
                    break
            got = [json.loads(line) for line in lines]
        finally:
            if proc is not None:
                proc.kill()
                proc.wait(10)
    assert [d["event"] for d in got] == [d["event"] for d in docs]

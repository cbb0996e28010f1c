"""The event history in a SQLite file: what a person reviewing an incident finds in it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipelines.sinks.store import StoreSink
from pipelines.store.config import StoreConfig
from pipelines.store.db import open_engine
from pipelines.store.query import EventFilter, search_events, track_events, track_rows
from tests.store.conftest import feed, synthetic_results


def run_into(db: str, media: Path | None, source: str = "cam", **options: object) -> list[dict]:
    sink = StoreSink(StoreConfig(db=db, media=str(media) if media else None, **options), source)  # type: ignore[arg-type]
    docs = feed(sink, synthetic_results(source))
    sink.close()
    assert sink.undelivered() == 0
    return docs


def test_every_event_is_stored_with_the_events_file_fields(tmp_path: Path) -> None:
    db = str(tmp_path / "history" / "events.db")
    docs = run_into(db, None)
    with sqlite3.connect(db) as conn:
        stored = [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM events ORDER BY id")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert stored == docs
    assert {d["event"] for d in stored} >= {"track_started", "line_crossed", "zone_entered", "track_ended",
                                            "stream_ended"}
    assert mode == "wal"


def test_one_row_per_track_with_zones_lines_path_and_times(tmp_path: Path) -> None:
    db = str(tmp_path / "events.db")
    docs = run_into(db, None, path_points=8)
    direction = {d["track"]["id"]: d["direction"] for d in docs if d["event"] == "line_crossed"}
    engine = open_engine(db)
    with engine.connect() as conn:
        rows = [track_rows(conn, "cam", tid) for tid in range(1, 5)]
    for tid, found in enumerate(rows, start=1):
        assert len(found) == 1, f"track {tid}"
        track = found[0]
        assert track["ended"] and track["end_reason"] == "removed"
        assert track["lines"] and track["lines"][0]["line"] == "gate"
        assert track["lines"][0]["direction"] == direction[tid]
        assert track["zones"]["yard"]["entries"] == 1 and track["zones"]["yard"]["seconds"] > 0.1
        assert 2 <= len(track["path"]) <= 8
        xs = [p[1] for p in track["path"]]
        assert xs == sorted(xs) and xs[-1] - xs[0] > 50      # the path goes left to right across the picture
        assert track["first_pts"] < track["last_pts"] and track["first_time"] < track["last_time"]
        assert track["first_stream_time"] is not None and 0.5 < track["best_confidence"] <= 1
        assert track["frames_seen"] == 27


def test_snapshots_are_the_tracks_best_views_and_clips_play(tmp_path: Path) -> None:
    db, media = str(tmp_path / "events.db"), tmp_path / "media"
    run_into(db, media, clip_before=0.5, clip_after=0.4, clip_max_seconds=1.2)
    engine = open_engine(db)
    with engine.connect() as conn:
        track = track_rows(conn, "cam", 2)[0]
        crossings = search_events(conn, EventFilter(kinds=("line_crossed", "zone_entered")))
    crop = cv2.imread(str(media / track["snapshot"]))
    frame = cv2.imread(str(media / track["snapshot_frame"]))
    assert crop is not None and frame is not None
    assert frame.shape[:2] == (72, 128) and crop.shape[0] >= 20      # the full frame, and a box-sized crop
    assert np.count_nonzero((frame[:, :, 2] > 200) & (frame[:, :, 1] < 60)) > 20   # the red box is drawn
    clips = {row["clip"] for row in crossings}
    assert None not in clips and 2 <= len(clips) < len(crossings)   # events close together share a clip
    for clip in clips:
        with av.open(str(media / clip)) as video:
            stream = video.streams.video[0]
            assert stream.codec_context.name == "h264"
            pictures = [f.to_ndarray(format="gray") for f in video.decode(stream)]
        assert len(pictures) >= 10
        assert float(np.abs(pictures[0].astype(int) - pictures[-1].astype(int)).mean()) > 1.0   # it moves
    assert not list(media.rglob("*.part"))


def test_search_filters_and_pages(tmp_path: Path) -> None:
    db = str(tmp_path / "events.db")
    run_into(db, None, source="cam1")
    run_into(db, None, source="cam2")
    engine = open_engine(db)
    with engine.connect() as conn:
        everything = search_events(conn, EventFilter(limit=1000))
        gate1 = search_events(conn, EventFilter(sources=("cam1",), line="gate"))
        track3 = search_events(conn, EventFilter(sources=("cam2",), track_id=3, kinds=("track_started",)))
        pages, before = [], None
        while True:
            page = search_events(conn, EventFilter(limit=7, before=before))
            if not page:
                break
            pages.extend(page)
            before = (page[-1]["time"], page[-1]["id"])
        t_mid = sorted(r["time"] for r in everything)[len(everything) // 2]
        later = search_events(conn, EventFilter(since=t_mid, limit=1000))
        full = track_rows(conn, "cam1", 1)[0]
        own = track_events(conn, full)
    assert {r["source_id"] for r in everything} == {"cam1", "cam2"}
    assert len(gate1) == 4 and all(r["line"] == "gate" and r["source_id"] == "cam1" for r in gate1)
    assert [r["event"] for r in track3] == ["track_started"] and track3[0]["track_id"] == 3
    assert [r["id"] for r in pages] == [r["id"] for r in everything]          # every row once, newest first
    assert all(r["time"] >= t_mid for r in later) and len(later) >= len(everything) // 2
    assert [r["event"] for r in own][0] == "track_started" and own[-1]["event"] == "track_ended"


def test_a_bad_row_is_refused_alone(tmp_path: Path) -> None:
    from pipelines.store.writer import StoreWriter

    db = str(tmp_path / "events.db")
    writer = StoreWriter(db)
    good = {"source_id": "cam", "event": "stream_started", "time": 1.0, "pts": None, "stream_time": None,
            "frame_index": None, "track_id": None, "class_name": None, "zone": None, "line": None,
            "direction": None, "clip": None, "doc": "{}", "replay_key": None}
    writer.put("event", good)
    writer.put("event", {**good, "doc": None})            # NOT NULL: the database refuses this one
    writer.put("event", {**good, "time": 2.0})
    stats = writer.close(5.0)
    with sqlite3.connect(db) as conn:
        times = [t for (t,) in conn.execute("SELECT time FROM events ORDER BY id")]
    assert times == [1.0, 2.0] and stats.dropped == 1


@pytest.mark.parametrize("db", ["", "redis://host/0", "mysql://x"])
def test_a_database_that_is_neither_sqlite_nor_postgresql_is_refused(db: str) -> None:
    from tracker.configutil import ConfigError

    with pytest.raises(ConfigError, match="db"):
        StoreConfig(db=db)


def test_media_without_a_database_is_refused_naming_the_key() -> None:
    from tests.conftest import run_cli

    done = run_cli("run", "clip.mp4", "--media", "media/", timeout=60)
    assert done.returncode == 2 and "store.media: needs a database" in done.stderr


def test_frames_processed_again_after_a_restart_do_not_store_their_events_twice(tmp_path: Path) -> None:
    from pipelines.frames import FrameResult

    db = str(tmp_path / "events.db")
    frames = [item for item in synthetic_results("cam") if isinstance(item, FrameResult)]
    first = StoreSink(StoreConfig(db=db), "cam")
    feed(first, frames[:40])
    first.close()
    again = StoreSink(StoreConfig(db=db), "cam")       # a restart from a snapshot taken at frame 30
    feed(again, frames[30:])
    again.close()
    expected = [e for f in frames for e in f.events]
    with sqlite3.connect(db) as conn:
        stored = [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM events ORDER BY id")]
    assert stored == [dict(e) for e in expected]


@pytest.mark.parametrize("db, words", [("sqlite://events.db", "sqlite:///events.db"),
                                       ("sqlite:///:memory:", "keeps nothing after the run"),
                                       (":memory:", "keeps nothing after the run")])
def test_a_sqlite_url_that_names_no_file_is_refused(tmp_path: Path, db: str, words: str) -> None:
    """'sqlite://events.db' (two slashes) made a folder named 'sqlite:' in the working folder and the history went
    there ('trackstream events --db sqlite://events.db' then found none); ':memory:' ran the whole video into a
    database that vanished at the end, exit 0."""
    from tests.conftest import run_cli

    for command in (["run", "clip.mp4", "--db", db], ["events", "--db", db]):
        done = run_cli(*command, cwd=tmp_path, timeout=60)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []

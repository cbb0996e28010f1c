"""The web view's history API over a stored history: what a client (or the history page) gets."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import quote

import pytest

from pipelines.sinks.store import StoreSink
from pipelines.store.config import StoreConfig
from pipelines.web.config import HttpConfig
from pipelines.web.history import History
from pipelines.web.server import WebView
from tests.conftest import free_port
from tests.store.conftest import feed, synthetic_results

TOKEN = "hist-Token-9"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> StoreConfig:
    root = tmp_path_factory.mktemp("history")
    config = StoreConfig(db=str(root / "events.db"), media=str(root / "media"), clip_before=0.5, clip_after=0.4,
                         clip_max_seconds=1.2)
    for source in ("cam1", "cam 2"):
        sink = StoreSink(config, source)
        feed(sink, synthetic_results(source))
        sink.close()
    (root / "secret.txt").write_text("not media")
    (root / "clip-1-020000-100001.mp4").write_bytes(b"outside the media folder")
    return config


def recording_since(config: StoreConfig, when: float) -> None:
    """Make (or migrate) the history of ``config`` as a run does, as if its ``media`` table were made at ``when``
    (the store records the files it writes since then)."""
    from pipelines.store.db import open_engine
    from pipelines.store.schema import MEDIA_SINCE, media, migrate

    engine = open_engine(config.db or "", writer=True)
    with engine.begin() as conn:
        migrate(conn)
        assert conn.execute(media.update().where(media.c.path == MEDIA_SINCE).values(written=when)).rowcount == 1
    engine.dispose()


def _serve(stored: StoreConfig, token: Optional[str]) -> Iterator[WebView]:
    view = WebView(HttpConfig(listen=f"127.0.0.1:{free_port()}", token=token), lambda: [],
                   history=History(stored)).start()
    try:
        yield view
    finally:
        view.stop()


@pytest.fixture(scope="module")
def server(stored: StoreConfig) -> Iterator[WebView]:
    yield from _serve(stored, None)


@pytest.fixture(scope="module")
def locked(stored: StoreConfig) -> Iterator[WebView]:
    yield from _serve(stored, TOKEN)


def get(view: WebView, path: str, headers: Optional[dict[str, str]] = None) -> tuple[int, dict[str, str], bytes]:
    """A raw GET (the path is sent exactly as given: no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(view: WebView, path: str) -> Any:
    status, _, body = get(view, path)
    assert status == 200, body
    return json.loads(body)


def test_events_are_filtered_and_paged(server: WebView) -> None:
    everything = get_json(server, "/api/events?limit=500")["events"]
    gate = get_json(server, "/api/events?source=cam1&line=gate")["events"]
    assert {e["source_id"] for e in everything} == {"cam1", "cam 2"}
    assert len(gate) == 4 and all(e["line"] == "gate" and e["source_id"] == "cam1" for e in gate)
    assert [e["time"] for e in gate] == sorted((e["time"] for e in gate), reverse=True)
    seen, cursor = [], None
    while True:
        page = get_json(server, "/api/events?limit=9" + (f"&cursor={quote(cursor)}" if cursor else ""))
        seen += [e["id"] for e in page["events"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything]
    kinds = get_json(server, "/api/events?type=zone_entered&type=line_crossed&source=cam%202")["events"]
    assert {e["event"] for e in kinds} == {"zone_entered", "line_crossed"}
    assert all(e["clip"]["available"] for e in kinds)


def test_clips_and_snapshots_are_served(server: WebView) -> None:
    event = get_json(server, "/api/events?source=cam1&type=line_crossed&track=2")["events"][0]
    status, headers, body = get(server, event["clip"]["url"])
    assert status == 200 and headers["Content-Type"] == "video/mp4" and body[4:8] == b"ftyp"
    status, headers, _ = get(server, event["clip"]["url"], {"Range": "bytes=0-99"})
    assert status == 206 and headers["Content-Range"].startswith("bytes 0-99/")     # seeking in a browser
    track = get_json(server, event["track_url"])
    assert track["track_id"] == 2 and track["lines"][0]["line"] == "gate"
    assert track["events"][0]["event"] == "track_started" and track["events"][-1]["event"] == "track_ended"
    status, headers, body = get(server, track["snapshot"]["url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert event["snapshot"] == track["snapshot"]                       # the event's thumbnail is its track's
    assert track["clips"] and track["clips"][0]["available"]


@pytest.mark.parametrize("path", [
    "/media/../events.db", "/media/..%2Fevents.db", "/media/%2e%2e/secret.txt", "/media/cam1/../../secret.txt",
    "/media/%2Fetc%2Fpasswd", "/media//etc/passwd", "/media/..%2Fclip-1-020000-100001.mp4",
    "/media/cam1/notes.txt", "/media/cam1", "/media/cam1/20261206/link-out.mp4", "/media/cam1/..%5Csecret.txt",
])
def test_nothing_outside_the_media_folder_is_served(server: WebView, stored: StoreConfig, path: str) -> None:
    media = Path(stored.media or "")
    link = next(media.glob("cam1/*")) / "clip-9-020000-100009.mp4"
    if not link.exists():
        os.symlink(media.parent / "clip-1-020000-100001.mp4", link)     # a link named like a clip, leading out
    status, _, body = get(server, path.replace("link-out.mp4", link.name).replace("20261206", link.parent.name))
    assert status in (400, 403, 404), path
    assert b"outside the media folder" not in body and b"not media" not in body and b"SQLite" not in body


def test_a_clip_deleted_by_retention_leaves_its_row_saying_so(server: WebView, stored: StoreConfig) -> None:
    event = get_json(server, "/api/events?source=cam%202&type=zone_entered&limit=1")["events"][0]
    (Path(stored.media or "") / event["clip"]["url"][len("/media/"):].replace("%20", " ")).unlink()
    again = get_json(server, "/api/events?source=cam%202&type=zone_entered&limit=1")["events"][0]
    assert again["id"] == event["id"] and again["clip"]["available"] is False
    assert again["clip"]["state"] == "deleted"     # it was written, then removed: not 'pending', not 'missing'
    assert get(server, event["clip"]["url"])[0] == 404


def test_bad_parameters_are_one_clear_error(server: WebView) -> None:
    for query, words in (("since=yesterday", "since"), ("limit=0", "limit"), ("track=x", "whole numbers"),
                         ("cursor=nope", "cursor")):
        status, _, body = get(server, f"/api/events?{query}")
        assert status == 400 and words in json.loads(body)["error"]
    for limit in ("-1", "501"):   # the page's bound (docs, OpenAPI), not the store's 1..10000; 501 was cut to 500
        status, _, body = get(server, f"/api/events?limit={limit}")
        assert status == 400 and json.loads(body)["error"] == f"limit: must be 1..500, got {limit}"
    assert get(server, "/api/tracks/cam1/999")[0] == 404
    huge = str(2**63)   # beyond the database's INTEGER: was a 500 and a traceback in the run's log
    status, _, body = get(server, f"/api/events?track={huge}")
    assert status == 400 and json.loads(body)["error"].startswith("track: must be a track id")
    assert get(server, f"/api/tracks/cam1/{huge}")[0] == 404


def test_the_openapi_document_covers_the_routes(server: WebView) -> None:
    doc = get_json(server, "/api/openapi.json")
    assert doc["openapi"].startswith("3.") and set(doc["paths"]) >= {"/api/events", "/api/tracks/{source}/{id}",
                                                                     "/media/{path}", "/api/history/sources"}
    for param in doc["paths"]["/api/events"]["get"]["parameters"]:       # every documented filter is accepted
        example = {"integer": "1", "string": "1h" if param["name"] in ("since", "until") else "x"}
        schema = param["schema"].get("items", param["schema"])
        value = schema.get("enum", [example[schema["type"]]])[0]
        if param["name"] == "cursor":
            value = "1e12:99999999"
        status, _, body = get(server, f"/api/events?{param['name']}={quote(str(value))}")
        assert status == 200, (param["name"], body)


def test_the_live_status_stream_still_answers_on_api_events(server: WebView) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    first = response.read1(200) if hasattr(response, "read1") else response.read(20)
    conn.close()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    assert first.startswith(b"retry:")


def test_everything_new_needs_the_token(locked: WebView) -> None:
    for path in ("/api/events", "/api/tracks/cam1/1", "/api/openapi.json", "/api/history/sources", "/history"):
        assert get(locked, path)[0] == 401, path
    event = json.loads(get(locked, "/api/events?source=cam1&type=line_crossed&limit=1",
                           {"Authorization": f"Bearer {TOKEN}"})[2])["events"][0]
    assert get(locked, event["clip"]["url"])[0] == 401
    assert get(locked, event["clip"]["url"], {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(locked, "/api/events", {"Authorization": "Bearer wrong"})[0] == 401


def test_an_event_links_to_its_own_track_not_an_earlier_runs_with_the_same_id(tmp_path: Path) -> None:
    """Track ids start again in a new run: the second run's track 1 (still alive, no snapshot yet) got the first
    run's track 1's picture as thumbnail, and every event's track_url opened the newest track 1."""
    config = StoreConfig(db=str(tmp_path / "events.db"), media=str(tmp_path / "media"))
    first = StoreSink(config, "cam1")
    feed(first, synthetic_results("cam1", t0=1_000_000.0))
    first.close()
    second = StoreSink(config, "cam1")
    feed(second, synthetic_results("cam1", n_frames=14, t0=1_000_100.0)[:14])   # track 1 alive, no stream end
    for view in _serve(config, None):
        deadline = time.monotonic() + 10
        while not get_json(view, "/api/events?source=cam1&type=line_crossed&track=1&since=1000050")["events"]:
            assert time.monotonic() < deadline, "the second run's rows were not written"
            time.sleep(0.05)
        old, new = (get_json(view, f"/api/events?source=cam1&type=line_crossed&track=1&{when}")["events"][0]
                    for when in ("until=1000050", "since=1000050"))
        assert old["snapshot"]["available"] and new["snapshot"] is None
        old_track, new_track = get_json(view, old["track_url"]), get_json(view, new["track_url"])
        assert old_track["first_time"] < 1_000_050 < new_track["first_time"]
        assert old_track["snapshot"] == old["snapshot"] and old_track["earlier"] == 0
        assert [e["time"] for e in old_track["events"] if e["event"] == "line_crossed"] == [old["time"]]
        assert old_track["events"][-1]["event"] == "track_ended" and not new_track["ended"]
    second.close()


def test_the_camera_list_holds_every_source_the_store_knows(tmp_path: Path) -> None:
    """A camera that stored events but no track yet (nothing seen, or only its stream events) was missing from the
    history's camera list, which listed only sources with stored tracks."""
    config = StoreConfig(db=str(tmp_path / "events.db"))
    busy, quiet = StoreSink(config, "gate-cam"), StoreSink(config, "quiet-cam")
    feed(busy, synthetic_results("gate-cam"))
    docs = feed(quiet, synthetic_results("quiet-cam", n_frames=0))   # started and ended, saw nothing
    busy.close()
    quiet.close()
    assert docs and all("track" not in d for d in docs)
    for view in _serve(config, None):
        assert get_json(view, "/api/history/sources")["sources"] == ["gate-cam", "quiet-cam"]
        assert get_json(view, "/api/events?source=quiet-cam&limit=5")["events"]


def test_a_clip_not_written_yet_is_pending_and_one_never_written_is_missing(tmp_path: Path) -> None:
    """A clip is written seconds after its event (its post-event part is recorded first): the API called it
    unavailable like a deleted one, and the page said it was deleted. A clip whose run stopped first (an hour
    ago) was never written: it is 'missing', not 'deleted' either."""
    config = StoreConfig(db=str(tmp_path / "events.db"), media=str(tmp_path / "media"))
    recording_since(config, time.time() - 7200)        # a history that has recorded its files for 2 hours
    sinks = []
    for source, t0 in (("now-cam", None), ("old-cam", time.time() - 3600)):
        items = synthetic_results(source, t0=t0)
        first = next(i for i, item in enumerate(items) if any(e["event"] in config.clip_events for e in item.events))
        sink = StoreSink(config, source)
        feed(sink, items[:first + 1])             # the event, not the 2 s after it: the clip is still open
        sinks.append((sink, items[first + 1:]))
    for view in _serve(config, None):
        def clip(source: str, view: WebView = view) -> Any:
            status, _, body = get(view, f"/api/events?source={source}&type=zone_entered&type=line_crossed")
            if status == 404:   # "no history stored yet": the writer has not made the tables yet
                return None
            assert status == 200, body
            found = json.loads(body)["events"]
            return found[-1]["clip"] if found else None

        deadline = time.monotonic() + 10
        while not (clip("now-cam") and clip("old-cam")):
            assert time.monotonic() < deadline, "the events were not written"
            time.sleep(0.05)
        assert clip("now-cam")["state"] == "pending" and clip("now-cam")["available"] is False
        assert clip("old-cam")["state"] == "missing"
        sink, rest = sinks[0]
        feed(sink, rest)
        sink.close()
        assert clip("now-cam")["state"] == "ready" and get(view, clip("now-cam")["url"])[0] == 200
    sinks[1][0].close()


def test_a_clip_retention_deleted_before_the_store_recorded_its_files_is_not_called_never_written(
        tmp_path: Path) -> None:
    """A history from before the ``media`` table (or one whose login may not make it) holds no record of the files
    it wrote. Its clips that retention deleted were all called 'missing' (never written: the run stopped
    first) once a newer trackstream made the table: after an upgrade, every old deleted clip said its run had
    crashed. What the store could not record is 'deleted' as before; a clip due after it began to record
    and never written is still 'missing'."""
    import sqlite3

    config = StoreConfig(db=str(tmp_path / "events.db"), media=str(tmp_path / "media"), clip_before=0.5,
                         clip_after=0.4, clip_max_seconds=1.2)
    old = StoreSink(config, "old-cam")
    feed(old, synthetic_results("old-cam", t0=time.time() - 7200))
    old.close()
    with sqlite3.connect(config.db or "") as conn:   # the history as a trackstream before the media table left it
        conn.execute("DROP TABLE media")
    for clip in (tmp_path / "media").rglob("clip-*.mp4"):
        clip.unlink()                                   # media retention, then
    recording_since(config, time.time() - 5400)        # the upgraded trackstream made the table 90 minutes ago
    killed = StoreSink(config, "new-cam")
    items = synthetic_results("new-cam", t0=time.time() - 3600)
    first = next(i for i, item in enumerate(items) if any(e["event"] in config.clip_events for e in item.events))
    feed(killed, items[:first + 1])                     # its clip is never finished: the run is "killed"
    killed._writer.close(5.0)
    try:
        for view in _serve(config, None):
            old_clips = {e["clip"]["state"] for e in get_json(view, "/api/events?source=old-cam")["events"]
                         if e["clip"]}
            new_clips = {e["clip"]["state"] for e in get_json(view, "/api/events?source=new-cam")["events"]
                         if e["clip"]}
            assert old_clips == {"deleted"}
            assert new_clips == {"missing"}
    finally:   # its media thread too, with nothing left to write: a thread left running fails test_api's checks
        if killed._worker is not None:
            killed._worker.close(5.0)

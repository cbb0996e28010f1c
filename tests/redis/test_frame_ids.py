"""Frame-derived entry ids (runs with state) and snapshots kept in Redis (``--state redis://``), against a
real redis-server."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from pipelines.engine.state import RedisStateStore, open_store
from pipelines.errors import UserError
from pipelines.frames import StatusKind, StreamStatus
from pipelines.processing.processor import StateError
from pipelines.sinks.redis_conn import RedisConfig
from pipelines.sinks.redis_sink import RedisSink
from tests.redis.conftest import scenario

EPOCH = 1_800_000_000.0


def _event(r, k: int) -> dict:
    return {"schema_version": 1, "event": "line_crossed", "source_id": "cam", "frame_index": r.frame.index,
            "pts": r.frame.pts, "time": r.frame.capture_time, "track": {"id": k}}


def _results(n: int = 40):
    """As a processor makes them: ``stream_time`` = the stream's start + pts; every third frame has two events."""
    return [dataclasses.replace(r, stream_time=round(EPOCH + r.frame.pts, 3),
                                events=(_event(r, 1), _event(r, 2)) if r.frame.index % 3 == 0 else ())
            for r in scenario(n)]


def _publish(url: str, results, frame_ids: bool) -> None:
    sink = RedisSink(RedisConfig(url=url, flush_timeout=5.0), "cam", frame_ids=frame_ids)
    for r in results:
        sink.write(r)
    sink.close()


def test_a_replayed_frame_is_stored_once(redis_server, caplog):
    results = _results(40)
    client = redis_server.client()
    _publish(redis_server.url, results[:30], frame_ids=True)
    first_events = client.xlen("trackstream:cam:events")
    with caplog.at_level(logging.INFO, logger="trackstream.redis"):
        _publish(redis_server.url, results[20:], frame_ids=True)  # a restarted worker replays frames 20..29
    entries = client.xrange("trackstream:cam:frames")
    indexes = [json.loads(f["data"])["frame_index"] for _, f in entries]
    assert indexes == list(range(40))
    assert [entry_id for entry_id, _ in entries] == [f"{int(round((EPOCH + i / 25.0) * 1000))}-0" for i in range(40)]
    events = [json.loads(f["data"]) for _, f in client.xrange("trackstream:cam:events")]
    keys = [(e["event"], e["frame_index"], e.get("track", {}).get("id")) for e in events]
    assert len(keys) == len(set(keys)) == 2 * len(range(0, 40, 3)) and first_events == 2 * len(range(0, 30, 3))
    assert "entries were already in Redis" in caplog.text


def test_without_state_a_replayed_frame_is_published_again(redis_server):
    results = _results(40)
    _publish(redis_server.url, results[:30], frame_ids=False)
    _publish(redis_server.url, results[20:], frame_ids=False)
    assert redis_server.client().xlen("trackstream:cam:frames") == 50


def test_status_events_after_replayed_frames_are_kept(redis_server):
    results = _results(10)
    _publish(redis_server.url, results, frame_ids=True)
    sink = RedisSink(RedisConfig(url=redis_server.url, flush_timeout=5.0), "cam", frame_ids=True)
    sink.status(StreamStatus(StatusKind.RESUMED, "cam", EPOCH + 100, events=(
        {"schema_version": 1, "event": "stream_resumed", "source_id": "cam", "frame_index": None, "pts": None,
         "time": EPOCH + 100, "detail": {}},)))
    sink.close()
    last = redis_server.client().xrevrange("trackstream:cam:events", count=1)[0]
    assert json.loads(last[1]["data"])["event"] == "stream_resumed"


def test_snapshots_in_redis(redis_server):
    store = open_store(redis_server.url.replace("/0", "/3"))
    assert isinstance(store, RedisStateStore)
    assert store.load("cam") is None
    store.save("cam", {"n": 1}, {"jsonl": {"path": "/x", "bytes": 5}})
    again = RedisStateStore(redis_server.url.replace("/0", "/3"))  # another node
    doc = again.load("cam")
    assert doc is not None and doc["processor"] == {"n": 1} and doc["outputs"]["jsonl"]["bytes"] == 5
    assert redis_server.client().get("trackstream:state:cam") is None  # db 3, not 0
    assert [store.note_start("cam", False), store.note_start("cam", True), again.note_start("cam", True)] == [0, 1, 2]
    redis_server.client().execute_command("SELECT", 3)
    import redis

    raw = redis.Redis(port=redis_server.port, db=3)
    raw.set("trackstream:state:other", json.dumps({"format": "trackstream.state", "version": 1,
                                                     "source_id": "cam", "processor": {}, "outputs": {}}))
    with pytest.raises(StateError, match="malformed or of another source"):
        store.load("other")
    raw.set("trackstream:state:bad", b"{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        store.load("bad")


def test_unreachable_state_redis_is_one_line_without_the_password(redis_password_server):
    url = redis_password_server.url.replace("Sup3r-Secret-pw", "wrong-pw")
    with pytest.raises(UserError) as refused:
        RedisStateStore(url)
    assert "wrong-pw" not in str(refused.value) and "\n" not in str(refused.value)
    redis_password_server.stop()
    with pytest.raises(UserError) as down:
        RedisStateStore(redis_password_server.url, timeout=1.0)
    assert "cannot reach Redis" in str(down.value) and "Sup3r-Secret-pw" not in str(down.value)

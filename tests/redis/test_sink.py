"""The Redis sink publishes what a subscriber in another process sees: every frame, every track's life."""

from __future__ import annotations

import json
import time
from collections import Counter

from pipelines.frames import StatusKind, StreamStatus
from pipelines.sinks.redis_conn import RedisConfig
from pipelines.sinks.redis_sink import RedisSink
from tests.redis.conftest import WithEvents


def _publish(sink: WithEvents, results, source: str = "cam") -> None:  # type: ignore[no-untyped-def]
    sink.status(StreamStatus(StatusKind.STARTED, source, time.time()))
    for r in results:
        sink.write(r)
    sink.status(StreamStatus(StatusKind.ENDED, source, time.time(), pts=results[-1].frame.pts))
    sink.close()


def test_subscriber_process_sees_each_frame_once_and_each_track_start_and_end(
        redis_server, cli_processes, synth, validators):  # type: ignore[no-untyped-def]
    sub = cli_processes("subscribe", "--redis", redis_server.url, "--source", "cam", "--frames",
                        "--from", "0", "--until-ended", "--idle-exit", "60")
    results = synth.scenario()
    _publish(WithEvents(RedisSink(RedisConfig(url=redis_server.url), "cam"), "cam"), results)
    assert sub.finish(60) == 0, sub.stderr
    docs = sub.docs()
    frames = [d["data"] for d in docs if d["kind"] == "frames"]
    events = [d["data"] for d in docs if d["kind"] == "events"]
    assert [f["frame_index"] for f in frames] == list(range(len(results)))
    ids_in_frames = {t["id"] for f in frames for t in f["tracks"]}
    started = Counter(e["track"]["id"] for e in events if e["event"] == "track_started")
    ended = Counter(e["track"]["id"] for e in events if e["event"] == "track_ended")
    assert started == ended == Counter(ids_in_frames)
    assert [e["event"] for e in events][0] == "stream_started" and events[-1]["event"] == "stream_ended"
    for d in docs:
        errors = [e.message for e in validators[d["kind"]].iter_errors(d["data"])]
        assert not errors, (d, errors)
        assert d["source"] == d["data"]["source_id"] == "cam"
        assert d["stream"] == f"trackstream:cam:{d['kind']}"
    assert all(f["publish_time"] >= f["capture_time"] for f in frames)


def test_stream_names_retention_and_id_override(redis_server, synth):  # type: ignore[no-untyped-def]
    cfg = RedisConfig(url=redis_server.url, source_id="gate-7", frames_stream="cams:{source}:f",
                      events_stream="cams:{source}:e", frames_maxlen=100)
    results = [synth.make_result(i, {1: [0, 0, 5, 5]}) for i in range(600)]
    _publish(WithEvents(RedisSink(cfg, "cam"), "cam"), results)
    r = redis_server.client()
    assert sorted(r.keys("*")) == ["cams:gate-7:e", "cams:gate-7:f"]
    # MAXLEN ~ trims whole macro nodes (100 entries each): about 100 kept, never all 600
    assert 100 <= r.xlen("cams:gate-7:f") < 300
    last = r.xrevrange("cams:gate-7:f", count=1)[0][1]["data"]
    assert '"frame_index":599' in last and '"source_id":"gate-7"' in last


def test_events_only_when_frames_are_off(redis_server, synth):  # type: ignore[no-untyped-def]
    cfg = RedisConfig(url=redis_server.url, publish_frames=False)
    _publish(WithEvents(RedisSink(cfg, "cam"), "cam"), synth.scenario(n_frames=10))
    r = redis_server.client()
    assert r.keys("*") == ["trackstream:cam:events"] and r.xlen("trackstream:cam:events") > 2


def test_publishing_is_batched_and_fast(redis_server, synth):  # type: ignore[no-untyped-def]
    """write() only queues: 300 frames of 50 tracks take well under the time of 300 round trips."""
    results = [synth.make_result(i, {k: [k, k, k + 9, k + 9] for k in range(1, 51)}) for i in range(300)]
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url), "cam"), "cam")
    worst = 0.0
    for r in results:
        t0 = time.perf_counter()
        sink.write(r)
        worst = max(worst, time.perf_counter() - t0)
    sink.close()
    assert sink.stats.published == 300 + 50 + 50 and sink.stats.dropped == 0
    assert redis_server.client().xlen("trackstream:cam:frames") == 300
    assert worst < 0.25   # never waits for the network (generous for a loaded 2-core machine)


def test_counts_stream_keeps_the_counts_as_they_change_and_ends_with_the_summarys(
        redis_server, validators):  # type: ignore[no-untyped-def]
    """A walker crosses a predicting line into a zone and is inside when the stream ends. The counts stream
    gets an entry when a count or a warning changes, not every frame while a warning counts down; its last
    entry comes after the exit that the end of the stream made and equals the processor's final counts. Real
    ``StreamProcessor`` and tracker, real redis-server."""
    from pipelines.processing.processor import StreamProcessor
    from pipelines.settings import SourceSettings
    from tests.test_forecast import GATE, SHOP, _walk

    proc = StreamProcessor(SourceSettings("cam", lines=(GATE,), zones=(SHOP,)), {0: "person"})
    sink = RedisSink(RedisConfig(url=redis_server.url), "cam")
    sink.status(proc.status(StreamStatus(StatusKind.STARTED, "cam", 1000.0)))
    walk = _walk([(100.0 + 6.0 * i, 400.0) for i in range(50)])
    for frame, dets in walk:
        sink.write(proc.process(frame, dets))
    ended = proc.status(StreamStatus(StatusKind.ENDED, "cam", 1005.0, pts=4.9))
    sink.status(ended)
    sink.close()
    entries = [json.loads(fields["data"]) for _, fields in redis_server.client().xrange("trackstream:cam:counts")]
    for doc in entries:
        assert not [e.message for e in validators["counts"].iter_errors(doc)], doc
    assert 3 <= len(entries) < len(walk) // 2
    warned = [doc for doc in entries if doc["predictions"]]
    assert {p.get("line") or p.get("zone") for doc in warned for p in doc["predictions"]} == {"gate", "shop"}
    assert entries[-1]["lines"]["gate"] == {"left_to_right": 1, "right_to_left": 0, "predicted_pending": 0}
    final = ended.counts
    assert final is not None
    shop = entries[-1]["zones"]["shop"]
    assert (shop["occupancy"], shop["entries"], shop["exits"]) == (0, 1, 1) == \
        (final.zones["shop"].occupancy, final.zones["shop"].entries, final.zones["shop"].exits)
    assert any(doc["zones"]["shop"]["occupancy"] == 1 for doc in entries)
    assert entries[-1]["frame_index"] == walk[-1][0].index and entries[-1]["predictions"] == []

"""Redis going away mid-run: the pipeline never waits, entries are buffered and delivered in order."""

from __future__ import annotations

import logging
import time

import pytest

from pipelines.frames import StatusKind, StreamStatus
from pipelines.sinks.redis_conn import RedisConfig
from pipelines.sinks.redis_sink import RedisSink
from tests.redis.conftest import WithEvents


def _timed_writes(sink: WithEvents, results) -> float:  # type: ignore[no-untyped-def]
    worst = 0.0
    for r in results:
        t0 = time.perf_counter()
        sink.write(r)
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(0.005)
    return worst


def test_redis_killed_and_restarted_mid_run_loses_nothing(
        redis_server, cli_processes, synth, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="trackstream.redis")
    sub = cli_processes("subscribe", "--redis", redis_server.url, "--source", "cam", "--frames", "--from", "0",
                        "--until-ended", "--idle-exit", "60")
    results = synth.scenario(n_frames=90)
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url), "cam"), "cam")
    sink.status(StreamStatus(StatusKind.STARTED, "cam", time.time()))
    _timed_writes(sink, results[:30])
    sub.wait_for(lambda docs: sum(d["kind"] == "frames" for d in docs) == 30)
    redis_server.stop()                                   # SIGKILL: Redis is gone
    worst = _timed_writes(sink, results[30:60])           # the pipeline goes on meanwhile
    time.sleep(1.0)
    assert sink.stats.buffered > 0 and not sink.stats.connected
    redis_server.start()                                  # same port, empty (no persistence)
    _timed_writes(sink, results[60:])
    sink.status(StreamStatus(StatusKind.ENDED, "cam", time.time()))
    sink.close()
    assert sub.finish(60) == 0, sub.stderr
    frames = [d["data"]["frame_index"] for d in sub.docs() if d["kind"] == "frames"]
    assert frames == list(range(90))                      # all, once each, in order
    assert sink.stats.dropped == 0 and sink.stats.outages == 1
    assert worst < 0.25                                   # write() never waited for the dead server
    messages = [r.getMessage() for r in caplog.records]
    assert any("unreachable" in m for m in messages) and any("reachable again" in m for m in messages)


def test_tiny_buffer_keeps_the_newest_and_counts_the_dropped(
        redis_server, synth, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="trackstream.redis")
    redis_server.stop()
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, buffer_max_entries=10), "cam"), "cam")
    for i in range(30):
        sink.write(synth.make_result(i, {}))             # no tracks: one frames entry each, no events
    assert sink.stats.buffered == 10 and sink.stats.dropped == 20
    redis_server.start()
    sink.close()
    stored = [e[1]["data"] for e in redis_server.client().xrange("trackstream:cam:frames")]
    assert [f'"frame_index":{i},' in d for i, d in zip(range(20, 30), stored)] == [True] * 10
    assert len(stored) == 10 and sink.stats.dropped == 20 and sink.stats.published == 10
    assert any("dropping the oldest" in r.getMessage() for r in caplog.records)


def test_undeliverable_entries_at_close_are_counted_not_hung_on(redis_server, synth):  # type: ignore[no-untyped-def]
    redis_server.stop()
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, flush_timeout=0.5), "cam"), "cam")
    for i in range(5):
        sink.write(synth.make_result(i, {}))
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < 5
    assert sink.stats.dropped == 5 and sink.stats.published == 0


@pytest.mark.parametrize("flush_timeout", [10.0])
def test_entries_written_while_down_at_start_arrive_when_redis_comes(
        redis_server, synth, flush_timeout):  # type: ignore[no-untyped-def]
    redis_server.stop()
    config = RedisConfig(url=redis_server.url, on_unreachable="wait", flush_timeout=flush_timeout)
    sink = WithEvents(RedisSink(config, "cam"), "cam")
    for r in synth.scenario(n_frames=20):
        sink.write(r)
    redis_server.start()
    sink.close()
    assert redis_server.client().xlen("trackstream:cam:frames") == 20 and sink.stats.dropped == 0


def test_reconnect_attempts_back_off_while_writes_go_on(redis_server):  # type: ignore[no-untyped-def]
    from pipelines.sinks.redis_conn import connect
    from pipelines.sinks.redis_publisher import StreamPublisher

    redis_server.stop()
    attempts = []

    def factory():  # type: ignore[no-untyped-def]
        client = connect(redis_server.url, 0.5)
        ping = client.ping
        client.ping = lambda: (attempts.append(time.monotonic()), ping())[1]
        return client

    pub = StreamPublisher(factory, redis_server.url, buffer_max_entries=1000)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        pub.put("s", {"n": 1}, None)
        time.sleep(0.002)
    pub.close(0)
    assert 2 <= len(attempts) <= 8        # backoff 0.05, 0.1, 0.2, 0.4 s ... not one attempt per write

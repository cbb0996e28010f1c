"""Consumer groups: consumers share the events with no loss and no duplicates; a dead consumer's entries
are taken over by another."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pipelines.sinks.redis_conn import RedisConfig
from pipelines.sinks.redis_sink import RedisSink
from tests.redis.conftest import WithEvents
from pipelines.subscriber import Subscriber

EVENTS = "trackstream:cam:events"


def _group_drained(client, group: str) -> bool:  # type: ignore[no-untyped-def]
    info = {g["name"]: g for g in client.xinfo_groups(EVENTS)}.get(group)
    last = client.xinfo_stream(EVENTS)["last-generated-id"]
    return bool(info) and info["pending"] == 0 and info["last-delivered-id"] == last


def test_two_consumers_split_events_without_loss_or_duplicates(
        redis_server, cli_processes, synth):  # type: ignore[no-untyped-def]
    consumers = [cli_processes("subscribe", "--redis", redis_server.url, "--source", "cam", "--group", "g",
                               "--consumer", name, "--from", "0") for name in ("c1", "c2")]
    client = redis_server.client()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:   # wait until both consumers are reading
        try:
            if len(client.xinfo_consumers(EVENTS, "g")) == 2:
                break
        except Exception:  # noqa: BLE001 - the group does not exist before the first consumer starts
            pass
        time.sleep(0.05)
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, publish_frames=False), "cam"), "cam")
    for r in synth.scenario():
        sink.write(r)
        time.sleep(0.01)      # a live source: events trickle in while both consumers wait
    sink.close()
    deadline = time.monotonic() + 30
    while not _group_drained(client, "g") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_drained(client, "g")
    for c in consumers:
        assert c.stop() == 0, c.stderr
    got = [[d["id"] for d in c.docs()] for c in consumers]
    published = [entry_id for entry_id, _ in client.xrange(EVENTS)]
    assert all(got), "both consumers should get a share"
    assert sorted(got[0] + got[1]) == published          # no loss, no duplicates
    assert not set(got[0]) & set(got[1])


_DYING_CONSUMER = """
import os, signal, sys
from pipelines.subscriber import Subscriber
sub = Subscriber(sys.argv[1], ["cam"], group="g", consumer="doomed", start="0", block_ms=2000)
for n, entry in enumerate(sub, 1):
    print(entry.id, flush=True)          # handled ...
    if n == 5:
        os.kill(os.getpid(), signal.SIGKILL)   # ... and dies before it could acknowledge anything more
"""


def test_killed_consumers_pending_entries_are_reclaimed(redis_server, synth):  # type: ignore[no-untyped-def]
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, publish_frames=False), "cam"), "cam")
    for r in synth.scenario():
        sink.write(r)
    sink.close()
    client = redis_server.client()
    published = [entry_id for entry_id, _ in client.xrange(EVENTS)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    doomed = subprocess.run([sys.executable, "-c", _DYING_CONSUMER, redis_server.url], capture_output=True,
                            text=True, timeout=60, env=env)
    assert doomed.returncode == -9, doomed.stderr
    handled_by_doomed = doomed.stdout.split()
    assert len(handled_by_doomed) == 5
    pending = client.xpending(EVENTS, "g")["pending"]
    assert pending > 0                                   # the dead consumer left entries pending

    received = []
    with Subscriber(redis_server.url, ["cam"], group="g", consumer="rescuer", claim_idle_ms=100,
                    claim_interval=0.2, block_ms=200) as sub:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _group_drained(client, "g"):
            batch = sub.read()
            received.extend(e.id for e in batch)
            sub.ack(*batch)
    assert _group_drained(client, "g")
    assert client.xpending(EVENTS, "g")["pending"] == 0
    # every entry reached a consumer that handled it; only entries the dead one had handled may repeat
    assert set(received) | set(handled_by_doomed) == set(published)
    assert len(received) == len(set(received))
    assert set(received) >= set(published) - set(handled_by_doomed)
    consumers = {c["name"]: c for c in client.xinfo_consumers(EVENTS, "g")}
    assert consumers["doomed"]["pending"] == 0


def test_consumer_resumes_where_it_left_off(redis_server, synth):  # type: ignore[no-untyped-def]
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, publish_frames=False), "cam"), "cam")
    for r in synth.scenario():
        sink.write(r)
    sink.close()
    published = [entry_id for entry_id, _ in redis_server.client().xrange(EVENTS)]
    first = []
    with Subscriber(redis_server.url, ["cam"], group="g", consumer="c", start="0", block_ms=100) as sub:
        for entry in sub:                      # each entry is acked when the next one is asked for
            first.append(entry.id)
            if len(first) == 10:
                break                          # the 10th was not confirmed handled: it comes again
    with Subscriber(redis_server.url, ["cam"], group="g", consumer="c", block_ms=100) as sub:
        rest = [e.id for e in iter_until_idle(sub)]
    assert rest[0] == first[-1]
    assert first[:-1] + rest == published


def iter_until_idle(sub: Subscriber):  # type: ignore[no-untyped-def]
    while True:
        batch = sub.read()
        if not batch:
            return
        yield from batch
        sub.ack(*batch)


def test_sources_are_discovered_including_ones_that_start_later(redis_server, synth):  # type: ignore[no-untyped-def]
    def publish(source: str) -> None:
        sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, publish_frames=False), source), source)
        for r in synth.scenario(n_frames=10, source=source):
            sink.write(r)
        sink.close()

    publish("cam-a")
    with Subscriber(redis_server.url, start="0", block_ms=100, discover_interval=0.1) as sub:
        assert sub.sources == ["cam-a"]
        publish("cam-b/stream1")                  # a camera id made of host and path
        seen: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen) < 2:
            for e in sub.read():
                seen[e.source_id] = seen.get(e.source_id, 0) + 1
            time.sleep(0.05)
    assert seen == {"cam-a": 4, "cam-b/stream1": 4}   # track 1 and 2 start and end in each


def test_a_source_that_has_published_nothing_is_named_with_the_ones_that_have(redis_server, synth,  # type: ignore[no-untyped-def]
                                                                              caplog):
    """`subscribe --source gate-cam` for a camera published as 'gate_cam' waited without a word, forever."""
    import logging

    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url, publish_frames=False), "gate_cam"), "gate_cam")
    for r in synth.scenario(n_frames=10, source="gate_cam"):
        sink.write(r)
    sink.close()
    with caplog.at_level(logging.WARNING, logger="pipelines.subscriber"):
        with Subscriber(redis_server.url, ["gate-cam"], start="0", block_ms=100) as sub:
            assert sub.read() == []
        with Subscriber(redis_server.url, ["gate_cam"], start="0", block_ms=100) as sub:
            assert sub.read()
    warned = [r.getMessage() for r in caplog.records if "published nothing" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(   # the server is shared with this module's other tests
        "source gate-cam has published nothing yet (no stream trackstream:gate-cam:events); waiting for it. "
        "Sources found: "), warned
    assert "gate_cam" in warned[0].rsplit(": ", 1)[1].split(", ")

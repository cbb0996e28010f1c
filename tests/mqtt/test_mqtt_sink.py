"""The MQTT sink against a real mosquitto, fed synthetic results the way a source's processor feeds it."""

from __future__ import annotations

import json
import logging
import time

import pytest

from pipelines.errors import UserError
from pipelines.frames import StatusKind
from pipelines.processing.zones import EventsConfig, LineConfig, ZoneConfig
from pipelines.sinks.mqtt import MqttSink
from pipelines.sinks.mqtt_conn import MqttConfig, check_reachable
from tests.conftest import free_port
from tests.mqtt.conftest import PASSWORD, Feeder, json_of, retained, walkers

DOOR = ZoneConfig("front door", ((40, 0), (80, 0), (80, 100), (40, 100)))
GATE = LineConfig("gate", ((50, 0), (50, 100)))


def _run(sink: MqttSink, n_frames: int = 40, config: EventsConfig = EventsConfig()) -> Feeder:
    feed = Feeder(sink, (DOOR,), (GATE,), config=config)
    feed.status(StatusKind.STARTED)
    for result in walkers(n_frames):
        feed.write(result)
    feed.status(StatusKind.ENDED)
    sink.close()
    return feed


def test_subscriber_sees_every_event_in_order_and_retained_counts_and_state(broker):  # type: ignore[no-untyped-def]
    sub = broker.subscriber("trackstream/#")
    sink = MqttSink(MqttConfig(url=broker.url), "cam", ["front door"], ["gate"])
    feed = _run(sink)
    sub.wait_for(lambda s: s.on("trackstream/cam/state")[-1:] == [b"offline"])
    assert json_of(sub.on("trackstream/cam/events")) == [json.loads(json.dumps(e)) for e in feed.events]
    kinds = [e["event"] for e in feed.events]
    assert kinds.count("track_started") == kinds.count("track_ended") == 2 and "line_crossed" in kinds
    assert sub.on("trackstream/cam/state") == [b"online", b"offline"]

    final = feed.counts()
    kept = retained(broker, "trackstream/#")
    zone, line = json.loads(kept["trackstream/cam/zones/front_door"]), json.loads(kept["trackstream/cam/lines/gate"])
    door, gate = final.zones["front door"], final.lines["gate"]
    assert (zone["occupancy"], zone["entries"], zone["exits"]) == (door.occupancy, door.entries, door.exits)
    assert (line["left_to_right"], line["right_to_left"]) == (gate.left_to_right, gate.right_to_left)
    assert line["total"] == 2 and zone["entries"] == 2
    assert kept["trackstream/cam/state"] == b"offline"
    assert "trackstream/cam/events" not in kept                     # events are not retained
    # counts are published on change only: far fewer zone messages than frames
    changes = sub.on("trackstream/cam/zones/front_door")
    assert 1 < len(changes) < 15 and len(set(changes)) == len(changes)
    sub.close()
    assert sink.stats.dropped == 0


def test_counts_by_class_are_in_every_zone_and_line_payload_even_before_anything_is_counted(broker):  # type: ignore[no-untyped-def]
    """With count_by_class, the counts published at stream_started (nobody in the door yet, nobody across the
    gate) already carry an empty ``by_class``, as docs/mqtt.md says every payload does."""
    sub = broker.subscriber("trackstream/#")
    sink = MqttSink(MqttConfig(url=broker.url), "cam", ["front door"], ["gate"])
    _run(sink, config=EventsConfig(count_by_class=True))
    sub.wait_for(lambda s: s.on("trackstream/cam/state")[-1:] == [b"offline"])
    zones, lines = json_of(sub.on("trackstream/cam/zones/front_door")), json_of(sub.on("trackstream/cam/lines/gate"))
    assert zones[0]["frame_index"] is None and zones[0]["entries"] == 0 and zones[0].get("by_class") == {}
    assert lines[0]["frame_index"] is None and lines[0]["total"] == 0 and lines[0].get("by_class") == {}
    assert all("by_class" in doc for doc in zones + lines)
    door, gate = zones[-1], lines[-1]      # the two walkers are people: their counts are all under "person"
    assert door["by_class"] == {"person": {k: door[k] for k in ("occupancy", "entries", "exits")}}
    assert gate["by_class"] == {"person": {k: gate[k] for k in ("left_to_right", "right_to_left", "total")}}
    assert door["entries"] == gate["total"] == 2
    sub.close()


def test_state_follows_the_camera_through_a_gap(broker):  # type: ignore[no-untyped-def]
    sub = broker.subscriber("trackstream/+/state")
    sink = MqttSink(MqttConfig(url=broker.url), "gate cam")
    feed = Feeder(sink, source_id="gate cam")
    frames = walkers(6, source="gate cam")
    feed.status(StatusKind.STARTED)
    feed.write(frames[0])
    feed.status(StatusKind.GAP)                 # the camera is being reconnected
    feed.status(StatusKind.RESUMED)
    feed.write(frames[1])
    sink.close()                                # the lane closed without stream_ended (e.g. Ctrl-C)
    sub.wait_for(lambda s: s.on("trackstream/gate_cam/state")[-1:] == [b"offline"])
    assert sub.on("trackstream/gate_cam/state") == [b"online", b"reconnecting", b"online", b"offline"]
    sub.close()


def test_prefix_from_url_and_rate_limited_tracks_summary(broker):  # type: ignore[no-untyped-def]
    sub = broker.subscriber("site/cams/#")
    sink = MqttSink(MqttConfig(url=f"{broker.url}/site/cams", tracks_interval=0.4), "cam", ["front door"], ["gate"])
    _run(sink)
    sub.wait_for(lambda s: s.on("site/cams/cam/state")[-1:] == [b"offline"])
    tracks = json_of(sub.on("site/cams/cam/tracks"))
    assert [t["frame_index"] for t in tracks] == [0, 10, 20, 30]        # 25 fps, every 0.4 s of video time
    assert tracks[1]["count"] == 2 and tracks[1]["by_class"] == {"person": 2}
    assert {t["id"] for t in tracks[1]["tracks"]} == {1, 2}
    sub.close()


def test_wrong_password_is_one_clear_line_without_the_password(password_broker):  # type: ignore[no-untyped-def]
    good = MqttConfig(url=password_broker.url)
    check_reachable(good)
    bad = MqttConfig(url=password_broker.url.replace(PASSWORD, "wrong-Pa55"))
    with pytest.raises(UserError) as err:
        check_reachable(bad)
    text = str(err.value)
    assert "refused" in text and "\n" not in text and "wrong-Pa55" not in text and "***" in text, text


def test_unreachable_broker_fails_fast_or_warns(caplog):  # type: ignore[no-untyped-def]
    url = f"mqtt://cam:Secret-77@127.0.0.1:{free_port()}"
    with pytest.raises(UserError, match="cannot reach MQTT broker at mqtt://cam:\\*\\*\\*@127.0.0.1"):
        check_reachable(MqttConfig(url=url, on_unreachable="fail"))
    with caplog.at_level(logging.WARNING):
        check_reachable(MqttConfig(url=url))            # wait: one warning, the sink buffers and retries
    assert "cannot reach" in caplog.text and "Secret-77" not in caplog.text


def test_broker_down_never_blocks_drops_oldest_and_counts(caplog):  # type: ignore[no-untyped-def]
    url = f"mqtt://cam:Secret-77@127.0.0.1:{free_port()}"
    sink = MqttSink(MqttConfig(url=url, buffer_max_entries=5, flush_timeout=0.2), "cam", ["front door"], ["gate"])
    feed = Feeder(sink, (DOOR,), (GATE,))
    with caplog.at_level(logging.WARNING):
        t0 = time.perf_counter()
        for result in walkers(40):
            feed.write(result)
        elapsed = time.perf_counter() - t0
        sink.close()
    assert elapsed < 1.0, elapsed
    stats = sink.stats
    assert stats.published == 0 and stats.dropped >= 10 and stats.buffered == 0
    assert sink.undelivered() == stats.dropped          # the run's summary names it and exits 3
    assert "could not be delivered" in caplog.text and "Secret-77" not in caplog.text


def test_tls_broker_with_its_ca(tls_broker, tmp_path):  # type: ignore[no-untyped-def]
    cert = str(tls_broker.tls[0])
    sub = tls_broker.subscriber("trackstream/#")
    sink = MqttSink(MqttConfig(url=tls_broker.url, tls_ca_certs=cert), "cam", ["front door"], ["gate"])
    feed = _run(sink, 20)
    sub.wait_for(lambda s: s.on("trackstream/cam/state")[-1:] == [b"offline"])
    assert len(sub.on("trackstream/cam/events")) == len(feed.events) > 0
    sub.close()
    with pytest.raises(UserError, match="TLS with MQTT broker at mqtts://127.0.0.1"):
        check_reachable(MqttConfig(url=tls_broker.url))   # self-signed: not trusted by the system's CAs


def test_restarted_broker_gets_retained_topics_back_without_new_messages(broker):  # type: ignore[no-untyped-def]
    sub = broker.subscriber("#")
    sink = MqttSink(MqttConfig(url=broker.url, discovery=True), "cam", ["front door"], ["gate"])
    feed = Feeder(sink, (DOOR,), (GATE,))
    feed.status(StatusKind.STARTED)
    for result in walkers(40):
        feed.write(result)
    final = feed.counts()

    def delivered(s):  # type: ignore[no-untyped-def]
        gate, door = (s.latest().get(f"trackstream/cam/{t}") for t in ("lines/gate", "zones/front_door"))
        return gate is not None and door is not None and \
            json.loads(gate)["right_to_left"] == final.lines["gate"].right_to_left and \
            json.loads(door)["exits"] == final.zones["front door"].exits
    sub.wait_for(delivered)
    before = {t: p for t, p in sub.latest().items() if not t.endswith("/events")}
    sub.close()
    assert before["trackstream/cam/state"] == b"online" and len(before) == 1 + 2 + 6   # state, counts, sensors
    assert retained(broker) == before
    broker.stop()                                 # no persistence: the broker forgets every retained message
    broker.start()
    sub = broker.subscriber("#")                  # nothing is written meanwhile: the sink restores them itself
    sub.wait_for(lambda s: set(s.latest()) >= set(before), timeout=15)
    assert {t: p for t, p in sub.latest().items() if t in before} == before
    sub.close()
    sink.close()
    assert sink.stats.dropped == 0 and sink.stats.outages == 1


def test_frozen_broker_never_blocks_and_close_keeps_its_deadline(broker, caplog):  # type: ignore[no-untyped-def]
    import os
    import signal

    sink = MqttSink(MqttConfig(url=broker.url, flush_timeout=0.5), "cam", ["front door"], ["gate"])
    feed = Feeder(sink, (DOOR,), (GATE,))
    frames = walkers(40)
    feed.status(StatusKind.STARTED)
    for result in frames[:5]:
        feed.write(result)
    deadline = time.monotonic() + 10
    while sink.stats.published < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGSTOP)     # accepts bytes into the socket, never answers
    try:
        t0 = time.perf_counter()
        for result in frames[5:]:
            feed.write(result)
        writing = time.perf_counter() - t0
        with caplog.at_level(logging.WARNING):
            t0 = time.perf_counter()
            sink.close()
            closing = time.perf_counter() - t0
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    assert writing < 0.5 and closing < 0.5 + 0.5 + 0.3, (writing, closing)
    assert sink.stats.dropped > 0 and "could not be delivered" in caplog.text
    # the undelivered "offline" is said by the last will once the broker sees the connection gone
    deadline = time.monotonic() + 10
    while retained(broker, "trackstream/cam/state", settle=0.2).get("trackstream/cam/state") != b"offline":
        assert time.monotonic() < deadline, "the last will did not mark the source offline"


def test_a_crashed_process_shows_offline(broker):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import os, time\n"
            "from pipelines.frames import StatusKind, StreamStatus\n"
            "from pipelines.sinks.mqtt import MqttSink, MqttConfig\n"
            f"sink = MqttSink(MqttConfig(url={broker.url!r}), 'cam')\n"
            "sink.status(StreamStatus(StatusKind.STARTED, 'cam', time.time()))\n"
            "while sink.stats.published < 1: time.sleep(0.01)\n"
            "print('online', flush=True)\n"
            "os._exit(1)\n")
    crashed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO),
                             timeout=60)
    assert crashed.stdout.strip() == "online", crashed.stderr
    deadline = time.monotonic() + 10
    while retained(broker, "trackstream/cam/state", settle=0.2).get("trackstream/cam/state") != b"offline":
        assert time.monotonic() < deadline, "the last will did not mark the crashed source offline"


def test_home_assistant_takes_every_discovery_config_even_for_names_with_dots(broker):  # type: ignore[no-untyped-def]
    """A source, zone and line name with ``.`` once gave discovery topics HA refuses (no entity, silently)."""
    from tests.mqtt.ha_rules import problems

    zone = ZoneConfig("door.main", DOOR.polygon, classes=("person",))
    line = LineConfig("gate 2.b", GATE.points)
    sink = MqttSink(MqttConfig(url=broker.url, discovery=True), "cam.1", [zone.name], [line.name],
                    {zone.name: ["person"]})
    feed = Feeder(sink, (zone,), (line,), source_id="cam.1")
    feed.status(StatusKind.STARTED)
    for result in walkers(40, source="cam.1"):
        feed.write(result)
    feed.status(StatusKind.ENDED)
    sink.close()
    kept = retained(broker)
    configs = {t: p for t, p in kept.items() if t.startswith("homeassistant/")}
    assert len(configs) == 6
    for topic, payload in configs.items():
        assert problems(topic, payload, retained=kept) == [], topic
    names = {json.loads(p)["name"] for p in configs.values()}
    assert "door.main occupancy (person)" in names and "gate 2.b crossings" in names   # readable names kept
    assert "trackstream/cam_1/zones/door_main" in kept and "trackstream/cam_1/lines/gate_2_b" in kept
    door = json.loads(kept["trackstream/cam_1/zones/door_main"])
    assert door["classes"] == ["person"] and door["entries"] == 2              # the zone counts people only


@pytest.mark.parametrize("topic, payload, refused", [
    ("homeassistant/sensor/trackstream_cam.1/door_occupancy/config", {"state_topic": "a/b"}, "not allowed characters"),
    ("homeassistant/sensor/node/door.main/config", {"state_topic": "a/b"}, "not allowed characters"),
    ("homeassistant/sensor/node/door/config", {"name": "x"}, "state_topic is required"),
    ("homeassistant/sensor/node/door/config", {"stat_t": "a/b", "dev": {"name": "x"}, "uniq_id": "u"},
     "identifiers or connections"),
    ("homeassistant/sensor/node/door/config", {"stat_t": "a/b", "dev": {"ids": ["x"]}}, "needs unique_id"),
    ("homeassistant/sensor/node/door/config", {"stat_t": "a/b", "val_tpl": "{{ value_json.x "}, "value_template"),
    ("homeassistant/sensor/node/door/config", {"stat_t": "a/b", "colour": "red"}, "does not know"),
    ("homeassistant/sensor/node/door/config", {"stat_t": "a/b", "stat_cla": "sum"}, "state_class"),
    ("homeassistant/sensor/node/door/config", {"stat_t": "a/b", "uniq_id": "u", "dev": {"ids": ["x"]},
                                                "o": {"name": "t"}, "val_tpl": "{{ value_json.n }}"}, None),
])
def test_home_assistant_rules_refuse_what_ha_refuses(topic, payload, refused):  # type: ignore[no-untyped-def]
    from tests.mqtt.ha_rules import problems

    found = problems(topic, json.dumps(payload).encode())
    if refused is None:
        assert found == []
    else:
        assert any(refused in p for p in found), found


def test_retained_zone_counts_follow_the_exits_at_the_end_of_the_stream(broker):  # type: ignore[no-untyped-def]
    """Track 1 is inside the door when the stream ends: its exit (``track_ended``) must reach the retained
    counts, so they equal what the summary prints (0 inside, as many exits as entries)."""
    sink = MqttSink(MqttConfig(url=broker.url), "cam", ["front door"], ["gate"])
    feed = Feeder(sink, (DOOR,), (GATE,))
    feed.status(StatusKind.STARTED)
    for result in walkers(20):
        feed.write(result)
    before_end = feed.counts().zones["front door"]
    assert before_end.occupancy == 1
    feed.status(StatusKind.ENDED)
    sink.close()
    final = feed.counts().zones["front door"]
    zone = json.loads(retained(broker)["trackstream/cam/zones/front_door"])
    assert (zone["occupancy"], zone["entries"], zone["exits"]) == (final.occupancy, final.entries, final.exits)
    assert zone["occupancy"] == 0 and zone["exits"] == zone["entries"] == 1
    assert isinstance(zone["frame_index"], int)


def test_home_assistant_gets_a_predicted_crossings_sensor_that_rises_and_falls(broker):  # type: ignore[no-untyped-def]
    """A line and a zone with ``predict_seconds``: discovery adds one sensor each, "predicted crossings / entries
    pending", which HA accepts and whose template reads the retained counts; a walker heading for them makes it
    1 before the crossing and 0 once it has crossed. Real ``StreamProcessor`` and tracker, real mosquitto."""
    from pipelines.frames import StreamStatus
    from pipelines.processing.processor import StreamProcessor
    from pipelines.settings import SourceSettings
    from tests.analytics_scenes import validator
    from tests.mqtt.ha_rules import problems
    from tests.test_forecast import GATE as WARN_GATE, SHOP, _walk

    sub = broker.subscriber("trackstream/cam/#")
    plain = LineConfig("gate plain", WARN_GATE.points)     # the same line without predict_seconds
    proc = StreamProcessor(SourceSettings("cam", lines=(WARN_GATE, plain), zones=(SHOP,)), {0: "person"})
    sink = MqttSink(MqttConfig(url=broker.url, discovery=True), "cam", ["shop"], ["gate", "gate plain"],
                    predicting=["shop", "gate"])
    sink.status(proc.status(StreamStatus(StatusKind.STARTED, "cam", 1000.0)))
    for frame, dets in _walk([(100.0 + 6.0 * i, 400.0) for i in range(50)]):
        sink.write(proc.process(frame, dets))
    sink.status(proc.status(StreamStatus(StatusKind.ENDED, "cam", 1005.0, pts=4.9)))   # as a file ends
    sink.close()
    kept = retained(broker)
    configs = {t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/")}
    for topic in configs:
        assert problems(topic, kept[topic], retained=kept) == [], topic
    names = {c["name"]: c for c in configs.values()}
    assert "gate predicted crossings pending" in names and "shop predicted entries pending" in names
    assert not any("gate plain predicted" in n for n in names)     # a line without predict_seconds: none
    sensor = names["gate predicted crossings pending"]
    assert sensor["state_topic"] == "trackstream/cam/lines/gate" and sensor["state_class"] == "measurement"
    sub.wait_for(lambda s: len(s.on("trackstream/cam/lines/gate")) >= 3)
    sub.close()
    published = json_of(sub.on("trackstream/cam/lines/gate"))
    check = validator("mqtt_line.schema.json")
    assert [(doc, e.message) for doc in published for e in check.iter_errors(doc)] == []
    pending = [doc["predicted_pending"] for doc in published]
    assert pending[0] == 0 and 1 in pending and pending[-1] == 0   # warned, then the crossing fulfilled it
    warned = next(doc for doc in published if doc["predicted_pending"] == 1)
    assert warned["total"] == 0                                      # before the crossing
    assert published[-1]["left_to_right"] == 1
    shop = json_of(sub.on("trackstream/cam/zones/shop"))
    assert [doc["predicted_pending"] for doc in shop][-1] == 0 and 1 in [doc["predicted_pending"] for doc in shop]
    assert "predicted_pending" not in json.loads(kept["trackstream/cam/lines/gate_plain"])

"""``trackstream run --mqtt`` on bikes.mp4 with the pose model and a real mosquitto: what a Home Assistant
user (or any MQTT subscriber) would see."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, require_binary, run_cli
from tests.mqtt.conftest import PASSWORD, Subscriber, retained
from tests.mqtt.ha_rules import problems

pytestmark = pytest.mark.slow

SCHEMAS = REPO / "pipelines" / "schemas"
# A vertical line the cyclists cross (frames 31-44 and 188-211) and the zone left of it.
COUNTING = """lines:
  - {name: road, points: [[400, 0], [400, 300]]}
zones:
  - {name: left side, polygon: [[0, 0], [400, 0], [400, 272], [0, 272]]}
"""


def _validator(name: str):  # type: ignore[no-untyped-def]
    import jsonschema
    from referencing import Registry, Resource

    docs = [json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs if "$id" in d)
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / name).read_text()), registry=registry)


def _final_counts(stderr: str) -> dict[str, tuple[int, ...]]:
    """The summary's counts: ``bikes: line road 0 left_to_right, 2 right_to_left`` and
    ``bikes: zone left side 1 entries, 1 exits, 0 inside now``."""
    out: dict[str, tuple[int, ...]] = {}
    for m in re.finditer(r"^bikes: line (.+) (\d+) left_to_right, (\d+) right_to_left$", stderr, re.M):
        out[f"line {m[1]}"] = (int(m[2]), int(m[3]))
    for m in re.finditer(r"^bikes: zone (.+) (\d+) entries, (\d+) exits, (\d+) inside now$", stderr, re.M):
        out[f"zone {m[1]}"] = (int(m[4]), int(m[2]), int(m[3]))
    return out


def _sub_process(port: int, topic: str, out: Path) -> subprocess.Popen[bytes]:
    """``mosquitto_sub -v`` in another process writing to ``out``, returned once it is surely subscribed."""
    with open(out, "wb") as sink:
        proc = subprocess.Popen([require_binary("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                                 "-t", "ready", "-q", "1", "-v"], stdout=sink)
    for _ in range(100):                 # publish "ready" until the subscriber prints it
        subprocess.run([require_binary("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port), "-t", "ready",
                        "-m", "1"], check=True)
        time.sleep(0.05)
        if b"ready 1" in out.read_bytes():
            return proc
    raise AssertionError("mosquitto_sub did not subscribe")


def test_run_publishes_every_event_final_counts_state_and_valid_discovery(
        broker, bikes_video, pose_weights, tmp_path):  # type: ignore[no-untyped-def]
    config = tmp_path / "counting.yaml"
    config.write_text(COUNTING)
    sub = _sub_process(broker.port, "trackstream/#", tmp_path / "sub.txt")
    t0 = time.monotonic()
    run = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "220",
                  "--quiet", "--config", str(config), "--jsonl", str(tmp_path / "out.jsonl"),
                  "--events", str(tmp_path / "events.jsonl"), "--mqtt", broker.url, "--mqtt-discovery", timeout=120)
    print(f"run took {time.monotonic() - t0:.1f} s\n{run.stderr}")
    assert run.returncode == 0, run.stderr
    kept = retained(broker)
    deadline = time.monotonic() + 10                # the other process has printed the last message
    while b"trackstream/bikes/state offline" not in (tmp_path / "sub.txt").read_bytes():
        assert time.monotonic() < deadline, "the subscriber process did not see the final state"
        time.sleep(0.05)
    sub.terminate()
    sub.wait(10)
    lines = [ln.split(" ", 1) for ln in (tmp_path / "sub.txt").read_text().splitlines()]
    events = [json.loads(payload) for topic, payload in lines if topic == "trackstream/bikes/events"]

    # the same event documents as --events, in order; one start and one end per track id of the JSONL
    assert events == [json.loads(ln) for ln in (tmp_path / "events.jsonl").read_text().splitlines()]
    ids = {t["id"] for ln in (tmp_path / "out.jsonl").read_text().splitlines() for t in json.loads(ln)["tracks"]}
    assert len(ids) >= 2
    for tid in ids:
        mine = [e["event"] for e in events if e.get("track", {}).get("id") == tid]
        assert mine.count("track_started") == 1 and mine.count("track_ended") == 1, (tid, mine)
    check_events = _validator("event.schema.json")
    for event in events:
        check_events.validate(event)

    # retained counts equal the run's final counts (as its summary prints them)
    final = _final_counts(run.stderr)
    assert final == {"line road": (0, 2), "zone left side": final["zone left side"]}, run.stderr
    line = json.loads(kept["trackstream/bikes/lines/road"])
    zone = json.loads(kept["trackstream/bikes/zones/left_side"])
    _validator("mqtt_line.schema.json").validate(line)
    _validator("mqtt_zone.schema.json").validate(zone)
    assert (line["left_to_right"], line["right_to_left"]) == final["line road"]
    assert (zone["occupancy"], zone["entries"], zone["exits"]) == final["zone left side"]
    states = [payload for topic, payload in lines if topic == "trackstream/bikes/state"]
    assert states[0] == "online" and states[-1] == "offline" and kept["trackstream/bikes/state"] == b"offline"

    # discovery: Home Assistant's required keys, unique ids, and only topics that are published
    configs = {t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/")}
    assert len(configs) == 6                                    # 3 sensors for the zone, 3 for the line
    check_config = _validator("mqtt_discovery.schema.json")
    for topic, doc in configs.items():
        assert re.fullmatch(r"homeassistant/sensor/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config", topic), topic
        assert problems(topic, kept[topic], retained=kept) == []        # what Home Assistant checks
        check_config.validate(doc)
        assert doc["state_topic"] in kept and doc["availability_topic"] == "trackstream/bikes/state"
        key = doc["value_template"].split(".")[1].split()[0]
        assert key in json.loads(kept[doc["state_topic"]]), doc
    assert len({d["unique_id"] for d in configs.values()}) == len(configs)
    assert len({json.dumps(d["device"], sort_keys=True) for d in configs.values()}) == 1   # one device


def test_broker_killed_and_restarted_mid_run(broker, bikes_video, pose_weights, tmp_path):  # type: ignore[no-untyped-def]
    config = tmp_path / "counting.yaml"
    config.write_text(COUNTING + "mqtt:\n  keepalive: 5\n")
    sub = broker.subscriber("trackstream/#")
    run = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model",
                            str(pose_weights), "--imgsz", "160", "--max-frames", "150", "--realtime", "--quiet",
                            "--config", str(config), "--jsonl", str(tmp_path / "out.jsonl"), "--mqtt", broker.url],
                           stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=str(REPO),
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        sub.wait_for(lambda s: b"online" in s.on("trackstream/bikes/state"), timeout=60)
        sub.close()
        broker.stop()                           # retained state, counts: all forgotten
        time.sleep(1.0)
        broker.start()
        back = Subscriber(broker, "trackstream/#")
        back.wait_for(lambda s: s.latest().get("trackstream/bikes/state") == b"online", timeout=20)
        assert run.poll() is None, "the run should still be going when the state is back"
        back.wait_for(lambda s: "trackstream/bikes/lines/road" in s.latest(), timeout=10)
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    print(stderr)
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr and "reachable again" in stderr, stderr
    back.wait_for(lambda s: s.latest().get("trackstream/bikes/state") == b"offline", timeout=10)
    back.close()
    assert 0 < len((tmp_path / "out.jsonl").read_text().splitlines()) <= 150     # --realtime may skip frames
    final = _final_counts(stderr)["line road"]
    line = json.loads(retained(broker)["trackstream/bikes/lines/road"])
    assert (line["left_to_right"], line["right_to_left"]) == final


@pytest.mark.parametrize("url, expect", [
    ("mqtt://cam:Top-Secret-9@127.0.0.1:notaport", "mqtt.url: not a valid MQTT URL 'mqtt://cam:***@"),
    ("http://cam:Top-Secret-9@127.0.0.1:1883", "must start with mqtt:// or mqtts://"),
    ("mqtt://cam:Top-Secret-9@127.0.0.1:{port}/a/+", "must not contain +, #"),
    ("mqtt://cam:Top-Secret-9@127.0.0.1:{port}/a/#", "put TLS and other options in the mqtt: config section"),
    ("mqtt://cam:Top-Secret-9@127.0.0.1:{port}", "refused us"),          # a wrong password
])
def test_bad_url_or_wrong_password_is_one_clear_line(url, expect, password_broker, bikes_video):  # type: ignore[no-untyped-def]
    run = run_cli("run", str(bikes_video), "--mqtt", url.format(port=password_broker.port), "--quiet", timeout=60)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], run.stderr
    assert "Top-Secret-9" not in run.stderr + run.stdout and PASSWORD not in run.stderr


def test_unreachable_broker_with_fail_is_one_line(bikes_video, tmp_path):  # type: ignore[no-untyped-def]
    config = tmp_path / "fail.yaml"
    config.write_text("mqtt:\n  on_unreachable: fail\n  connect_timeout: 1\n")
    run = run_cli("run", str(bikes_video), "--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--config", str(config),
                  "--quiet", timeout=60)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [line for line in run.stderr.strip().splitlines()
                                               if "cannot reach MQTT broker at mqtt://127.0.0.1:" in line], run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_tls_options_need_mqtts(bikes_video, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "tls.yaml"
    config.write_text("mqtt:\n  tls_ca_certs: /etc/ssl/certs/ca-certificates.crt\n")
    run = run_cli("run", str(bikes_video), "--mqtt", "mqtt://127.0.0.1:1883", "--config", str(config), timeout=60)
    assert run.returncode != 0 and "mqtt.tls_ca_certs: needs an mqtts:// URL" in run.stderr, run.stderr


def test_discovery_flag_needs_a_broker(bikes_video):  # type: ignore[no-untyped-def]
    run = run_cli("run", str(bikes_video), "--mqtt-discovery", timeout=60)
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [
        "trackstream: error: --mqtt-discovery: needs a broker: --mqtt URL (or mqtt.url in the config)"], run.stderr


def test_a_run_with_a_wrong_mqtt_password_fails_at_once_even_when_told_to_wait(password_broker, bikes_video):  # type: ignore[no-untyped-def]
    """As Redis (tests/redis/test_connection.py): on_unreachable: wait (the default) waits out an outage,
    never a password that will not change; a refusal is an authentication error, exit 2, before the model."""
    url = f"mqtt://cam:wrong-Mq-77@127.0.0.1:{password_broker.port}"
    started = time.monotonic()
    done = run_cli("run", str(bikes_video), "--mqtt", url, "--max-frames", "2", "--quiet", timeout=120)
    took = time.monotonic() - started
    errors = [line for line in done.stderr.splitlines() if line.startswith("trackstream: error: ")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "refused us" in errors[0] and "cannot reach" not in done.stderr, done.stderr   # not an outage
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "model" not in done.stderr and took < 30, (took, done.stderr)                  # before the model loads
    assert "wrong-Mq-77" not in done.stderr + done.stdout
    # the same from the environment (no password on the command line)
    env_url = f"mqtt://cam@127.0.0.1:{password_broker.port}"
    done = run_cli("run", str(bikes_video), "--mqtt", env_url, "--max-frames", "2", "--quiet", timeout=120,
                   env={"TRACKSTREAM_MQTT_PASSWORD": "wrong-Mq-78"})
    assert done.returncode == 2 and "refused us" in done.stderr and "wrong-Mq-78" not in done.stderr, done.stderr


@pytest.mark.parametrize("given", ["file", "env"])
def test_a_password_from_a_file_or_the_environment_joins_the_user_name_of_the_url(  # type: ignore[no-untyped-def]
        given, password_broker, bikes_video, pose_weights, tmp_path):
    """``mqtt://cam@host`` names the user and no password: --mqtt-password-file (or the environment) gives it
    (MQTT sends a password only with a user name, so the user must stay)."""
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    extra, env = (["--mqtt-password-file", str(secret)], None) if given == "file" else \
        ([], {"TRACKSTREAM_MQTT_PASSWORD": PASSWORD})
    done = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                   "--mqtt", f"mqtt://cam@127.0.0.1:{password_broker.port}", *extra, "--quiet", timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert retained(password_broker, "trackstream/bikes/state") == {"trackstream/bikes/state": b"offline"}
    assert PASSWORD not in done.stderr + done.stdout


def test_two_sources_sharing_a_topic_level_are_refused(broker, bikes_video, tmp_path):  # type: ignore[no-untyped-def]
    """``cam.1`` and ``cam 1`` both publish under ``trackstream/cam_1/``: one's retained counts, state and
    discovery configs replaced the other's, and its last will marked the other offline (docs/mqtt.md: two
    names that would share a topic are refused at start)."""
    config = tmp_path / "two.yaml"
    config.write_text(f"sources:\n  - {{id: cam.1, url: '{bikes_video}'}}\n  - {{id: cam 1, url: '{bikes_video}'}}\n")
    done = run_cli("run", "--config", str(config), "--mqtt", broker.url, "--max-frames", "2", "--quiet", timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "trackstream: error: sources: MQTT: sources 'cam.1' and 'cam 1' would share the topic level 'cam_1'; "
        "give one another id"], done.stderr
    assert retained(broker) == {}

def test_run_offers_a_predicted_crossings_sensor_per_predicting_line(broker, bikes_video, pose_weights,
                                                                   tmp_path):  # type: ignore[no-untyped-def]
    """``road`` warns 3 s ahead (the first cyclist: warned at frame 33, crossed at 39), ``kerb`` does not: Home
    Assistant gets one more sensor for ``road`` only, it reads 1 while the warning stands and 0 at the end."""
    config = tmp_path / "predict.yaml"
    config.write_text("lines:\n  - {name: road, points: [[400, 0], [400, 400]], predict_seconds: 3.0}\n"
                      "  - {name: kerb, points: [[0, 300], [640, 300]]}\n")
    sub = _sub_process(broker.port, "trackstream/bikes/lines/road", tmp_path / "sub.txt")
    run = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "60",
                  "--quiet", "--config", str(config), "--mqtt", broker.url, "--mqtt-discovery", timeout=120)
    assert run.returncode == 0, run.stderr
    kept = retained(broker)
    configs = {t: json.loads(p) for t, p in kept.items() if t.startswith("homeassistant/")}
    assert all(problems(t, kept[t], retained=kept) == [] for t in configs)
    pending = [c for c in configs.values() if c["name"].endswith("predicted crossings pending")]
    assert [c["name"] for c in pending] == ["road predicted crossings pending"]
    assert pending[0]["value_template"] == "{{ value_json.predicted_pending }}"
    time.sleep(0.5)
    sub.terminate()
    sub.wait(10)
    check = _validator("mqtt_line.schema.json")
    seen = [json.loads(line.split(" ", 1)[1]) for line in (tmp_path / "sub.txt").read_text().splitlines()
            if line.startswith("trackstream/bikes/lines/road ")]
    assert all(not list(check.iter_errors(doc)) for doc in seen)
    values = [doc["predicted_pending"] for doc in seen]
    assert 1 in values and values[-1] == 0          # warned before the crossing, fulfilled by it
    first = next(doc for doc in seen if doc["predicted_pending"] == 1)
    assert first["total"] == 0 and seen[-1]["total"] >= 1
    assert "predicted_pending" not in json.loads(kept["trackstream/bikes/lines/kerb"])

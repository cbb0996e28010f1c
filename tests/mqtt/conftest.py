"""A real mosquitto per test (own config file, free loopback port, no persistence) that tests can kill and
restart; an in-test subscriber that collects messages (retained ones included)."""

from __future__ import annotations

import getpass
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from tests.conftest import LoopbackServer, require_binary, self_signed_certificate, serve_on_a_free_port

PASSWORD = "Mq77-Secret-pw"


class Mosquitto(LoopbackServer):
    """A mosquitto child process on a fixed port: ``stop()`` kills it (SIGKILL, retained messages are lost
    with it), ``start()`` brings it back on the same port."""

    name = "mosquitto"

    def __init__(self, binary: str, port: int, workdir: Path, password: Optional[str] = None,
                 tls: Optional[tuple[Path, Path]] = None) -> None:
        self.binary, self.port, self.workdir, self.password, self.tls = binary, port, workdir, password, tls
        self.conf = workdir / f"mosquitto-{port}.conf"
        # run as ourselves: started as root, mosquitto would switch to its own user, who cannot read tmp_path
        lines = [f"listener {port} 127.0.0.1", "persistence false", "log_dest none", f"user {getpass.getuser()}"]
        if password:
            pwfile = workdir / "passwd"
            subprocess.run([require_binary("mosquitto_passwd"), "-b", "-c", str(pwfile), "cam", password],
                           check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines += ["allow_anonymous true"]
        if tls:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        auth = f"cam:{self.password}@" if self.password else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf)]

    def subscriber(self, topic: str = "#") -> "Subscriber":
        return Subscriber(self, topic)


class Subscriber:
    """A paho client (its own thread) subscribed to ``topic``; ``messages`` holds (topic, payload, retain)."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
        if broker.password:
            self.client.username_pw_set("cam", broker.password)
        if broker.tls:
            self.client.tls_set(ca_certs=str(broker.tls[0]))
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscriber could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def latest(self) -> dict[str, bytes]:
        """topic -> last payload received (an empty payload: the retained value was cleared)."""
        with self._lock:
            return {t: p for t, p, _ in self.messages}

    def wait_for(self, predicate: Callable[["Subscriber"], bool], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.02)
        raise AssertionError(f"messages did not arrive in time; got topics {sorted(self.latest())}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Mosquitto, topic: str = "#", settle: float = 0.5) -> dict[str, bytes]:
    """The retained messages now on ``broker`` under ``topic`` (a fresh subscription receives them at once)."""
    sub = broker.subscriber(topic)
    try:
        time.sleep(settle)
        with sub._lock:
            return {t: p for t, p, r in sub.messages if r}
    finally:
        sub.close()


def json_of(payloads: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(p) for p in payloads]


def _broker(tmp_path: Path, password: Optional[str] = None,
            tls: Optional[tuple[Path, Path]] = None) -> Iterator[Mosquitto]:
    binary = require_binary("mosquitto")
    yield from serve_on_a_free_port(lambda port: Mosquitto(binary, port, tmp_path, password, tls))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    yield from _broker(tmp_path)


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    yield from _broker(tmp_path, password=PASSWORD)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A TLS listener with a fresh self-signed certificate for 127.0.0.1 (made with openssl)."""
    yield from _broker(tmp_path, tls=self_signed_certificate(tmp_path))


# -- synthetic results fed the way a source's processor feeds its sinks ---------------------------------
class Feeder:
    """Feeds a sink what a ``StreamProcessor`` would: each result with its events and counts (an
    ``EventGenerator`` over the zones and lines), each status with its events."""

    def __init__(self, sink: Any, zones: tuple = (), lines: tuple = (), source_id: str = "cam",
                 config: Any = None) -> None:
        from pipelines.processing.events import EventGenerator, EventsConfig

        self.sink, self.source_id = sink, source_id
        self._gen = EventGenerator(source_id, zones, lines, config or EventsConfig())
        self.events: list[dict[str, Any]] = []

    def write(self, result: Any) -> None:
        import dataclasses

        events = tuple(self._gen.update(result))
        self.events.extend(events)
        self.sink.write(dataclasses.replace(result, events=events, counts=self._gen.counts()))

    def status(self, kind: Any) -> None:
        from pipelines.frames import StreamStatus

        status = StreamStatus(kind, self.source_id, time.time())
        events = tuple(self._gen.status(status))
        self.events.extend(events)
        self.sink.status(StreamStatus(kind, self.source_id, status.wall_time, events=events,
                                      counts=self._gen.counts()))

    def counts(self) -> Any:
        return self._gen.counts()


def walkers(n_frames: int = 40, source: str = "cam") -> list[Any]:
    """Two people walking right across x = 50 (track 1 from frame 0, track 2 from frame 10); track 1 is
    removed by the tracker at frame 30."""
    from tests.redis.conftest import make_result

    out = []
    for f in range(n_frames):
        boxes, removed = {}, []
        if f < 28:
            boxes[1] = [5.0 + 3 * f, 10, 15.0 + 3 * f, 40]
        elif f == 30:
            removed.append(1)
        if f >= 10:
            boxes[2] = [3.0 * (f - 10), 20, 3.0 * (f - 10) + 10, 50]
        out.append(make_result(f, boxes, source=source, removed=removed))
    return out

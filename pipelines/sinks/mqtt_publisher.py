"""MQTT delivery: the MQTT part of a ``BufferedPublisher`` (``pipelines/sinks/publisher.py``).

``MqttPublisher.publish`` queues a message without waiting for the network; the base class's background
thread sends the buffer in order, survives outages (buffer, drop the oldest beyond ``buffer_max_entries``,
retry with backoff) and reports what could not be delivered at close. This module adds what is
MQTT-specific:

- one client (one connection) per publisher, with a retained last will (``offline`` on the source's state
  topic) that the broker publishes if the process vanishes;
- a batch counts as sent once the broker has acknowledged every QoS 1/2 message in it (QoS 0: once it is
  written to the socket); a batch whose connection broke is sent again after reconnecting, so delivery is
  *at least once* (a subscriber may see an event twice after an outage, never a retained value go back);
- the last value of every retained topic is remembered and published again after each reconnect: a broker
  restarted without persistence has forgotten them (state, counts, discovery configs);
- a connection lost while idle queues the state message again, so the thread notices the outage and
  restores the retained topics as soon as the broker is back, even when nothing else is being published.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from pipelines.sinks.mqtt_conn import MqttConfig, close_client, describe, error_text, open_client
from pipelines.sinks.publisher import BufferedPublisher, PublisherStats

__all__ = ["Message", "MqttPublisher", "PublisherStats"]

log = logging.getLogger("trackstream.mqtt")


@dataclass(frozen=True)
class Message:
    """One MQTT message: topic, payload bytes, QoS (0-2) and the retain flag."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class MqttPublisher(BufferedPublisher[Message]):
    """Deliver messages to one MQTT broker connection from a background thread.

    Args:
        config: the ``mqtt:`` section (``url`` must be set).
        will: the retained state message the broker publishes when we vanish (topic, payload).
        client_name: readable part of the client id (the source id); a random suffix keeps ids unique.
        ack_timeout: seconds a batch may wait for the broker's acknowledgements before the connection is
            treated as broken (and the batch sent again after reconnecting).
    """

    def __init__(self, config: MqttConfig, will: tuple[str, bytes], client_name: str,
                 ack_timeout: float = 10.0) -> None:
        assert config.url is not None
        super().__init__(f"MQTT broker at {describe(config.url)}", config.buffer_max_entries, batch_max=500,
                         log=log, thread_name="mqtt-publisher")
        self._cfg = config
        self._url = config.url
        self._will = Message(will[0], will[1], 1, True)
        self._client_id = f"trackstream-{client_name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"[:64]
        self._ack_timeout = ack_timeout
        self._client: Any = None
        self._up = threading.Event()
        self._retained: dict[str, Message] = {}   # topic -> last retained message the broker acknowledged
        self._state: Optional[Message] = None     # the last state message queued (re-queued on a silent loss)
        self._state_sent: Optional[Message] = None   # the last state message the broker acknowledged
        self._state_lock = threading.Lock()
        self._gone = threading.Event()            # close() has returned: a send waiting for acks gives up
        self._start()

    def publish(self, message: Message) -> None:
        """Queue ``message``; never blocks on the network. Drops the oldest message when the buffer is full."""
        if message.topic == self._will.topic:
            with self._state_lock:
                self._state = message
        self.enqueue(message)

    def close(self, timeout: float) -> PublisherStats:
        """Deliver what is buffered (for at most ``timeout`` s), then stop (see ``BufferedPublisher.close``)."""
        stats = super().close(timeout)
        self._gone.set()
        return stats

    # -- BufferedPublisher hooks (background thread) ------------------------------------------------------
    def _connect(self) -> None:
        if self._client is not None and self._up.is_set():
            return
        self._drop_client(clean=False)
        self._client = open_client(self._cfg, self._client_id, (self._will.topic, self._will.payload),
                                   on_disconnect=self._on_lost)
        self._up.set()
        again = list(self._retained.values())
        if again:                                     # the broker may have restarted and forgotten them
            self._publish_all(again)
            log.info("%s: re-published %d retained topics after reconnecting", self.name, len(again))

    def _send(self, batch: list[Message]) -> list[Message]:
        self._publish_all(batch)
        for message in batch:
            if message.retain:
                self._retained[message.topic] = message
            if message.topic == self._will.topic:
                self._state_sent = message
        return []

    def _disconnect(self) -> None:
        # Unless the broker has the latest state, vanish without DISCONNECT: it then publishes the retained
        # ``offline`` will (at the end that is what the undelivered state said; mid-run we were unreachable).
        with self._state_lock:
            said = self._state is None or self._state is self._state_sent
        self._drop_client(clean=said)

    def _destination(self, entry: Message) -> str:
        return entry.topic

    def _error_text(self, exc: BaseException) -> str:
        return error_text(exc, self._url)

    # -- MQTT specifics -----------------------------------------------------------------------------------
    def _publish_all(self, messages: list[Message]) -> None:
        """Publish ``messages`` in order and wait for the broker to acknowledge them; raise ConnectionError
        when the connection is lost or the acknowledgements do not come within ``ack_timeout``."""
        import paho.mqtt.client as mqtt

        client = self._client
        infos = []
        for m in messages:
            if not self._up.is_set():
                raise ConnectionError("connection lost")
            info = client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(mqtt.error_string(info.rc))
            infos.append(info)
        deadline = time.monotonic() + self._ack_timeout
        for info in infos:
            while not info.is_published():
                if not self._up.is_set() or self._gone.is_set():
                    raise ConnectionError("connection lost before the broker acknowledged every message")
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"no acknowledgement from the broker within {self._ack_timeout:g} s")
                info.wait_for_publish(0.05)

    def _on_lost(self, client: Any) -> None:
        """Paho's thread: the connection dropped. Re-queue the state so the thread notices even when idle
        (not when we closed it ourselves: ``_drop_client`` has let go of the client by then)."""
        if client is not self._client:
            return
        self._up.clear()
        with self._state_lock:
            state = self._state
        if state is not None:
            try:
                self.enqueue(state)
            except RuntimeError:      # closing: nothing more is published
                pass

    def _drop_client(self, clean: bool) -> None:
        client, self._client = self._client, None
        self._up.clear()
        if client is not None:
            close_client(client, clean=clean)

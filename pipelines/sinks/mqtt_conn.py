"""MQTT connection settings, URLs and one connected paho client, with passwords kept out of every message.

URL forms (checked here so mistakes end in one clear line):

- ``mqtt://[user[:password]@]host[:port][/prefix]`` (plain TCP, port 1883 by default),
- ``mqtts://...`` (TLS, port 8883 by default; CA, client certificate and host name checking in the
  ``mqtt:`` config section).

A path (``/prefix``, may have several levels: ``/site/cams``) replaces ``mqtt.topic_prefix``.

``open_client`` returns a client whose broker has accepted the connection (CONNACK), with paho's network
thread running (it answers keep-alive pings while the sink is idle) and paho's own reconnecting switched
off: ``BufferedPublisher`` decides when to reconnect, with its backoff.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Any, Callable, Literal, Optional
from urllib.parse import unquote, urlsplit

from pipelines.errors import UserError
from pipelines.secrets import mask_url, redact_text, url_password
from tracker.configutil import ConfigError

__all__ = ["MqttConfig", "MqttRefused", "Target", "check_reachable", "describe", "error_text", "open_client",
           "parse_url", "topic_clash", "topic_levels", "topic_part"]

SCHEMES = {"mqtt": 1883, "mqtts": 8883}

log = logging.getLogger("trackstream.mqtt")


def topic_part(name: str) -> str:
    """``name`` as one topic level and Home Assistant id part: other characters than ``A-Za-z0-9_-`` -> ``_``.

    Home Assistant's discovery accepts only ``[a-zA-Z0-9_-]`` in the node and object ids of a discovery topic
    and ignores any other config topic with a warning in its own log ("The topic contains not allowed
    characters"), so a ``.`` (``cam.1``, ``bikes.mp4``) must not reach one."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "_"


def topic_clash(names: Iterable[str]) -> Optional[tuple[str, str, str]]:
    """The first two different ``names`` that would share a topic level (``topic_part``), and that level;
    None when every name has its own."""
    seen: dict[str, str] = {}
    for name in names:
        part = topic_part(name)
        other = seen.setdefault(part, name)
        if other != name:
            return other, name, part
    return None


@dataclass(frozen=True)
class MqttConfig:
    """The ``mqtt:`` config section (see ``configs/default.yaml`` and ``docs/mqtt.md``).

    Attributes:
        url: broker URL (see the module docstring); null disables the MQTT sink.
        topic_prefix: first topic levels of every topic (``<prefix>/<source>/...``); a URL path wins.
        qos: 0, 1 or 2 for events, counts and state (the tracks summary always uses 0).
        tracks_interval: seconds of video time between ``<prefix>/<source>/tracks`` summaries; 0 = every
            frame; null = no tracks topic.
        discovery: publish Home Assistant discovery configs (sensors per zone and line, one device per
            source) under ``discovery_prefix``.
        discovery_prefix: Home Assistant's discovery prefix.
        keepalive: seconds between keep-alive pings; the broker declares us gone (and publishes the
            ``offline`` last will) after 1.5 times this without a word from us.
        tls_ca_certs: CA bundle to check the broker's certificate (mqtts; null: the system's CAs).
        tls_certfile / tls_keyfile: client certificate and key (mqtts; optional).
        tls_insecure: do not check that the certificate names the broker's host (mqtts; for tests and
            self-signed certificates whose name does not match).
        buffer_max_entries: messages kept in memory while the broker is unreachable; beyond it the oldest
            are dropped and counted.
        on_unreachable: at start, ``wait`` (buffer and keep retrying) or ``fail`` (stop with an error)
            when the broker cannot be reached. A broker that refuses the credentials always fails.
        connect_timeout: seconds to wait for the broker to accept a connection.
        flush_timeout: seconds ``close()`` keeps trying to deliver buffered messages before giving up.
    """

    url: Optional[str] = None
    topic_prefix: str = "trackstream"
    qos: int = field(default=1, metadata={"min": 0, "max": 2})
    tracks_interval: Optional[float] = field(default=None, metadata={"min": 0.0})
    discovery: bool = False
    discovery_prefix: str = "homeassistant"
    keepalive: int = field(default=30, metadata={"min": 5, "max": 65535})
    tls_ca_certs: Optional[str] = None
    tls_certfile: Optional[str] = None
    tls_keyfile: Optional[str] = None
    tls_insecure: bool = False
    buffer_max_entries: int = field(default=10000, metadata={"min": 1})
    on_unreachable: Literal["wait", "fail"] = "wait"
    connect_timeout: float = field(default=5.0, metadata={"gt": 0.0})
    flush_timeout: float = field(default=10.0, metadata={"min": 0.0})

    def __post_init__(self) -> None:
        topic_levels(self.topic_prefix, "topic_prefix")
        topic_levels(self.discovery_prefix, "discovery_prefix")
        if self.url is None:
            return
        target = parse_url(self.url, key="url")
        tls_keys = [k for k in ("tls_ca_certs", "tls_certfile", "tls_keyfile") if getattr(self, k)]
        if tls_keys and not target.tls:
            raise ConfigError(tls_keys[0], f"needs an mqtts:// URL, got {describe(self.url)!r}")
        if self.tls_keyfile and not self.tls_certfile:
            raise ConfigError("tls_keyfile", "needs tls_certfile (the client certificate) too")

    @property
    def prefix(self) -> str:
        """The topic prefix in effect: the URL's path, else ``topic_prefix``."""
        return (parse_url(self.url).prefix if self.url else None) or self.topic_prefix


@dataclass(frozen=True)
class Target:
    """A parsed broker URL."""

    host: str
    port: int
    tls: bool
    username: Optional[str]
    password: Optional[str]
    prefix: Optional[str]


def topic_levels(text: str, key: str) -> str:
    """``text`` if it is usable as the first levels of a topic name; ConfigError naming ``key`` otherwise."""
    if not text or text.startswith("/") or text.endswith("/") or "//" in text:
        raise ConfigError(key, f"must be topic levels like 'trackstream' or 'site/cams', got {text!r}")
    if any(c in text for c in "+#\0") or text.startswith("$"):
        raise ConfigError(key, f"must not contain +, # or start with $, got {text!r}")
    return text


def parse_url(url: str, key: str = "mqtt.url") -> Target:
    """The parts of a broker URL; ConfigError (password masked) when it is not usable."""
    shown = describe(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(key, f"not a valid MQTT URL {shown!r}: {redact_text(str(exc), url_password(url))}") \
            from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(key, f"{shown!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(key, f"{shown!r} has no host name")
    if parts.query or parts.fragment or url.rstrip("?#") != url:
        raise ConfigError(key, f"{shown!r}: put TLS and other options in the mqtt: config section, not in the URL")
    prefix = unquote(parts.path.strip("/")) or None
    if prefix is not None:
        topic_levels(prefix, key)
    return Target(parts.hostname, port or SCHEMES[parts.scheme], parts.scheme == "mqtts",
                  unquote(parts.username) if parts.username is not None else None,
                  unquote(parts.password) if parts.password is not None else None, prefix)


def describe(url: str) -> str:
    """The URL as it may appear in logs: password masked."""
    return mask_url(url)


def error_text(exc: BaseException, url: str) -> str:
    """One line describing ``exc`` without the password of ``url``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    pw = url_password(url)
    return redact_text(text, *(s for s in {pw, unquote(pw)} if s)) if pw else redact_text(text)


class MqttRefused(ConnectionError):
    """The broker answered and refused us (credentials, authorisation, client id): retrying will not help
    until the configuration changes."""


def open_client(config: MqttConfig, client_id: str, will: Optional[tuple[str, bytes]] = None,
                on_disconnect: Optional[Callable[[Any], None]] = None) -> Any:
    """A paho client connected to ``config.url`` (CONNACK received), its network thread running.

    Args:
        config: the ``mqtt:`` section (``url`` must be set).
        client_id: the MQTT client id (unique per connection: a broker drops an older client of the same id).
        will: (topic, payload) published retained by the broker if we vanish without a clean disconnect.
        on_disconnect: called with the client (from paho's thread) when an established connection is lost.

    Raises:
        MqttRefused: the broker refused the connection (bad user name or password, not authorised).
        OSError, TimeoutError: the broker could not be reached (``ssl.SSLError`` for TLS failures).
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    assert config.url is not None
    target = parse_url(config.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=MQTTProtocolVersion.MQTTv311, reconnect_on_failure=False)
    client.connect_timeout = config.connect_timeout
    client.max_inflight_messages_set(1000)
    if target.username is not None:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=config.tls_ca_certs, certfile=config.tls_certfile, keyfile=config.tls_keyfile,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(config.tls_insecure)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    answered = threading.Event()
    refusal: list[str] = []
    connected = [False]

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if getattr(reason, "is_failure", False):
            refusal.append(str(reason))
        else:
            connected[0] = True
        answered.set()

    def lost(c: Any, _u: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        answered.set()
        if connected[0] and on_disconnect is not None:
            on_disconnect(c)

    client.on_connect = on_connect
    client.on_disconnect = lost
    client.connect(target.host, target.port, keepalive=config.keepalive)  # TCP (+ TLS) and CONNECT: may raise
    client.loop_start()
    if not answered.wait(config.connect_timeout) or not (connected[0] or refusal):
        close_client(client)
        raise TimeoutError(f"no answer to CONNECT within {config.connect_timeout:g} s")
    if refusal:
        close_client(client)
        raise MqttRefused(f"connection refused: {refusal[0]}")
    return client


def close_client(client: Any, clean: bool = True) -> None:
    """Stop ``client``'s network thread and close its connection; ``clean=False`` closes the socket without
    a DISCONNECT packet, so the broker publishes the last will. Never raises."""
    try:
        if clean:
            client.disconnect()
        client.loop_stop()
        sock = client.socket()
        if sock is not None:
            sock.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
        log.debug("closing the MQTT connection failed", exc_info=True)


def check_reachable(config: MqttConfig) -> None:
    """Connect once at start: UserError (one line, password masked) when the broker refuses the credentials
    or the TLS setup fails, or, with ``on_unreachable: fail``, when it cannot be reached. With ``wait`` an
    unreachable broker is one WARNING line (the sink then buffers and retries)."""
    if not config.url:
        return
    where = f"MQTT broker at {describe(config.url)}"
    try:
        client = open_client(config, f"trackstream-check-{uuid.uuid4().hex[:8]}")
    except MqttRefused as exc:
        raise UserError(f"{where} refused us: {error_text(exc, config.url)}") from None
    except ssl.SSLError as exc:
        raise UserError(f"TLS with {where} failed: {error_text(exc, config.url)}") from None
    except (OSError, TimeoutError, ValueError) as exc:
        if config.on_unreachable == "fail":
            raise UserError(f"cannot reach {where}: {error_text(exc, config.url)}") from None
        log.warning("cannot reach %s (%s); buffering and retrying", where, error_text(exc, config.url))
        return
    close_client(client)

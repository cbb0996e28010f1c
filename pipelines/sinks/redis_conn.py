"""Redis connection settings and URLs, with passwords kept out of every message.

URL forms (``redis-py``'s, checked here so mistakes end in one clear line):

- ``redis://[[user]:password@]host[:port][/db]`` (plain TCP; ``user`` for Redis 6 ACLs),
- ``rediss://...`` (TLS; ``?ssl_cert_reqs=none`` or ``?ssl_ca_certs=/path/ca.pem`` as query options),
- ``unix:///path/to/redis.sock[?db=N]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional
from urllib.parse import unquote, urlsplit

from pipelines.errors import UserError
from pipelines.secrets import mask_url, redact_text, redact_url, url_password
from tracker.configutil import ConfigError

SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RedisConfig:
    """The ``redis:`` config section (see ``configs/default.yaml`` and ``docs/redis.md``).

    Attributes:
        url: server URL (see module docstring); null disables the Redis sink.
        source_id: overrides the source id used in stream names and documents.
        frames_stream / events_stream: stream names; ``{source}`` is replaced by the source id.
        counts_stream: stream of the zone and line counts, one entry each time they change (the last entry is
            the counts now); ``{source}`` as above.
        publish_frames: publish one frames-stream entry per processed frame (events are always published).
        frames_maxlen / events_maxlen / counts_maxlen: approximate retention (``XADD MAXLEN ~``); null keeps
            everything.
        buffer_max_entries: entries kept in memory while Redis is unreachable; beyond it the oldest are
            dropped and counted.
        on_unreachable: at start, ``wait`` (buffer and keep retrying) or ``fail`` (stop with an error).
        connect_timeout: seconds to wait for a connection.
        flush_timeout: seconds ``close()`` keeps trying to deliver buffered entries before giving up.
    """

    url: Optional[str] = None
    source_id: Optional[str] = None
    frames_stream: str = "trackstream:{source}:frames"
    events_stream: str = "trackstream:{source}:events"
    counts_stream: str = "trackstream:{source}:counts"
    publish_frames: bool = True
    frames_maxlen: Optional[int] = field(default=10000, metadata={"min": 1})
    events_maxlen: Optional[int] = field(default=100000, metadata={"min": 1})
    counts_maxlen: Optional[int] = field(default=10000, metadata={"min": 1})
    buffer_max_entries: int = field(default=10000, metadata={"min": 1})
    on_unreachable: Literal["wait", "fail"] = "wait"
    connect_timeout: float = field(default=2.0, metadata={"gt": 0.0})
    flush_timeout: float = field(default=10.0, metadata={"min": 0.0})

    def __post_init__(self) -> None:
        if self.url is not None:
            check_url(self.url, key="url")
        for key in ("frames_stream", "events_stream", "counts_stream"):
            stream_name(getattr(self, key), "x", key=key)
        if self.source_id is not None and not self.source_id.strip():
            raise ConfigError("source_id", "must not be empty")
        if self.source_id is not None and redact_url(self.source_id) != self.source_id:   # in every stream name
            raise ConfigError("source_id", f"must not hold a password or token, got {redact_url(self.source_id)!r}")


def stream_name(template: str, source: str, key: str = "stream") -> str:
    """``template`` with ``{source}`` replaced; ConfigError for other braces."""
    try:
        name = template.format(source=source)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(key, f"only {{source}} may appear in braces, got {template!r} ({exc})") from None
    if not name:
        raise ConfigError(key, "must not be empty")
    return name


def check_url(url: str, key: str = "redis.url") -> None:
    """Raise ConfigError (password masked) when ``url`` is not a usable Redis URL."""
    shown = describe(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(key, f"not a valid Redis URL {shown!r}: {redact_text(str(exc), url_password(url))}") \
            from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(key, f"{shown!r} must start with redis://, rediss:// or unix://")
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ConfigError(key, f"{shown!r} has no host name")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ConfigError(key, f"{shown!r}: the path must be a database number, got {db!r}")
    elif not parts.path:
        raise ConfigError(key, f"{shown!r} has no socket path")


def describe(url: str) -> str:
    """The URL as it may appear in logs: password masked."""
    return mask_url(url)


def secrets_of(url: str) -> tuple[str, ...]:
    """The password of ``url`` both as written and percent-decoded (to mask in any text)."""
    pw = url_password(url)
    return tuple(s for s in {pw, unquote(pw)} if s) if pw else ()


def error_text(exc: BaseException, url: str) -> str:
    """One line describing ``exc`` without the password of ``url``."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact_text(text, *secrets_of(url))


def connect(url: str, connect_timeout: float, socket_timeout: Optional[float] = None,
            decode_responses: bool = False) -> Any:
    """A ``redis.Redis`` client for ``url`` (no I/O yet); redis-py's own retries are off.

    We retry ourselves (with backoff, and without ever blocking the pipeline), so a failing call
    fails fast here.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    check_url(url)
    try:
        return redis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
            decode_responses=decode_responses, retry=Retry(NoBackoff(), 0), health_check_interval=0,
            protocol=2)  # RESP2: stable reply shapes across redis-py versions
    except (ValueError, TypeError) as exc:
        raise UserError(f"bad Redis URL {describe(url)}: {error_text(exc, url)}") from None


class RedisRefused(UserError):
    """Redis answered and refused the credentials or the database number: retrying cannot help until the
    configuration changes."""


def ping(client: Any, url: str) -> None:
    """PING the server; UserError naming the (masked) URL when it cannot be reached or refuses us."""
    import redis

    try:
        client.ping()
    except redis.AuthenticationError as exc:  # refused credentials, not an outage
        raise RedisRefused(f"Redis at {describe(url)} refused us: {error_text(exc, url)}") from None
    except redis.ResponseError as exc:
        # refused credentials, or a database number the server does not have (SELECT 99 of 16): no outage
        if any(word in str(exc) for word in ("WRONGPASS", "NOAUTH", "NOPERM", "invalid password", "DB index")):
            raise RedisRefused(f"Redis at {describe(url)} refused us: {error_text(exc, url)}") from None
        raise UserError(f"Redis at {describe(url)} refused us: {error_text(exc, url)}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise UserError(f"cannot reach Redis at {describe(url)}: {error_text(exc, url)}") from None
    except redis.RedisError as exc:
        raise UserError(f"Redis at {describe(url)} refused us: {error_text(exc, url)}") from None
    except ValueError as exc:  # e.g. a TLS option redis-py cannot use
        raise UserError(f"cannot reach Redis at {describe(url)}: {error_text(exc, url)}") from None

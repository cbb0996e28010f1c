"""The ``http:`` section: where the live web view listens, who may open it, and what it costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from pipelines.listen import DEFAULT_HOST, is_loopback, parse_listen
from tracker.configutil import ConfigError

__all__ = ["DEFAULT_HOST", "HttpConfig", "is_loopback", "parse_listen"]


@dataclass(frozen=True)
class HttpConfig:
    """The built-in web view of a run (``--http [HOST:]PORT``): every camera live in a page.

    Attributes:
        listen: ``[HOST:]PORT`` to serve on (host 127.0.0.1 unless one is given); None: no web view.
        token: when set, every request needs it (``Authorization: Bearer``, ``?token=`` or the cookie the
            page sets); without one the view is open to whoever reaches the port (a warning says so).
        max_fps: most pictures per second sent to one viewer (JPEG encoding follows the viewers, never
            the pipeline: a source nobody watches is never encoded).
        jpeg_quality: JPEG quality of the live picture, 10..100.
        max_width: pictures wider than this are scaled down for the view (pixels; saves bandwidth on phones).
        events: how many of a source's latest events the view keeps.
        stall_timeout: seconds a viewer may read nothing before it is disconnected.
        cert / key: PEM certificate (chain) and private key files: serve over HTTPS (both or neither).
    """

    listen: Optional[Union[str, int]] = None
    token: Optional[str] = None
    max_fps: float = field(default=10.0, metadata={"gt": 0, "max": 60.0})
    jpeg_quality: int = field(default=80, metadata={"min": 10, "max": 100})
    max_width: int = field(default=1280, metadata={"min": 64, "max": 16384})
    events: int = field(default=20, metadata={"min": 1, "max": 1000})
    stall_timeout: float = field(default=30.0, metadata={"gt": 0})
    cert: Optional[str] = None
    key: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("cert" if self.cert is None else "key",
                              "TLS needs both a certificate and its private key (--http-cert and --http-key)")
        if self.listen is not None:
            parse_listen(self.listen)
        if self.token is not None and not self.token.strip():
            raise ConfigError("token", "must not be empty")

    @property
    def enabled(self) -> bool:
        return self.listen is not None

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0] if self.listen is not None else DEFAULT_HOST

    @property
    def port(self) -> Optional[int]:
        return parse_listen(self.listen)[1] if self.listen is not None else None

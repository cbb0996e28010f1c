"""Listening addresses: ``[HOST:]PORT`` with a private default host, shared by every server trackstream runs
(the web view and the metrics endpoint)."""

from __future__ import annotations

import ipaddress
from typing import Union

from tracker.configutil import ConfigError

__all__ = ["DEFAULT_HOST", "is_loopback", "parse_listen"]

DEFAULT_HOST = "127.0.0.1"


def parse_listen(value: Union[str, int]) -> tuple[str, int]:
    """``"8080"``, ``8080``, ``"0.0.0.0:8080"``, ``"[::1]:8080"`` -> (host, port); the host defaults to
    127.0.0.1 (binding beyond this machine has to be asked for). Raises ConfigError("listen", ...)."""
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError("listen", f"expected [HOST:]PORT with a port 1..65535 (e.g. 8080 or 0.0.0.0:8080), "
                                    f"got {value!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.x, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""The ``--metrics-port`` endpoint: Prometheus text on a private address, behind the web token when one is set.

prometheus_client's own server has no authentication, so this wraps its WSGI app: with a token, a request
needs ``Authorization: Bearer TOKEN`` (or ``?token=TOKEN``), as the web view's ``/metrics`` does. It binds
127.0.0.1 unless ``[HOST:]PORT`` names another interface.
"""

from __future__ import annotations

import hmac
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _guarded(app: Callable[..., Iterable[bytes]], token: Optional[str]) -> Callable[..., Iterable[bytes]]:
    if token is None:
        return app
    expected = token.encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        given: Optional[str] = header[7:] if header.lower().startswith("bearer ") else None
        if given is None:
            given = next(iter(parse_qs(str(environ.get("QUERY_STRING", ""))).get("token", [])), None)
        if given is None or not hmac.compare_digest(given.encode(), expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("WWW-Authenticate", "Bearer")])
            return [b"trackstream: /metrics needs the web token (Authorization: Bearer TOKEN)\n"]
        return app(environ, start_response)

    return guarded


def serve_metrics(registry: CollectorRegistry, host: str, port: int, token: Optional[str]) -> WSGIServer:
    """Serve ``registry`` on ``host:port`` in a daemon thread; ``shutdown()`` + ``server_close()`` stop it.
    ``OSError`` when the address cannot be bound."""
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, _guarded(make_wsgi_app(registry), token), server_class=server_class,
                         handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="trackstream-metrics-http", daemon=True).start()
    return server

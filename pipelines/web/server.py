"""The web view's HTTP server: aiohttp on its own event loop thread, next to the pipeline.

Routes (all behind the token when one is set; see docs/web.md):

- ``/``: the page (``static/index.html``, ``app.js``, ``style.css`` shared with the history page; plain files, no
  build step, no CDN; it links to ``/history`` when the run keeps one);
- ``/api/sources``, ``/api/sources/{id}``: status JSON of every source / one source;
- ``/api/events``: server-sent events, one ``status`` event with every source's document twice a second;
- ``/video/{id}``: the annotated live picture as MJPEG (``multipart/x-mixed-replace``: ``<img>``, VLC, ffplay);
- ``/snapshot/{id}``: one JPEG; ``?after=N`` waits (up to 10 s) for a picture newer than number ``N``
  (``X-Frame-Seq`` says a picture's number): the page pulls pictures this way, one at a time;
- ``/api/heatmap/{id}.png``: the source's heatmap over its newest picture (``?class=NAME``: one class's);
  404 while the source's heatmap is off (``heatmap.enabled``);
- ``/metrics`` (Prometheus, when the run has a monitor) and ``/healthz``.

Costs follow the viewers, never the pipeline: a picture is drawn and JPEG-encoded (``cv2.imencode``, in a
small thread pool) only when a viewer asks for one, at most ``max_fps`` times a second per source however
many viewers share it, and each viewer gets the newest one: a viewer that reads slowly skips pictures; one
that reads nothing for ``stall_timeout`` seconds is disconnected. Nothing is queued per viewer beyond a
small socket buffer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Sequence
from urllib.parse import unquote

import cv2
import numpy as np
from aiohttp import web

from pipelines.errors import UserError
from pipelines.processing.overlays import Annotator
from pipelines.frames import FrameResult
from pipelines.web.config import HttpConfig, is_loopback
from pipelines.sinks.viewer import ViewerSink
from pipelines.web.status import SourceView, all_doc, source_doc

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig
    from pipelines.engine.metrics import Monitor
    from pipelines.engine.view import EngineView
    from pipelines.web.history import History

log = logging.getLogger("trackstream.web")

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE = "trackstream_token"
BOUNDARY = "trackstream-frame"
SSE_INTERVAL_S = 0.5
WAIT_SLICE_S = 1.0     # a waiting stream checks this often whether its client or the server went away
SNAPSHOT_WAIT_S = 10.0
JPEG_THREADS = 2
STREAM_SEND_BUFFER = 128 * 1024  # kernel buffer of a picture stream: a few pictures, not seconds of them

Views = Callable[[], Sequence[SourceView]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Feed:
    """The pictures of one source for its viewers: waits for newer results, draws and encodes each at most
    once (shared by every viewer), listens to the viewer sink only while someone watches."""

    def __init__(self, viewer: ViewerSink, config: HttpConfig, loop: asyncio.AbstractEventLoop,
                 pool: ThreadPoolExecutor) -> None:
        self.viewer = viewer
        self._config, self._loop, self._pool = config, loop, pool
        self._annotator = Annotator(viewer.overlay, viewer.settings.zones, viewer.settings.lines)
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._encoded_at = -1e9   # loop time of the last encoding
        self._encoding = asyncio.Lock()
        self._changed: Optional[asyncio.Future[None]] = None
        self._unlisten: Optional[Callable[[], None]] = None
        self.watchers = 0

    def attach(self) -> None:
        self.watchers += 1
        if self._unlisten is None:
            self._unlisten = self.viewer.listen(self._wake_from_pipeline)

    def detach(self) -> None:
        self.watchers -= 1
        if self.watchers <= 0 and self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _wake_from_pipeline(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop closed: the server is gone
            pass

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def wait_newer(self, seq: int, timeout: float) -> bool:
        """Wait until a result newer than picture ``seq`` is there; False after ``timeout`` s."""
        deadline = self._loop.time() + timeout
        while self.viewer.seq <= seq:
            left = deadline - self._loop.time()
            if left <= 0:
                return False
            if self._changed is None:
                self._changed = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._changed), left)
            except asyncio.TimeoutError:
                return False
        return True

    async def jpeg(self, newer_than: int = 0) -> tuple[int, bytes]:
        """(number, JPEG bytes) of the newest picture; (0, b"") before the first.

        A picture encoded less than a frame interval (``1 / max_fps``) ago is handed out again to every
        viewer that has not had it, so a source is encoded at most ``max_fps`` times a second however
        many viewers watch it."""
        async with self._encoding:
            held = self.viewer.state()
            seq, _ = self._jpeg
            fresh = seq > newer_than and self._loop.time() - self._encoded_at < 1.0 / self._config.max_fps
            if held.result is not None and held.seq != seq and not fresh:
                data = await self._loop.run_in_executor(self._pool, self._encode, held.result)
                self._jpeg, self._encoded_at = (held.seq, data), self._loop.time()
            return self._jpeg

    def _encode(self, result: FrameResult) -> bytes:
        image = self._annotator.draw(result)
        height, width = image.shape[:2]
        if width > self._config.max_width:
            size = (self._config.max_width, max(1, round(height * self._config.max_width / width)))
            # INTER_LINEAR: a tenth of INTER_AREA's time, and alike for the small ratios of a view
            image = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._config.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return bytes(buf.tobytes())


class WebView:
    """Serves the live view of a run until ``stop()``.

    Args:
        config: the ``http:`` section (``listen`` must be set).
        views: returns every source's current ``SourceView`` (``status.runner_views(runner, monitor)``).
        metrics: returns the Prometheus text exposition for ``/metrics``; None: no ``/metrics``.
    """

    def __init__(self, config: HttpConfig, views: Views, metrics: Optional[Callable[[], bytes]] = None,
                 history: Optional["History"] = None) -> None:
        if config.port is None:
            raise ValueError("HttpConfig.listen is not set")
        self.config = config
        self.host, self.port = config.host, config.port
        self._views, self._metrics = views, metrics
        self._history = history   # the event store's routes (--db; pipelines/web/history.py)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._closing: Optional[asyncio.Event] = None
        self._pool = ThreadPoolExecutor(JPEG_THREADS, thread_name_prefix="trackstream-web-jpeg")
        self._feeds: dict[int, _Feed] = {}   # id(viewer sink) -> its feed
        self._all: tuple[float, bytes] = (0.0, b"")
        self.clients = 0   # streams open now (pictures and events)
        self._tls: Optional[ssl.SSLContext] = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.config.cert else 'http'}://{host}:{self.port}/"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "WebView":
        """Bind and serve in a background thread; UserError (one line) when the port cannot be had."""
        self._tls = tls_context(self.config)  # unusable certificate or key: one line before binding
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
                failure.append(exc)
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="trackstream-web", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._pool.shutdown(wait=False)
            exc = failure[0]
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UserError(f"cannot serve the web view on {self.host}:{self.port}: {reason}") from None
        self._announce()
        return self

    async def _bind(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._page)
        app.router.add_static("/static/", STATIC_DIR, append_version=False)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._prometheus)
        app.router.add_get("/api/sources", self._api_all)
        app.router.add_get("/api/sources/{id:.+}", self._api_one)
        if self._history is not None:
            self._history.register(app, live_events=self._events)   # /api/events, /api/tracks, /media, /history
        else:
            app.router.add_get("/api/events", self._events)
        app.router.add_get("/video/{id:.+}", self._video)
        app.router.add_get("/snapshot/{id:.+}", self._snapshot)
        app.router.add_get(r"/api/heatmap/{id:.+}.png", self._heatmap)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self._tls).start()

    def _announce(self) -> None:
        every = " (every interface of this machine)" if self.host in ("0.0.0.0", "::", "") else ""
        log.info("web view: %s%s", self.url, every)
        if self.config.token is None:
            where = "this machine" if is_loopback(self.host) else "anyone who can reach this port"
            log.warning("the web view at %s is open to %s: no --http-token", self.url, where)
        else:
            log.info("web view needs the token: open %s?token=<token>", self.url)

    def stop(self) -> None:
        """Close every viewer's connection and stop serving (waits at most a few seconds)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - stopping must never fail a run
            log.debug("web view shutdown failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._pool.shutdown(wait=True)
        self._thread = None

    async def _shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ access

    def _given_token(self, request: web.Request) -> tuple[Optional[str], bool]:
        """(token the request carries, whether it came in the query string)."""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip(), False
        if "token" in request.query:
            return request.query["token"], True
        return request.cookies.get(COOKIE), False

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.config.token
        if token is None:
            return await handler(request)
        given, in_query = self._given_token(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPUnauthorized(text="trackstream: this view needs its token: open /?token=<token>\n",
                                       headers={"WWW-Authenticate": 'Bearer realm="trackstream"'})
        response = await handler(request)
        if in_query and not response.prepared:  # the page's pictures and updates then need no token in URLs
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                                secure=self.config.cert is not None)
        return response

    # ------------------------------------------------------------------ pages and documents

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        views = self._views()
        return web.json_response({"status": "ok", "sources": len(views), "streams": self.clients})

    async def _prometheus(self, request: web.Request) -> web.StreamResponse:
        if self._metrics is None:
            raise web.HTTPNotFound(text="no metrics in this run\n")
        body = self._metrics()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def _all_json(self) -> bytes:
        """Every source's document, made at most every quarter second however many clients ask."""
        made, body = self._all
        now = time.monotonic()
        if now - made >= 0.25 or not body:
            body = _dumps(all_doc(self._views(), self.config.max_fps))
            self._all = (now, body)
        return body

    async def _api_all(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self._all_json(), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    def _view(self, request: web.Request) -> SourceView:
        wanted = request.match_info["id"]
        views = self._views()
        for name in (wanted, unquote(wanted)):
            for view in views:
                if view.id == name:
                    return view
        raise web.HTTPNotFound(text=f"no source {wanted!r}; sources: {', '.join(v.id for v in views)}\n")

    async def _api_one(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_dumps(source_doc(self._view(request))), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ streams

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; True when the server is closing."""
        assert self._closing is not None
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def _send(self, request: web.Request, response: web.StreamResponse, data: bytes) -> None:
        """Write ``data``; a client that takes nothing for ``stall_timeout`` s is cut off."""
        try:
            await asyncio.wait_for(response.write(data), self.config.stall_timeout)
        except asyncio.TimeoutError:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("viewer stalled") from None

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        self.clients += 1
        try:
            await self._send(request, response, b"retry: 2000\n\n")
            while not _gone(request):
                await self._send(request, response, b"event: status\ndata: " + self._all_json() + b"\n\n")
                if await self._pause(SSE_INTERVAL_S):
                    break
        except (ConnectionError, RuntimeError):
            pass   # the client left (aiohttp raises ClientConnectionResetError, a ConnectionResetError)
        finally:
            self.clients -= 1
        return response

    def _feed(self, view: SourceView) -> _Feed:
        if view.viewer is None:
            raise web.HTTPServiceUnavailable(text=f"{view.id}: no picture yet\n", headers={"Retry-After": "1"})
        key = id(view.viewer)
        feed = self._feeds.get(key)
        if feed is None or feed.viewer is not view.viewer:
            assert self._loop is not None
            feed = self._feeds[key] = _Feed(view.viewer, self.config, self._loop, self._pool)
        return feed

    async def _video(self, request: web.Request) -> web.StreamResponse:
        feed = self._feed(self._view(request))
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        _small_send_buffer(request)
        await response.prepare(request)
        interval = 1.0 / self.config.max_fps
        feed.attach()
        self.clients += 1
        try:
            seq = 0
            while not _gone(request):
                if not await feed.wait_newer(seq, WAIT_SLICE_S):
                    if self._closing is not None and self._closing.is_set():
                        break
                    continue
                sent_at = time.monotonic()
                seq, jpeg = await feed.jpeg(newer_than=seq)
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                        f"X-Frame-Seq: {seq}\r\n\r\n").encode()
                await self._send(request, response, head + jpeg + b"\r\n")
                if await self._pause(max(0.0, interval - (time.monotonic() - sent_at))):
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            feed.detach()
            self.clients -= 1
        return response

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        feed = self._feed(self._view(request))
        after = request.query.get("after", "")
        if after and not after.isdigit():   # a typo silently meant "any picture": a client polling would spin
            raise web.HTTPBadRequest(text=f"after must be a picture number (0 or more), got {after!r}\n")
        feed.attach()
        try:
            newer_than = int(after) if after else 0
            if newer_than:
                await feed.wait_newer(newer_than, SNAPSHOT_WAIT_S)
            seq, jpeg = await feed.jpeg(newer_than)
        finally:
            feed.detach()
        if not jpeg:
            raise web.HTTPServiceUnavailable(text="no picture yet\n", headers={"Retry-After": "1"})
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "no-store", "X-Frame-Seq": str(seq)})


    async def _heatmap(self, request: web.Request) -> web.StreamResponse:
        view = self._view(request)
        held = view.viewer.state() if view.viewer is not None else None
        result = held.result if held is not None else None
        if result is None:
            raise web.HTTPServiceUnavailable(text=f"{view.id}: no picture yet\n", headers={"Retry-After": "1"})
        heat = result.heat
        if heat is None:
            raise web.HTTPNotFound(text=f"{view.id}: its heatmap is off (heatmap: {{enabled: true}}, --heatmap "
                                        "FILE or --heatmap-overlay)\n")
        wanted = request.query.get("class")
        grid = heat.total if wanted is None else heat.by_class.get(wanted)
        if grid is None:
            known = ", ".join(sorted(heat.by_class)) or "none yet"
            raise web.HTTPBadRequest(text=f"{view.id}: no heat of class {wanted!r} (classes seen: {known})\n")
        assert self._loop is not None
        png = await self._loop.run_in_executor(self._pool, self._heat_png, result.frame.image, grid)
        return web.Response(body=png, content_type="image/png",
                            headers={"Cache-Control": "no-store", "X-Heatmap-Frames": str(heat.frames)})

    def _heat_png(self, image: np.ndarray, grid: np.ndarray) -> bytes:
        from pipelines.processing.heatmap import PICTURE_ALPHA, blend

        height, width = image.shape[:2]
        if width > self.config.max_width:
            size = (self.config.max_width, max(1, round(height * self.config.max_width / width)))
            image = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        ok, buf = cv2.imencode(".png", blend(image, grid, PICTURE_ALPHA))
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return bytes(buf.tobytes())


def _small_send_buffer(request: web.Request) -> None:
    """Keep little of a stream in the kernel: a viewer that falls behind gets the newest picture soon
    (instead of seconds of old ones), and one that stalls is noticed within ``stall_timeout``."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        except OSError:
            pass


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _dumps(doc: Any) -> bytes:
    """Compact JSON; a NaN or infinity (which browsers cannot parse) becomes null."""
    try:
        return json.dumps(doc, separators=(",", ":"), default=str, allow_nan=False).encode()
    except ValueError:
        return json.dumps(_no_nan(doc), separators=(",", ":"), default=str).encode()


def _no_nan(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def tls_context(config: HttpConfig) -> Optional[ssl.SSLContext]:
    """The server's TLS context from ``cert``/``key`` (None without them); UserError when they cannot be used."""
    if config.cert is None or config.key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.cert, config.key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise UserError(f"cannot use --http-cert {config.cert} / --http-key {config.key}: {reason}") from None
    return context


def start_web_view(config: "PipelineConfig", engine: "EngineView",
                   monitor: Optional["Monitor"] = None) -> Optional[WebView]:
    """Serve the view of a running ``engine`` (a ``Runner``) when ``config.http.listen`` is set (``trackstream
    run --http``); None otherwise. ``monitor`` (``engine.metrics.Monitor``) gives the rates and ``/metrics``."""
    if not config.http.enabled:
        return None
    from pipelines.web.history import history_for
    from pipelines.web.status import runner_views

    return WebView(config.http, runner_views(engine, monitor), _prometheus_text(monitor),
                   history_for(config.store)).start()


def _prometheus_text(monitor: Optional["Monitor"]) -> Optional[Callable[[], bytes]]:
    if monitor is None:
        return None
    from prometheus_client import CollectorRegistry, generate_latest

    from pipelines.engine.metrics import _Collector  # the endpoint's own collector: the same figures

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(monitor))
    return lambda: bytes(generate_latest(registry))

"""The web view's server without a model or a browser: what a viewer and a script see over HTTP.

A ``WebView`` serves hand-made results (``tests/synthetic_tracks.py``) through a real viewer sink, on a free
port of 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Iterator, Optional

import cv2
import numpy as np
import pytest

from pipelines.errors import UserError
from pipelines.frames import StatusKind, StreamStatus
from pipelines.frames import Counts, LineCount, ZoneCount
from pipelines.settings import SourceSettings
from pipelines.web.config import HttpConfig, parse_listen
from pipelines.web.server import WebView
from pipelines.web.status import SourceView
from pipelines.sinks.viewer import ViewerSink
from tests.conftest import free_port
from tests.synthetic_tracks import make_result, make_tracks
from tests.test_config import parse
from tracker.configutil import ConfigError

SOURCE = "cam/1"  # a slash in the id, as in ids derived from camera URLs


def picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)


def result(index: int, ids: tuple[int, ...] = (3, 1)):
    boxes = [[20 + 30 * k, 40, 80 + 30 * k, 150] for k in range(len(ids))]
    counts = Counts({"door": ZoneCount(1, 4, 3)}, {"gate": LineCount(2, 5)}, 9)
    res = make_result(picture(index), make_tracks(list(ids), boxes, velocity=(3.0, 4.0)), index=index,
                      source_id=SOURCE)
    import dataclasses

    return dataclasses.replace(res, counts=counts)


class Served:
    def __init__(self, view: WebView, sink: ViewerSink) -> None:
        self.view, self.sink = view, sink
        self.base = view.url.rstrip("/")

    def get(self, path: str, headers: Optional[dict[str, str]] = None, timeout: float = 5.0):
        request = urllib.request.Request(self.base + path, headers=headers or {})
        return urllib.request.urlopen(request, timeout=timeout)

    def json(self, path: str, **kwargs):
        with self.get(path, **kwargs) as response:
            return json.loads(response.read())


@contextmanager
def serve(token: Optional[str] = None, **http) -> Iterator[Served]:
    sink = ViewerSink(SourceSettings(url="rtsp://127.0.0.1/cam", id=SOURCE))
    config = HttpConfig(listen=str(free_port()), token=token, **http)
    view = WebView(config, lambda: [SourceView(SOURCE, live=True, viewer=sink)]).start()
    try:
        yield Served(view, sink)
    finally:
        view.stop()


@contextmanager
def fed(sink: ViewerSink) -> Iterator[None]:
    """A thread writes a new result to ``sink`` every 10 ms (100 a second) until the block ends."""
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            sink.write(result(i))
            i += 1
            time.sleep(0.01)

    threading.Thread(target=feed, daemon=True).start()
    try:
        yield
    finally:
        stop.set()


@pytest.fixture
def served() -> Iterator[Served]:
    with serve() as running:
        yield running


@pytest.fixture
def guarded() -> Iterator[Served]:
    with serve(token="s3cret") as running:
        yield running


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080)), (8080, ("127.0.0.1", 8080)), ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("[::1]:8081", ("::1", 8081)), ("localhost:80", ("localhost", 80)),
])
def test_listen_takes_a_port_and_an_optional_host_defaulting_to_this_machine(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["abc", "0.0.0.0:", "70000", "host:12x"])
def test_a_bad_listen_value_names_the_key(text):
    with pytest.raises(ConfigError, match=r"^http.listen: expected \[HOST:\]PORT"):
        parse("clip.mp4", "--http", text)


def test_flags_switch_the_view_and_the_viewer_sink_on():
    from pipelines.sinks import wanted_sinks

    config = parse("clip.mp4", "--http", "0.0.0.0:8090", "--http-token", "t")
    assert (config.http.host, config.http.port, config.http.token) == ("0.0.0.0", 8090, "t")
    assert [e.name for e in wanted_sinks(config)] == ["viewer"]
    assert wanted_sinks(parse("clip.mp4")) == []


def test_viewer_sink_keeps_only_the_newest_result_and_never_waits():
    sink = ViewerSink(SourceSettings(url="a.mp4", id="a"), keep_events=3)
    res = result(0)
    started = time.perf_counter()
    for _ in range(20000):
        sink.write(res)
    assert time.perf_counter() - started < 2.0
    sink.status(StreamStatus(StatusKind.GAP, "a", 0.0, events=tuple({"event": f"e{i}"} for i in range(5))))
    held = sink.state()
    assert held.seq == 20000 and held.result is res and held.kind is StatusKind.GAP
    assert [e["event"] for e in held.events] == ["e2", "e3", "e4"]


def test_status_document_shows_state_tracks_and_counts(served):
    served.sink.status(StreamStatus(StatusKind.STARTED, SOURCE, 0.0))
    served.sink.write(result(5))
    doc = served.json("/api/sources/cam%2F1")
    assert doc["id"] == SOURCE and doc["state"] == "live" and doc["picture"] == 1
    assert [(t["id"], t["class"], t["confidence"], t["speed_px_s"]) for t in doc["tracks"]] == \
        [(1, "person", 0.9, 5.0), (3, "person", 0.9, 5.0)]
    assert doc["lines"] == {"gate": {"left_to_right": 2, "right_to_left": 5}}
    assert doc["zones"] == {"door": {"occupancy": 1, "entries": 4, "exits": 3}}
    assert doc["frame"]["index"] == 5 and (doc["frame"]["width"], doc["frame"]["height"]) == (320, 240)
    served.sink.status(StreamStatus(StatusKind.GAP, SOURCE, 0.0))
    assert served.json("/api/sources")["sources"][0]["state"] in ("reconnecting", "live")  # cached 0.25 s
    time.sleep(0.3)
    assert served.json("/api/sources")["sources"][0]["state"] == "reconnecting"
    assert served.json("/healthz")["status"] == "ok"
    with pytest.raises(urllib.error.HTTPError) as err:
        served.get("/api/sources/nope")
    assert err.value.code == 404


def test_status_document_lists_the_warnings_standing_until_the_stream_ends(served):
    """Each standing warning of a predicted crossing or entry, soonest first; per line and zone the number
    standing; none once the source has ended (its tracks ended and cancelled them)."""
    import dataclasses

    from pipelines.frames import PendingWarning

    warnings = (PendingWarning(3, "person", 0.8, 0.91, zone="door"),
                PendingWarning(1, "car", 1.25, 0.7, line="gate", direction="right_to_left"))
    counts = Counts({"door": ZoneCount(1, 4, 3, predicted=1)}, {"gate": LineCount(2, 5, predicted=1)}, 9, warnings)
    served.sink.status(StreamStatus(StatusKind.STARTED, SOURCE, 0.0))
    served.sink.write(dataclasses.replace(result(5), counts=counts))
    doc = served.json("/api/sources/cam%2F1")
    assert doc["predictions"] == [
        {"track_id": 3, "class_name": "person", "zone": "door", "seconds": 0.8, "probability": 0.91},
        {"track_id": 1, "class_name": "car", "line": "gate", "direction": "right_to_left", "seconds": 1.25,
         "probability": 0.7}]
    assert doc["lines"]["gate"]["predicted_pending"] == doc["zones"]["door"]["predicted_pending"] == 1
    served.sink.status(StreamStatus(StatusKind.ENDED, SOURCE, 0.0))
    time.sleep(0.3)   # the document is cached 0.25 s
    ended = served.json("/api/sources/cam%2F1")
    assert ended["state"] == "ended" and ended["predictions"] == []


def test_pictures_are_encoded_only_for_viewers_once_per_result(served, monkeypatch):
    encodes = []
    real = cv2.imencode

    def counting(*args, **kwargs):
        encodes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cv2, "imencode", counting)
    for i in range(50):
        served.sink.write(result(i))
    time.sleep(0.2)
    assert encodes == []   # nobody watched: nothing was drawn or encoded
    for _ in range(3):
        with served.get("/snapshot/cam%2F1") as response:
            assert response.headers["X-Frame-Seq"] == "50"
            image = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3) and image.std() > 10
    assert len(encodes) == 1   # three viewers of one result: one encoding


def test_snapshot_after_waits_for_a_newer_picture(served):
    served.sink.write(result(0))
    threading.Timer(0.3, lambda: served.sink.write(result(1))).start()
    started = time.monotonic()
    with served.get("/snapshot/cam%2F1?after=1") as response:
        assert response.headers["X-Frame-Seq"] == "2"
    assert 0.2 < time.monotonic() - started < 3


def test_snapshot_after_that_is_not_a_number_is_refused(served):
    """``?after=abc`` was taken as no ``after``: a client with a typo got the same picture at once, forever."""
    served.sink.write(result(0))
    with pytest.raises(urllib.error.HTTPError) as err:
        served.get("/snapshot/cam%2F1?after=abc")
    assert err.value.code == 400 and "after must be a picture number" in err.value.read().decode()


def test_mjpeg_stream_sends_the_newest_picture_at_most_at_the_viewer_rate():
    with serve(max_fps=5.0) as served, fed(served.sink):   # 100 results per second
        conn = http.client.HTTPConnection("127.0.0.1", served.view.port, timeout=5)
        conn.request("GET", "/video/cam/1")
        response = conn.getresponse()
        assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        started, seqs = time.monotonic(), []
        while time.monotonic() - started < 2.0:
            line = response.fp.readline()
            if line.startswith(b"X-Frame-Seq:"):
                seqs.append(int(line.split(b":")[1]))
        conn.close()
        assert 6 <= len(seqs) <= 12            # ~5 pictures a second, not 100
        assert seqs == sorted(seqs) and seqs[-1] - seqs[0] > 50   # each one the newest: results were skipped


def test_token_protects_everything_and_the_query_token_becomes_a_cookie(guarded):
    guarded.sink.write(result(0))
    for path in ("/", "/api/sources", "/snapshot/cam%2F1", "/healthz", "/metrics", "/static/app.js"):
        with pytest.raises(urllib.error.HTTPError) as err:
            guarded.get(path)
        assert err.value.code == 401, path
    assert guarded.json("/api/sources", headers={"Authorization": "Bearer s3cret"})["sources"][0]["id"] == SOURCE
    with guarded.get("/?token=s3cret") as response:
        cookie = response.headers["Set-Cookie"]
    assert "trackstream_token=s3cret" in cookie and "HttpOnly" in cookie
    with guarded.get("/snapshot/cam%2F1", headers={"Cookie": "trackstream_token=s3cret"}) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
    with pytest.raises(urllib.error.HTTPError):
        guarded.get("/api/sources", headers={"Authorization": "Bearer wrong"})


def test_an_open_view_says_so_and_a_taken_port_is_one_line(caplog):
    caplog.set_level(logging.INFO, logger="trackstream.web")
    with serve() as served:
        assert any("open to this machine: no --http-token" in r.getMessage() for r in caplog.records)
        taken = HttpConfig(listen=str(served.view.port))
        with pytest.raises(UserError, match=r"^cannot serve the web view on 127.0.0.1:\d+: "):
            WebView(taken, lambda: []).start()


def test_many_viewers_of_one_source_cost_one_encoding_per_picture_interval(monkeypatch):
    encodes = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (encodes.append(1), real(*a, **k))[1])
    with serve(max_fps=5.0) as served, fed(served.sink):
        def watch(got: list[int]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", served.view.port, timeout=5)
            conn.request("GET", "/video/cam/1")
            response = conn.getresponse()
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                if response.fp.readline().startswith(b"X-Frame-Seq:"):
                    got.append(1)
            conn.close()

        counts: list[list[int]] = [[] for _ in range(4)]
        viewers = [threading.Thread(target=watch, args=(c,)) for c in counts]
        for v in viewers:
            v.start()
        for v in viewers:
            v.join(timeout=10)
    assert all(len(c) >= 6 for c in counts), [len(c) for c in counts]
    assert len(encodes) <= 2 * 5 + 4, len(encodes)   # ~5 a second for the source, not 5 per viewer


def heated(index: int, classes: tuple[str, ...] = ("person",)):
    """``result(index)`` carrying a heatmap: a hot spot at the picture's lower left quarter."""
    import dataclasses

    from pipelines.frames import HeatSnapshot

    grid = np.zeros((30, 40), np.float32)
    grid[20:24, 8:12] = 5.0
    return dataclasses.replace(result(index), heat=HeatSnapshot(grid, {name: grid for name in classes}, index + 1))


def test_the_heatmap_is_a_png_over_the_picture_behind_the_token(guarded):
    guarded.sink.write(heated(0, ("person", "car")))
    for path in ("/api/heatmap/cam%2F1.png", "/api/heatmap/cam%2F1.png?class=car"):
        with pytest.raises(urllib.error.HTTPError) as err:
            guarded.get(path)
        assert err.value.code == 401, path
    auth = {"Authorization": "Bearer s3cret"}
    with guarded.get("/api/heatmap/cam%2F1.png", headers=auth) as response:
        assert response.headers["Content-Type"] == "image/png" and response.headers["X-Heatmap-Frames"] == "1"
        png = cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == (240, 320, 3)                       # the picture's size
    changed = np.abs(png.astype(int) - picture(0).astype(int)).sum(axis=2) > 60
    ys, xs = np.nonzero(changed)
    assert changed.any() and 150 <= ys.mean() <= 190 and 60 <= xs.mean() <= 100   # where the heat is
    with guarded.get("/api/heatmap/cam%2F1.png?class=car", headers=auth) as response:
        assert response.headers["Content-Type"] == "image/png"
    with pytest.raises(urllib.error.HTTPError) as err:
        guarded.get("/api/heatmap/cam%2F1.png?class=bus", headers=auth)
    assert err.value.code == 400 and b"car, person" in err.value.read()
    doc = guarded.json("/api/sources", headers=auth)["sources"][0]
    assert doc["heatmap"] == {"url": "/api/heatmap/cam%2F1.png", "frames": 1, "classes": ["car", "person"]}


def test_a_source_without_a_heatmap_says_how_to_switch_it_on(served):
    served.sink.write(result(0))
    with pytest.raises(urllib.error.HTTPError) as err:
        served.get("/api/heatmap/cam%2F1.png")
    assert err.value.code == 404 and b"heatmap" in err.value.read()
    assert served.json("/api/sources")["sources"][0]["heatmap"] is None


def test_the_openapi_document_describes_the_heatmap():
    from pipelines.web.openapi import OPENAPI

    route = OPENAPI["paths"]["/api/heatmap/{source}.png"]["get"]
    assert "image/png" in route["responses"]["200"]["content"] and "401" in route["responses"]
    assert [p["name"] for p in route["parameters"]] == ["source", "class"]

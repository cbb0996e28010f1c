"""The live view in a real browser (headless Chromium): what a person watching the page would notice.

One run serving ``--http`` with two sources, bikes.mp4 played at its own pace (``--realtime``) and the real
RTSP test server, and one browser session for the module (one model load, one browser start). Screenshots
are saved as test artefacts (their paths are listed at the end of the pytest run). bikes.mp4's cyclists
cross the vertical line x=400 around frames 31-44 and 188-211 (1.2-1.8 s and 7.5-8.4 s into the run).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import cv2
import numpy as np
import pytest

from tests.live.conftest import RtspServer, require_gst
from tests.web.conftest import ServingRun, wait_for

pytestmark = pytest.mark.slow

LINE = "lines: [{name: crossing, points: [[400, 0], [400, 300]]}]"


def tile(driver: Any, source: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'section.tile[data-source="{source}"]')
    return found[0] if found else None


def field(element: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return element.find_element(By.CSS_SELECTOR, f'[data-field="{name}"]')


def picture_png(driver: Any, source: str) -> np.ndarray:
    """The tile's picture as the page shows it (a screenshot of the <img>), as a BGR array."""
    png = field(tile(driver, source), "picture").screenshot_as_png
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def picture_shown(driver: Any, source: str) -> bool:
    return bool(driver.execute_script(
        "const t = document.querySelector(`section.tile[data-source='${arguments[0]}'] img`);"
        "return t !== null && t.complete && t.naturalWidth > 0"
        # laid out at its own shape (within a pixel), not the 16:9 placeholder of a tile without a picture
        " && Math.abs(t.clientHeight * t.naturalWidth - t.clientWidth * t.naturalHeight) <= t.naturalWidth;",
        source))


def line_total(element: Any) -> Optional[int]:
    from selenium.webdriver.common.by import By

    cells = element.find_elements(By.CSS_SELECTOR, 'tr[data-line="crossing"] td[data-count]')
    return sum(int(c.text) for c in cells) if cells else None


def state_of(driver: Any, source: str) -> str:
    found = tile(driver, source)
    return field(found, "state").text if found is not None else ""


def shot(driver: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


# ---------------------------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def served(bikes_video, pose_weights, tmp_path_factory) -> Iterator[tuple[RtspServer, ServingRun]]:
    """One run (one model load) of two sources: bikes.mp4 played at its own pace and the RTSP camera."""
    require_gst()
    folder = tmp_path_factory.mktemp("served")
    camera = RtspServer(bikes_video).start()
    config = folder / "two-sources.yaml"
    config.write_text(f"""
source: {{read_timeout: 2.0, reconnect_initial_delay: 0.2, reconnect_max_delay: 1.0}}
sources:
  - {{id: bikes, url: "{bikes_video}", {LINE}, heatmap: {{enabled: true}}}}
  - {{url: "{camera.url}", {LINE}}}
http: {{stall_timeout: 2.0}}
""")
    run = ServingRun(["--realtime", "--imgsz", "160", "--model", str(pose_weights), "--config", str(config)],
                     folder / "run.log")
    try:
        yield camera, run.wait_ready()
    finally:
        run.stop()
        camera.kill()


def test_page_shows_a_moving_picture_the_tracks_and_a_rising_line_count(browser, served, screenshots):
    _, run = served
    browser.get(run.url)
    wait_for("the bikes tile with a picture", lambda: tile(browser, "bikes") and picture_shown(browser, "bikes"), 15)
    assert not browser.find_element("id", "history-link").is_displayed()   # no --db: no history page to link to
    first = picture_png(browser, "bikes")
    (screenshots / "bikes-picture-1.png").write_bytes(cv2.imencode(".png", first)[1].tobytes())
    time.sleep(1.0)
    second = picture_png(browser, "bikes")
    (screenshots / "bikes-picture-2.png").write_bytes(cv2.imencode(".png", second)[1].tobytes())
    assert first.std() > 20 and second.std() > 20, "the picture is blank"
    assert first.shape == second.shape
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 2, "the picture did not change"

    # Watch the page while the video plays: the track table fills and the line count goes up.
    element = tile(browser, "bikes")
    totals: list[int] = []
    most_rows, tracks_shot = 0, False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and state_of(browser, "bikes") != "ended":
        try:
            rows = field(element, "tracks").find_elements("css selector", "tr")
            if rows and not tracks_shot:
                shot(browser, screenshots, "bikes-tracks")
                tracks_shot = True
                assert rows[0].find_elements("css selector", "td")[1].text == "person"
            most_rows = max(most_rows, len(rows))
            total = line_total(element)
            if total is not None:
                totals.append(total)
        except Exception as exc:  # noqa: BLE001 - the page re-renders rows while we read them
            if "stale element" not in str(exc):
                raise
        if most_rows and len(totals) > 1 and totals[-1] > totals[0]:
            break
        time.sleep(0.1)
    shot(browser, screenshots, "bikes-line-count")
    assert most_rows >= 1, "the track table never filled"
    assert totals and totals[-1] > totals[0], f"the line count never rose (seen {sorted(set(totals))})"
    wait_for("the video's end", lambda: state_of(browser, "bikes") == "ended", 20)
    shot(browser, screenshots, "bikes-ended")


def test_the_heatmap_box_shows_the_heatmap_when_opened(browser, served, screenshots):
    """bikes has its heatmap on (the camera has not): its tile offers a heatmap box; opened, it shows the PNG."""
    _, run = served
    browser.get(run.url)
    wait_for("the bikes tile", lambda: tile(browser, "bikes") is not None, 15)
    box = field(tile(browser, "bikes"), "heatmap-box")
    wait_for("the heatmap box", box.is_displayed, 15)
    image = field(box, "heatmap")
    assert not image.get_attribute("src"), "fetched while closed"
    box.find_element("css selector", "summary").click()
    wait_for("the heatmap picture", lambda: browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", image), 15)
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image) == [640, 272]
    shot(browser, screenshots, "bikes-heatmap")
    camera = tile(browser, camera_id(served[0]))
    assert camera is None or not field(camera, "heatmap-box").is_displayed()


def camera_id(server: RtspServer) -> str:
    return f"127.0.0.1:{server.port}/stream"   # derived from the URL: no credentials, a slash inside


def status(run: ServingRun) -> dict[str, Any]:
    with urllib.request.urlopen(run.url + "api/sources", timeout=5) as response:
        return next(s for s in json.loads(response.read())["sources"] if s["id"] != "bikes")


def frames_out_rate(run: ServingRun, seconds: float) -> float:
    before = status(run)["frames_out"]
    time.sleep(seconds)
    return (status(run)["frames_out"] - before) / seconds


def streams(run: ServingRun) -> int:
    with urllib.request.urlopen(run.url + "healthz", timeout=5) as response:
        return int(json.loads(response.read())["streams"])


def test_a_viewer_that_never_reads_does_not_slow_the_run(served, browser):
    server, run = served
    browser.get("about:blank")
    wait_for("frames from the camera", lambda: status(run)["frames_out"] > 10, 30)
    baseline = frames_out_rate(run, 1.5)
    wait_for("no open streams", lambda: streams(run) == 0, 5)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", run.port))
    stalled.sendall(f"GET /video/{camera_id(server)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        wait_for("the stalled stream to open", lambda: streams(run) == 1, 5)
        with_stall = frames_out_rate(run, 3.0)
        started = time.monotonic()
        status(run)
        answer_s = time.monotonic() - started
        # never read: once the socket buffers are full, the server cuts it off after stall_timeout (2 s)
        wait_for("the stalled viewer to be cut off", lambda: streams(run) == 0, 15)
    finally:
        stalled.close()
    assert with_stall >= 0.8 * baseline, (baseline, with_stall)
    assert answer_s < 1.0


def _counts(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def _thread_names(pid: int) -> list[str]:
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(open(f"/proc/{pid}/task/{task}/comm").read().strip())
        except OSError:   # the thread ended meanwhile
            pass
    return sorted(names)


def _viewer(port: int, path: str, errors: list[str]) -> None:
    """Connect, take the start of the stream (a picture or a status event), leave."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while len(data) < 2000:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                errors.append(f"{path}: {data[:60]!r}")
    except OSError as exc:
        errors.append(f"{path}: {exc}")


def test_twenty_viewers_coming_and_going_leave_no_file_or_thread_behind(served, browser):
    server, run = served
    browser.get("about:blank")
    wait_for("frames from the camera", lambda: status(run)["frames_out"] > 10, 30)   # run alone, it may start first
    paths = [f"/video/{camera_id(server)}"] * 10 + [f"/snapshot/{camera_id(server)}"] * 5 + ["/api/events"] * 5
    errors: list[str] = []

    def wave() -> None:
        threads = [threading.Thread(target=_viewer, args=(run.port, p, errors)) for p in paths]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)

    for _ in range(2):   # the first waves start the server's bounded pools (pictures, the event loop's executor)
        wave()
    time.sleep(1.5)
    before = _counts(run.pid)
    names_before = _thread_names(run.pid)
    for _ in range(5):
        wave()
    wait_for("every stream to notice its viewer left", lambda: streams(run) == 0, 10)
    time.sleep(1.0)
    after = _counts(run.pid)
    assert errors == []
    assert after[0] <= before[0] + 2, f"file descriptors {before[0]} -> {after[0]}"
    assert after[1] <= before[1] + 1, f"threads {before[1]} -> {after[1]}: {names_before} -> {_thread_names(run.pid)}"


def test_state_shows_reconnecting_when_the_camera_dies_and_live_when_it_returns(served, browser, screenshots):
    server, run = served
    source = camera_id(server)
    browser.get(run.url)
    wait_for("live", lambda: state_of(browser, source) == "live" and picture_shown(browser, source), 30)
    shot(browser, screenshots, "camera-live")
    server.kill()
    wait_for("reconnecting", lambda: state_of(browser, source) == "reconnecting", 20)
    shot(browser, screenshots, "camera-reconnecting")
    server.start()
    wait_for("live again", lambda: state_of(browser, source) == "live", 40)
    reconnects = wait_for("a counted reconnect", lambda: status(run)["reconnects"], 10)
    assert reconnects >= 1
    time.sleep(1.0)   # a fresh picture after the restart
    shot(browser, screenshots, "camera-live-again")

"""The history page in a real browser (headless Chromium): a person picks a camera's event and watches its clip.

The history is a synthetic run through the real store (clips are real H.264 mp4 files made by the store);
the page is served by the web view with a token, opened once with ?token= as a user would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

from pipelines.sinks.store import StoreSink
from pipelines.store.config import StoreConfig
from pipelines.web.config import HttpConfig
from pipelines.web.history import History
from pipelines.web.server import WebView
from tests.conftest import free_port
from tests.store.conftest import feed, synthetic_results
from tests.web.conftest import browser  # noqa: F401 - the module's headless Chromium
from tests.web.conftest import wait_for

TOKEN = "page-Token-3"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebView]:
    root = tmp_path_factory.mktemp("page")
    config = StoreConfig(db=str(root / "events.db"), media=str(root / "media"), clip_before=2.0, clip_after=2.0)
    for source in ("gate-cam", "yard-cam"):
        sink = StoreSink(config, source)
        feed(sink, synthetic_results(source, n_frames=100))
        sink.close()
    view = WebView(HttpConfig(listen=f"127.0.0.1:{free_port()}", token=TOKEN), lambda: [],
                   history=History(config)).start()
    yield view
    view.stop()


def stored_clips(db: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [r[0] for r in conn.execute("SELECT clip FROM events WHERE clip IS NOT NULL")]
    except sqlite3.OperationalError:      # not created yet
        return []


def frame_of(driver: Any, element: Any) -> np.ndarray:
    png = element.screenshot_as_png
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.int16)


def test_a_click_plays_the_events_clip_in_the_page(browser: Any, served: WebView) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{served.url}history?token={TOKEN}&source=yard-cam")
    items = wait_for("the yard camera's events", lambda: browser.find_elements(By.CSS_SELECTOR, "li.event"))
    assert "token" not in browser.current_url                     # taken out of the address bar
    assert Select(browser.find_element(By.ID, "source")).first_selected_option.text == "yard-cam"
    labels = [i.text for i in items]
    assert all("zone entered" in t or "line crossed" in t for t in labels), labels
    times = browser.execute_script("return [...document.querySelectorAll('li.event time')].map(t => t.textContent)")
    assert len(times) == len(items) >= 4
    thumbs = browser.execute_script(
        "return [...document.querySelectorAll('li.event img.thumb')].filter(i => i.complete && i.naturalWidth > 0)"
        ".length")
    assert thumbs == len(items)                                    # every event shows its track's snapshot
    items[-1].click()                                              # the oldest event
    player = browser.find_element(By.ID, "player")
    wait_for("the clip to load", lambda: browser.execute_script("return arguments[0].readyState >= 2", player))
    assert browser.execute_script("return arguments[0].videoWidth", player) == 128
    assert "/media/yard-cam/" in browser.execute_script("return arguments[0].currentSrc", player)
    start = browser.execute_script("return arguments[0].currentTime", player)
    first = frame_of(browser, player)
    wait_for("the clip to play on", lambda: browser.execute_script("return arguments[0].currentTime", player)
             > start + 0.8)
    later = frame_of(browser, player)
    assert float(np.abs(first - later).mean()) > 1.0               # the picture changes as it plays
    assert browser.execute_script("return arguments[0].error", player) is None


def test_the_live_page_links_to_the_history(browser: Any, served: WebView) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{served.url}?token={TOKEN}")                     # the live view, opened once with the token
    link = wait_for("the history link", lambda: next(
        (a for a in browser.find_elements(By.ID, "history-link") if a.is_displayed()), None))
    assert link.text == "event history"
    link.click()
    wait_for("the history page", lambda: browser.current_url.rstrip("/").endswith("/history"))
    items = wait_for("the history's events", lambda: browser.find_elements(By.CSS_SELECTOR, "li.event"))
    assert items and browser.title == "trackstream history"
    cameras = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#source option")]
    assert cameras == ["gate-cam", "yard-cam"]


def test_without_the_token_the_page_is_refused(browser: Any, served: WebView) -> None:  # noqa: F811
    browser.delete_all_cookies()
    browser.get(f"{served.url}history")
    assert "needs its token" in browser.page_source


def test_a_clip_still_being_recorded_says_so_and_plays_once_written(browser: Any,  # noqa: F811
                                                                  tmp_path: Path) -> None:
    """A recent event's clip is written seconds after it (its post-event part is recorded first): the page said
    it 'was deleted (media retention)'. It now says the clip is coming, and plays it once it is written; a clip
    retention really deleted is still called deleted."""
    from selenium.webdriver.common.by import By

    config = StoreConfig(db=str(tmp_path / "events.db"), media=str(tmp_path / "media"), clip_before=0.5,
                         clip_after=2.0)
    items = synthetic_results("door-cam", n_frames=100)
    first = next(i for i, item in enumerate(items)
                 if any(e["event"] in config.clip_events for e in item.events))
    sink = StoreSink(config, "door-cam")
    feed(sink, items[:first + 1])                 # the event happened; its clip's last 2 s are not seen yet
    wait_for("the event's row", lambda: stored_clips(tmp_path / "events.db"))
    view = WebView(HttpConfig(listen=f"127.0.0.1:{free_port()}", token=TOKEN), lambda: [],
                   history=History(config)).start()
    try:
        browser.get(f"{view.url}history?token={TOKEN}&source=door-cam")
        row = wait_for("the event", lambda: browser.find_elements(By.CSS_SELECTOR, "li.event"))[-1]
        row.click()
        caption = browser.find_element(By.ID, "caption")
        assert "being recorded" in caption.text and "deleted" not in caption.text, caption.text
        feed(sink, items[first + 1:])             # the rest of the clip arrives; it is encoded
        sink.close()
        player = browser.find_element(By.ID, "player")
        wait_for("the clip to play once written",
                 lambda: browser.execute_script("return arguments[0].readyState >= 2", player), timeout=30)
        assert "/media/door-cam/" in browser.execute_script("return arguments[0].currentSrc", player)
        assert "being recorded" not in caption.text
        clip = Path(config.media or "") / browser.execute_script("return arguments[0].currentSrc", player) \
            .split("/media/", 1)[1]
        clip.unlink()                             # as media retention does
        browser.refresh()
        wait_for("the event", lambda: browser.find_elements(By.CSS_SELECTOR, "li.event"))[-1].click()
        assert "was deleted (media retention)" in browser.find_element(By.ID, "caption").text
    finally:
        view.stop()

"""Warnings before a predicted crossing in the live view, in a real browser (headless Chromium): while a
warning stands, the tile's *predicted* table lists it (track, class, line and direction, expected seconds,
probability); when the video ends it is empty again.

bikes.mp4 played at its own pace (``--realtime``, 25 fps): the first cyclist heads right for the line ``far``
(x = 600) from frame 32 and is lost before reaching it (the warning stands until its carried-on path leaves the
picture, frame 50: 1.3-2.0 s into the video); another heads for it from frame 192 to 213.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.web.conftest import ServingRun, wait_for
from tests.web.test_browser import field, shot, state_of, tile

pytestmark = pytest.mark.slow

CONFIG = """
lines:
  - {name: crossing, points: [[400, 0], [400, 300]]}
  - {name: far, points: [[600, 0], [600, 300]], predict_seconds: 3.0}
"""


def predicted_rows(element: Any) -> list[list[str]]:
    rows = field(element, "predictions").find_elements("css selector", "tr")
    return [[td.text for td in row.find_elements("css selector", "td")] for row in rows]


def test_the_tile_lists_each_standing_warning_with_its_line_and_seconds(browser, bikes_video, pose_weights,
                                                                          tmp_path, screenshots):
    config = tmp_path / "predict.yaml"
    config.write_text(CONFIG)
    run = ServingRun(["--realtime", "--imgsz", "160", "--model", str(pose_weights), "--config", str(config),
                      str(bikes_video)], tmp_path / "run.log").wait_ready()
    try:
        browser.get(run.url)
        element = wait_for("the bikes tile", lambda: tile(browser, "bikes"), 15)
        seen: list[list[str]] = []
        counted = []   # the status API's pending count of line far while the tile listed a warning
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and state_of(browser, "bikes") != "ended":
            try:
                rows = predicted_rows(element)
                if rows:
                    with urllib.request.urlopen(run.url + "api/sources", timeout=5) as response:
                        lines = json.loads(response.read())["sources"][0]["lines"]
                    counted.append(lines["far"]["predicted_pending"])   # 0 if withdrawn in between
                    assert "predicted_pending" not in lines["crossing"]   # a line without predict_seconds
                if rows and not seen:
                    shot(browser, screenshots, "bikes-predicted")
                    assert field(element, "prediction-count").text == str(len(rows))
                seen += rows
                if seen and not any(row[0] == seen[0][0] for row in rows):
                    break                        # the first warning went: its track was lost and ended (3.8 s)
            except Exception as exc:  # noqa: BLE001 - the page re-renders rows while we read them
                if "stale element" not in str(exc):
                    raise
            time.sleep(0.1)
        assert seen, "no predicted crossing was ever listed"
        assert max(counted) >= 1, counted   # the API counted what the tile listed
        track, cls, where, _, probability = seen[0]
        assert track.startswith("#") and cls == "person"
        assert where == "line far right to left"   # as its crossing_predicted says (sides of the line drawn downwards)
        assert all(0.0 <= float(row[3]) <= 3.0 for row in seen)       # within the 3 s horizon, counting down
        assert probability.endswith("%") and 50 <= int(probability[:-1]) <= 100
        assert not any(row[0] == track for row in predicted_rows(tile(browser, "bikes"))), "never withdrawn"
        shot(browser, screenshots, "bikes-predicted-withdrawn")
    finally:
        run.stop()

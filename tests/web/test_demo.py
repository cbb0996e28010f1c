"""`trackstream demo --http PORT` offers the live view: it says where, and serves it while the clip plays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.clips import cut_clip
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.slow


def test_demo_prints_the_url_and_serves_the_view_while_it_plays(tmp_path, bikes_video, pose_weights):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "YOLO_OFFLINE": "true", "YOLO_AUTOINSTALL": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "demo", "--http", str(port), "--quiet",
                             "--max-frames", "50", "--out-dir", str(tmp_path / "demo")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=str(tmp_path))
    seen: dict = {}
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not seen.get("lines"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sources/bikes", timeout=2) as response:
                seen = json.loads(response.read())
        except OSError:
            pass
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"watch it live at http://127.0.0.1:{port}/" in stderr
    assert seen.get("id") == "bikes" and "crossing" in seen.get("lines", {}), seen


def test_an_ended_source_shows_the_counts_the_run_ends_with(tmp_path, bikes_video, pose_weights):
    """The tracks still inside a zone when a source ends leave it with their track_ended: the view of that
    source (while another one still runs) says 0 inside, as the summary, MQTT and Redis do, not the newest
    frame's occupancy."""
    from tests.web.conftest import ServingRun, wait_for

    config = tmp_path / "two.yaml"
    config.write_text(
        "sources:\n"
        f"  - {{id: clip, url: '{bikes_video}', zones: [{{name: all, polygon: [[0,0],[640,0],[640,272],[0,272]]}}]}}\n"
        f"  - {{id: looping, url: '{bikes_video}', loop: true}}\n")
    run = ServingRun(["--imgsz", "160", "--model", str(pose_weights), "--config", str(config)],
                     tmp_path / "run.log").wait_ready()
    try:
        def ended() -> dict:
            with urllib.request.urlopen(run.url + "api/sources/clip", timeout=5) as response:
                doc = json.loads(response.read())
            return doc if doc["state"] == "ended" and doc["zones"] else {}

        doc = wait_for("the clip to end", ended, timeout=90)
        time.sleep(0.3)   # the document is cached 0.25 s: the one after the ended status
        doc = ended()
        zone = doc["zones"]["all"]
        assert zone["entries"] > 0 and zone["occupancy"] == 0 and zone["exits"] == zone["entries"], zone
        assert zone["dwell"]["inside"] == [], zone
    finally:
        run.stop()


def test_the_first_files_of_a_long_archive_still_show_their_counts_once_their_pictures_are_let_go(
        tmp_path, bikes_video, pose_weights):
    """An archive's files take turns; the view keeps the last picture of the newest 16 finished files only (a
    picture each would grow with the archive), and an older finished file still shows the counts it ended with."""
    from pipelines.engine.runner import KEPT_PICTURES
    from tests.web.conftest import ServingRun, wait_for

    clip = cut_clip(tmp_path / "short.mp4", bikes_video, start=0, count=60)   # the cyclist rides in
    zone = "zones: [{name: all, polygon: [[0,0],[640,0],[640,272],[0,272]]}]"
    files = [f"  - {{id: c{i:02d}, url: '{clip}', {zone}}}\n" for i in range(KEPT_PICTURES + 3)]
    config = tmp_path / "archive.yaml"
    config.write_text("sources:\n" + "".join(files) + f"  - {{id: looping, url: '{bikes_video}', loop: true}}\n")
    run = ServingRun(["--imgsz", "160", "--model", str(pose_weights), "--config", str(config)],
                     tmp_path / "run.log").wait_ready()
    try:
        def doc(source: str) -> dict:
            with urllib.request.urlopen(run.url + f"api/sources/{source}", timeout=5) as response:
                return dict(json.loads(response.read()))

        names = [f"c{i:02d}" for i in range(KEPT_PICTURES + 3)]
        wait_for("every file to end", lambda: all(doc(n)["state"] == "ended" and doc(n)["zones"] for n in names),
                 timeout=180)
        time.sleep(0.3)   # the document is cached 0.25 s
        # files take turns, so which ended first depends on the machine's load: count, do not name them
        shown = [doc(n) for n in names]
        let_go = [d for d in shown if d["picture"] == 0 and d["frame"] is None]
        kept = [d for d in shown if d["frame"] is not None]
        assert len(let_go) == 3 and len(kept) == KEPT_PICTURES   # the newest 16 keep their last picture
        assert all(d["frame"]["index"] == 59 for d in kept)
        for d in shown:   # and every one, let go or not, shows the counts it ended with
            assert d["zones"]["all"]["entries"] > 0 and d["zones"]["all"]["occupancy"] == 0, d
            assert d["zones"] == shown[-1]["zones"]   # the same clip, the same counts
    finally:
        run.stop()

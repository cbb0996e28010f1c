"""`trackstream demo --http PORT` offers the live view: it says where, and serves it while the clip plays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

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

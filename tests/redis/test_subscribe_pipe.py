"""``trackstream subscribe`` at the head of a shell pipeline: it ends when the reader has gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.redis.conftest import REPO


def test_subscribe_piped_to_head_exits_once_head_has_finished(redis_server):  # type: ignore[no-untyped-def]
    """``trackstream subscribe --from 0 | head -1`` on a quiet stream (one entry so far): ``head`` printed its
    line and exited, but the subscriber wrote nothing more, never saw the broken pipe and waited forever (so
    did the shell)."""
    client = redis_server.client()
    client.xadd("trackstream:cam:events", {"data": json.dumps({"event": "track_started", "frame_index": 0})})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "subscribe", "--redis", redis_server.url,
                             "--source", "cam", "--from", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd=str(REPO))
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())   # what `head -1` prints
        assert first["data"] == {"event": "track_started", "frame_index": 0}
        proc.stdout.close()                          # `head` exits
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the subscriber still runs 10 s after its reader has gone") from None
        assert rc == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

"""``--state redis://``: one run writes a source's state at a time (a lock key in a real redis-server, two real
runs, a real kill -9 and the lock expiring), and a wrong password is one line at start."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import REPO, require_binary, run_cli, serve_on_a_free_port
from tests.redis.conftest import RedisServer

PASSWORD = "L0ck-Secret-pw"
TTL = 2.0   # state.lock_ttl for these runs: how long a killed run's lock outlives it
KEY = "trackstream:state-lock:clip"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = require_binary("redis-server")
    workdir = tmp_path_factory.mktemp("redis-lock")
    yield from serve_on_a_free_port(lambda port: RedisServer(binary, port, workdir, PASSWORD))


@pytest.fixture
def clip(bikes_video, tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    shutil.copyfile(bikes_video, path)
    return path


def _errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("trackstream: error: ")]


def test_two_runs_on_one_redis_state_refuse_the_second_and_a_killed_runs_lock_expires(server, clip, tmp_path):
    config = tmp_path / "lock.yaml"
    config.write_text(f"state: {{lock_ttl: {TTL}}}\n", encoding="utf-8")
    state = server.url  # redis://:PASSWORD@127.0.0.1:PORT/0
    common = ["--config", str(config), "--state", state, "--quiet"]  # the runs after the first
    looped = tmp_path / "looped.yaml"  # the first run plays the clip round and round until it is killed
    looped.write_text(f"state: {{lock_ttl: {TTL}}}\nsource: {{loop: true, realtime: true}}\n", encoding="utf-8")
    first = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(clip), "--config", str(looped),
                              "--state", state, "--quiet", "--jsonl", str(tmp_path / "first.jsonl")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    admin = server.client()
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "first.jsonl").exists():     # the first run holds the lock and is processing
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        assert admin.get(KEY).startswith(f"PID {first.pid} on ")
        time.sleep(TTL * 1.5)                               # outlived its expiry: the run renews the lock
        assert first.poll() is None and admin.get(KEY).startswith(f"PID {first.pid} on ")
        second = run_cli("run", str(clip), *common, "--jsonl", str(tmp_path / "second.jsonl"), "--max-frames", "2",
                         timeout=120)
        errors = _errors(second)
        assert second.returncode == 2 and len(errors) == 1, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr     # at start: nothing else
        for words in ("state of source clip", KEY, f"PID {first.pid}", "another trackstream run"):
            assert words in errors[0], errors[0]
        assert PASSWORD not in second.stderr and not (tmp_path / "second.jsonl").exists()
    finally:
        first.send_signal(signal.SIGKILL)                   # no exit handler runs: the key stays, expiring
        first.communicate()
    assert admin.get(KEY) is not None and 0 < admin.pttl(KEY) <= TTL * 1000
    from pipelines.engine.state import RedisStateLock
    from pipelines.errors import OutputError

    with pytest.raises(OutputError, match=f"PID {first.pid}"):  # still held: a run starting now is refused
        RedisStateLock(state, ["clip"], TTL).__enter__()
    deadline = time.monotonic() + TTL + 1
    while admin.get(KEY) is not None:                       # then it expires by itself
        assert time.monotonic() < deadline, "the killed run's lock never expired"
        time.sleep(0.05)
    third = run_cli("run", str(clip), *common, "--jsonl", str(tmp_path / "third.jsonl"), "--max-frames", "2",
                    "--fresh-state", timeout=120)
    assert third.returncode == 0, third.stderr
    assert len((tmp_path / "third.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert admin.get(KEY) is None                           # released at the end of the run


def test_a_wrong_password_for_redis_state_is_one_line_at_start(server, clip, tmp_path):
    url = server.url.replace(PASSWORD, "wrong-L0ck-77")
    started = time.monotonic()
    done = run_cli("run", str(clip), "--state", url, "--jsonl", str(tmp_path / "o.jsonl"), "--quiet", timeout=120)
    errors = _errors(done)
    assert done.returncode == 2 and len(errors) == 1 and "refused us" in errors[0], done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 30, done.stderr
    assert "wrong-L0ck-77" not in done.stderr + done.stdout and not (tmp_path / "o.jsonl").exists()

"""Private by default: every socket of a run listens on 127.0.0.1 unless told otherwise, /metrics needs the web
token wherever it is served, and the web view speaks TLS with --http-cert/--http-key (a real run, real clients)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, self_signed_certificate

TOKEN = "w3b-T0ken-from-a-file"


def _listening(port: int) -> set[str]:
    """The local addresses (hex, as the kernel lists them) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            if state == "0A" and int(address.rsplit(":", 1)[1], 16) == port:
                found.add(address.rsplit(":", 1)[0])
    return found


def _get(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_sockets_are_private_metrics_need_the_token_and_the_view_speaks_tls(tmp_path, bikes_video, pose_weights):
    cert, key = self_signed_certificate(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    http_port, metrics_port = free_port(), free_port()
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model", str(pose_weights),
             "--imgsz", "160", "--realtime", "--quiet", "--http", str(http_port), "--metrics-port",
             str(metrics_port), "--http-token-file", str(token_file), "--http-cert", str(cert), "--http-key",
             str(key)], stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)})
    trusted = ssl.create_default_context(cafile=str(cert))
    base = f"https://127.0.0.1:{http_port}/"
    try:
        deadline = time.monotonic() + 90
        while "web view needs the token" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # both sockets listen on 127.0.0.1 only (0100007F), not on every interface
        assert _listening(http_port) == {"0100007F"} and _listening(metrics_port) == {"0100007F"}
        text = log.read_text()
        assert f"metrics: http://127.0.0.1:{metrics_port}/metrics" in text and f"web view: {base}" in text
        # the metrics port wants the token like the web view; the token never shows in the log
        assert _get(f"http://127.0.0.1:{metrics_port}/metrics")[0] == 401
        status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics", TOKEN)
        assert status == 200 and b"trackstream_" in body
        # the web view answers over TLS with the certificate, and still wants its token there
        assert _get(base + "metrics", context=trusted)[0] == 401
        status, body = _get(base + "api/sources", TOKEN, context=trusted)
        assert status == 200 and b"bikes" in body
        with pytest.raises(OSError):  # a plain-HTTP client gets no page (the connection is dropped)
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
        with pytest.raises(urllib.error.URLError):  # and a client that does not trust the certificate refuses it
            urllib.request.urlopen(base + "healthz", timeout=5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert TOKEN not in log.read_text()


def test_a_token_file_protects_the_metrics_port_without_the_web_view(tmp_path, bikes_video, pose_weights):
    """docs/live.md: with a web token (--http-token-file) the metrics port needs it too. Without --http the token
    file was refused ('needs --http'), while --http-token on the command line, which ps shows, was taken."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    metrics_port = free_port()
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model", str(pose_weights),
             "--imgsz", "160", "--realtime", "--quiet", "--jsonl", str(tmp_path / "o.jsonl"), "--metrics-port",
             str(metrics_port), "--http-token-file", str(token_file)], stdout=out, stderr=subprocess.STDOUT,
            cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 90
        while f"metrics: http://127.0.0.1:{metrics_port}/metrics" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert _get(f"http://127.0.0.1:{metrics_port}/metrics")[0] == 401
        status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics", TOKEN)
        assert status == 200 and b"trackstream_" in body
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert TOKEN not in log.read_text()

"""What docs/live.md and docs/outputs.md quote -- status details, log lines, error messages -- is what the code
emits: each example is read from the page and checked against a real run, so the docs cannot drift."""

from __future__ import annotations

import functools
import http.server
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipelines.errors import SourceError
from pipelines.frames import StatusKind, StreamStatus
from pipelines.sources.file import FileSource
from pipelines.sources.live import LiveSource
from tests.conftest import REPO, run_cli
from tests.live.test_live_source import remux_to_mpegts

LIVE_MD = (REPO / "docs" / "live.md").read_text()
OUTPUTS_MD = (REPO / "docs" / "outputs.md").read_text()
OPTIONS = {"read_timeout": 1.0, "open_timeout": 3.0, "reconnect_initial_delay": 0.1, "reconnect_max_delay": 0.2}


def documented_details() -> dict[str, tuple[set[str], set[str]]]:
    """status -> (detail keys of a live source, of a file), from the status table of docs/live.md."""
    table: dict[str, tuple[set[str], set[str]]] = {}
    for line in LIVE_MD.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`stream_\w+`", cells[0]):
            live, file = (set(re.findall(r"`(\w+)`", cell)) for cell in cells[2:])
            table[cells[0].strip("`")] = (live, file)
    assert set(table) == {k.value for k in StatusKind if k.value.startswith("stream_")}, table
    return table


class _Camera(http.server.SimpleHTTPRequestHandler):
    """Serves bikes.ts, then (as a camera continuing after it hung up) later.ts; /missing is a 404. /private is a
    401 (user name and password refused), /forbidden a 403 (this user may not watch it), /changed serves bikes.ts
    once and then 401s (its password changed)."""

    requests = 0
    changed = 0

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.path == "/changed":
            type(self).changed += 1
        else:
            type(self).requests += 1
        if self.path == "/forbidden":
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/private" or (self.path == "/changed" and type(self).changed > 1):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/changed":
            self.path = "/bikes.ts"
        if self.path != "/missing" and type(self).requests > 1:
            self.path = "/later.ts"
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def camera(bikes_video: Path, tmp_path: Path) -> Iterator[int]:
    """Port of a loopback HTTP camera (see ``_Camera``)."""
    remux_to_mpegts(bikes_video, tmp_path / "bikes.ts")
    remux_to_mpegts(bikes_video, tmp_path / "later.ts", offset=20.0)
    handler = type("Camera", (_Camera,), {"requests": 0, "changed": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_status_details_and_log_lines_are_the_documented_ones(camera: int, bikes_video: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipelines.sources.live")
    source = LiveSource(f"http://127.0.0.1:{camera}/bikes.ts", OPTIONS, source_id="cam1")
    statuses: list[StreamStatus] = []
    deadline = time.monotonic() + 30
    for item in source.frames():
        if isinstance(item, StreamStatus):
            statuses.append(item)
            if item.kind is StatusKind.RESUMED:
                source.stop()
        if time.monotonic() > deadline:
            source.stop()
    file = FileSource(str(bikes_video), "bikes")
    try:
        file_statuses = [i for i in file.frames() if isinstance(i, StreamStatus)]
    finally:
        file.close()
    table = documented_details()
    emitted = statuses + file_statuses
    assert [s.kind for s in statuses] == [StatusKind.STARTED, StatusKind.GAP, StatusKind.RESUMED, StatusKind.ENDED]
    for status in emitted:
        live_keys, file_keys = table[status.kind.value]
        documented = live_keys if status in statuses else file_keys
        assert set(status.detail) == documented, (status.kind.value, set(status.detail), documented)
    for quoted in re.findall(r"`(source cam1: stream [^`]*)`", LIVE_MD.replace("\n", " ")):
        pattern = re.escape(quoted).replace(r"\.\.\.", ".+")
        pattern = re.sub(r"\d+(\\\.\d+)?", r"\\d+(\\.\\d+)?", pattern)
        assert any(re.fullmatch(pattern, r.getMessage()) for r in caplog.records), (quoted, caplog.text)


def test_the_give_up_message_is_the_documented_one(camera: int) -> None:
    quoted = re.search(r"`trackstream: error: (source cam1: cannot read \S+: [^`]+)`", LIVE_MD.replace("\n", " "))
    assert quoted, "docs/live.md quotes no give-up message"
    url = f"http://admin:secret@127.0.0.1:{camera}/missing"
    with pytest.raises(SourceError) as err:
        list(LiveSource(url, {**OPTIONS, "reconnect_max_attempts": 2}, source_id="cam1").frames())
    shown = f"http://admin:***@127.0.0.1:{camera}/missing"
    assert str(err.value) == re.sub(r"cannot read \S+:", f"cannot read {shown}:", quoted.group(1))


def test_the_refusal_messages_are_the_documented_ones(camera: int, caplog) -> None:
    """401 before the source connected: the one line it ends with; after (a password changed): the retry warning."""
    quoted = re.findall(r"`(source cam1: (\S+) (?:refused|needs) [^`]+)`", LIVE_MD.replace("\n", " "))
    quoted = [(line, url) for line, url in quoted if "(403 Forbidden)" not in line]  # the next test's
    ends = [(line, url) for line, url in quoted if "retrying" not in line]
    assert len(ends) == 2 and len(quoted) == 3, quoted
    for line, url in ends:
        here = url.replace("10.0.0.7/live", f"127.0.0.1:{camera}/private").replace("rtsp:", "http:")
        with pytest.raises(SourceError) as err:
            # (reconnect_max_attempts: 3 so that a source still retrying a 401 ends, with another line)
            list(LiveSource(here.replace("***", "secret"), {**OPTIONS, "reconnect_max_attempts": 3},
                            source_id="cam1").frames())
        assert str(err.value) == line.replace(url, here)
    caplog.set_level(logging.WARNING, logger="pipelines.sources.live")
    source = LiveSource(f"http://admin:secret@127.0.0.1:{camera}/changed", OPTIONS, source_id="cam1")
    reader = threading.Thread(target=lambda: list(source.frames()), daemon=True)
    reader.start()
    [(warning, url)] = [(line, url) for line, url in quoted if "retrying" in line]
    pattern = re.escape(warning.replace(url, f"http://admin:***@127.0.0.1:{camera}/changed"))
    pattern = pattern.replace(r"4\.0", r"\d+\.\d")
    deadline = time.monotonic() + 30
    while not any(re.fullmatch(pattern, r.getMessage()) for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    source.stop()
    reader.join(timeout=10)
    assert any(re.fullmatch(pattern, r.getMessage()) for r in caplog.records), (pattern, caplog.text)


def test_a_forbidden_stream_ends_at_once_with_the_documented_line(camera: int) -> None:
    """403 before the source connected: one line saying access was refused (it said the password was wrong)."""
    quoted = re.findall(r"`(source cam1: (\S+) refused access \(403[^`]+)`", LIVE_MD.replace("\n", " "))
    assert len(quoted) == 1, quoted
    line, url = quoted[0]
    here = url.replace("10.0.0.7/live", f"127.0.0.1:{camera}/forbidden").replace("rtsp:", "http:")
    source = LiveSource(here.replace("***", "secret"), {**OPTIONS, "reconnect_max_attempts": 3}, source_id="cam1")
    with pytest.raises(SourceError) as err:
        list(source.frames())
    assert str(err.value) == line.replace(url, here) and source.connect_failures == 1


def test_the_quoted_output_error_is_what_the_tool_prints(bikes_video: Path, tmp_path: Path) -> None:
    quoted = re.search(r"`(trackstream: error: cannot write (\S+): [^`]+)`", OUTPUTS_MD.replace("\n", " "))
    assert quoted, "docs/outputs.md quotes no output error"
    blocker = quoted.group(2).split("/")[0]
    (tmp_path / blocker).write_text("a file where a folder should be\n")
    done = run_cli("run", str(bikes_video), "--jsonl", quoted.group(2), "--max-frames", "1", "--quiet",
                   cwd=tmp_path, timeout=300)
    assert done.returncode != 0 and done.stderr.strip().splitlines()[-1] == quoted.group(1), done.stderr

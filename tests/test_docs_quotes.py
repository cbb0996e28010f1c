"""Error lines the docs quote are the lines the tool prints: each quote is read from its page and compared with
what the real command line says for the same mistake (ports, paths and hosts aside), so the docs cannot drift.
docs/live.md's quotes are checked by tests/live/test_docs_examples.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, run_cli

ERROR = re.compile(r"trackstream: error: [^`\n]*(?:\n  [^`\n]*)?")


def quoted(page: str, starts: str) -> str:
    """The ``trackstream: error: ...`` quote of ``docs/page`` that starts with ``starts`` (joined if wrapped)."""
    text = (REPO / "docs" / page).read_text()
    for match in ERROR.finditer(text):
        quote = " ".join(part.strip() for part in match.group(0).splitlines())
        if quote.startswith(f"trackstream: error: {starts}"):
            return quote
    raise AssertionError(f"docs/{page} no longer quotes an error starting {starts!r}")


def printed(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("trackstream: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def same_but_for(variable: str, doc: str, real: str) -> None:
    """``doc`` and ``real`` are equal once every match of ``variable`` is replaced in both."""
    assert re.sub(variable, "<x>", doc) == re.sub(variable, "<x>", real), (doc, real)


def test_unwritable_output_path_quote(tmp_path: Path, bikes_video: Path) -> None:
    doc = quoted("outputs.md", "cannot write")
    (tmp_path / "report.txt").write_text("a file, not a folder\n")
    proc = run_cli("run", str(bikes_video), "--jsonl", "report.txt/frames/out.jsonl", cwd=tmp_path)
    assert proc.returncode == 2
    assert printed(proc.stderr) == doc


def test_unreachable_redis_quote(tmp_path: Path, bikes_video: Path) -> None:
    doc = quoted("redis.md", "cannot reach Redis")
    config = tmp_path / "r.yaml"
    config.write_text("redis: {on_unreachable: fail, connect_timeout: 1}\n")
    port = free_port()
    proc = run_cli("run", str(bikes_video), "--config", str(config), "--jsonl", str(tmp_path / "o.jsonl"),
                   "--redis", f"redis://:secret@localhost:{port}/0")
    assert proc.returncode == 2 and "secret" not in proc.stderr
    # the doc's line ends with the client's reason; compare up to it, the port aside
    same_but_for(r"localhost:\d+", doc.split(" Error ")[0], printed(proc.stderr).split(" Error ")[0])
    assert "Connection refused" in printed(proc.stderr)


@pytest.mark.parametrize("starts", ["mqtt.url"])
def test_bad_mqtt_url_quote(tmp_path: Path, bikes_video: Path, starts: str) -> None:
    doc = quoted("mqtt.md", starts)
    url = re.search(r"'([^']+)'", doc)
    assert url is not None
    shown = url.group(1).replace("***", "hunter2")
    proc = run_cli("run", str(bikes_video), "--jsonl", str(tmp_path / "o.jsonl"), "--mqtt", shown)
    assert proc.returncode == 2 and "hunter2" not in proc.stderr
    assert printed(proc.stderr) == doc

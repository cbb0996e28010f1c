"""Credentials never shown: one masking function for every URL form, used by logs, errors and source ids."""

from __future__ import annotations

import logging

import pytest

from pipelines.credentials import read_secret
from pipelines.secrets import MASK, MaskFilter, mask_url, redact_text, redact_url, source_name, url_password
from tests.conftest import free_port, run_cli

# (url, the secret that must not show, what must still show)
HOSTILE = [
    ("rtsp://admin:hunter2@cam.local:554/stream1", "hunter2", "cam.local:554/stream1"),
    ("rtsp://admin:p@ssw@rd@cam.local/s", "p@ssw@rd", "cam.local/s"),               # raw '@'
    ("rtsp://admin:pa/ss/wd@cam.local/s", "pa/ss/wd", "cam.local/s"),               # raw '/'
    ("rtsp://admin:pa:ss:wd@cam.local/s", "pa:ss:wd", "cam.local/s"),               # raw ':'
    ("rtsp://admin:pa#ssw?d@cam.local/s", "pa#ssw?d", "cam.local/s"),               # raw '#', '?'
    ("rtsp://admin:p%40ss%2Fw%3Ad%23x@cam.local/s", "p%40ss%2Fw%3Ad%23x", "cam.local/s"),  # percent-encoded
    ("rtsp://admin:a://b@c@cam.local/s", "a://b@c", "cam.local/s"),                 # a password holding "://"
    ("http://TOKENabc123@cam.local/video", "TOKENabc123", "cam.local/video"),       # user-info without ':'
    ("rtsp://admin:s3cret@[::1/stream", "s3cret", "stream"),                        # unparseable host
    ("rtsp://admin:s3cret@cam.local:notaport/x", "s3cret", "cam.local"),            # unparseable port
    ("redis://:r3dispw@127.0.0.1:6379/0", "r3dispw", "127.0.0.1:6379/0"),
    ("mqtts://user:mq%20pw@broker:8883/site", "mq%20pw", "broker:8883/site"),
] + [
    (f"https://cam.local/live.m3u8?res=hd&{name}=Zx9Q7vK2&fps=25", "Zx9Q7vK2", "res=hd")
    for name in ("pass", "password", "PASSWD", "pwd", "Token", "access_token", "key", "api_key", "APIKEY",
                 "secret", "auth", "sig", "Signature", "x-api-key")
]


def _fragments(secret: str, rest: str, size: int = 4) -> list[str]:
    """Pieces of ``secret`` that do not occur anywhere else in the URL (so their presence means a leak)."""
    return [secret[i:i + size] for i in range(len(secret) - size + 1) if secret[i:i + size] not in rest]


@pytest.mark.parametrize(("url", "secret", "kept"), HOSTILE)
def test_no_fragment_of_a_secret_survives_masking(url, secret, kept):
    rest = url.replace(secret, "")
    for shown in (redact_url(url), redact_text(f"cannot read {url!r}: Connection refused"),
                  redact_text(f'{{"url": "{url}", "n": 1}}'), source_name(url)):
        for piece in _fragments(secret, rest):
            assert piece not in shown, (url, shown)
        assert "hunter" not in shown
    assert kept in redact_url(url)
    assert MASK in redact_url(url)


@pytest.mark.parametrize(("url", "secret", "kept"), HOSTILE[:8])
def test_the_password_is_found_whatever_it_holds(url, secret, kept):
    password = url_password(url)
    assert password is not None and secret.endswith(password)


@pytest.mark.parametrize("text", ["", "rtsp://", "://@", "rtsp://@", "a" * 10_000 + "://x:y@z", "\x00rtsp://:@",
                                  "rtsp://u:p@[", "file:///videos/clip@2x.mp4", "key=", "?token=&pass"])
def test_masking_never_raises(text):
    redact_text(text)
    source_name(text)
    url_password(text)


def test_paths_and_plain_urls_are_left_as_they_are():
    for text in ("file:///videos/clip@2x.mp4", "/videos/clip@2x.mp4", "rtsp://cam.local:554/stream1?channel=2",
                 "http://cam.local/monkey=3"):
        assert redact_text(text) == text


def test_a_log_record_with_a_secret_is_masked(caplog):
    logger = logging.getLogger("tests.secrets")
    record = logger.makeRecord("tests.secrets", logging.WARNING, __file__, 1, "cannot read %s: %s",
                               ("rtsp://admin:p@ss/w0rd@cam/s", "timeout"), None)
    MaskFilter().filter(record)
    assert "w0rd" not in record.getMessage() and "cam/s" in record.getMessage()


def test_secrets_come_from_a_file_or_the_environment(tmp_path, monkeypatch):
    file = tmp_path / "token"
    file.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("TRACKSTREAM_TEST_SECRET", "from-env")
    assert read_secret(None, "TRACKSTREAM_TEST_SECRET", str(file), "token") == "from-file"
    assert read_secret("from-flag", "TRACKSTREAM_TEST_SECRET", None, "token") == "from-flag"
    assert read_secret(None, "TRACKSTREAM_TEST_SECRET", None, "token") == "from-env"


def test_a_dead_camera_with_a_hostile_password_never_shows_it(tmp_path):
    """A real run against a closed port: every retry line, the error and the summary hide the password."""
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text("source: {reconnect_max_attempts: 2, reconnect_initial_delay: 0.0, open_timeout: 2}\n",
                      encoding="utf-8")
    secrets = ("p@ss/w0rd#x", "pa/ss/wd")
    for secret in secrets:
        done = run_cli("run", f"rtsp://admin:{secret}@127.0.0.1:{port}/stream", "--config", str(config),
                       "--quiet", timeout=120)
        text = done.stdout + done.stderr
        assert done.returncode != 0 and "Traceback" not in text, text
        for piece in _fragments(secret, "rtsp://admin:@127.0.0.1/stream", 3):
            assert piece not in text, (piece, text)
        assert f"127.0.0.1:{port}" in text


@pytest.mark.parametrize(("flag", "url"), [("--redis", "redis://u:my secret@127.0.0.1:6379/x"),
                                           ("--mqtt", "mqtt://u:my secret@127.0.0.1:x/"),
                                           ("--db", "postgresql://u:my secret@127.0.0.1:x/db")])
def test_a_password_with_a_raw_space_is_masked_whole(bikes_video, flag, url):
    """A space ends a URL in running text, so the error named the URL with half its password showing."""
    assert mask_url(url.replace("127.0.0.1", "cam")).startswith(url.split(":", 1)[0] + "://u:***@cam")
    done = run_cli("run", str(bikes_video), flag, url, "--max-frames", "1", "--quiet", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "secret" not in done.stderr and "u:***@127.0.0.1" in done.stderr, done.stderr

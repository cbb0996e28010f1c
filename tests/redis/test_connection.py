"""Connection URLs, credentials that never leak, and a clear line when Redis is unreachable."""

from __future__ import annotations

import logging
import time

import pytest

from pipelines.errors import UserError
from pipelines.sinks.redis_conn import RedisConfig
from pipelines.sinks.redis_sink import RedisSink
from tests.conftest import run_cli
from tests.redis.conftest import WithEvents
from tracker.configutil import ConfigError, from_mapping

PASSWORD = "Sup3r-Secret-pw"


def test_password_never_appears_in_output_logs_or_entries(
        redis_password_server, cli_processes, synth, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    url = redis_password_server.url
    assert PASSWORD in url
    sub = cli_processes("-v", "subscribe", "--redis", url, "--source", "cam", "--frames", "--from", "0",
                        "--until-ended", "--idle-exit", "60")
    sink = WithEvents(RedisSink(RedisConfig(url=url), "cam"), "cam")
    results = synth.scenario(n_frames=20)
    for r in results[:10]:
        sink.write(r)
    sub.wait_for(lambda docs: len(docs) >= 10)
    redis_password_server.stop()                         # outage messages name the server too
    for r in results[10:]:
        sink.write(r)
    time.sleep(0.5)
    redis_password_server.start()
    sink.close()
    sub.proc.terminate()
    sub.finish()
    assert len(sub.docs()) >= 10
    assert PASSWORD not in "".join(sub.lines) + sub.stderr
    assert "redis://:***@127.0.0.1" in sub.stderr       # the URL is still shown, masked
    assert PASSWORD not in caplog.text and "unreachable" in caplog.text
    stored = redis_password_server.client().xrange("trackstream:cam:frames")
    assert stored and all(PASSWORD not in str(fields) for _, fields in stored)


def test_wrong_password_is_one_line_without_the_password(redis_password_server, run_subscribe):  # type: ignore[no-untyped-def]
    url = redis_password_server.url.replace(PASSWORD, "wrong-Secret-77")
    proc = run_subscribe("--redis", url)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    # refused credentials are not an outage: the line says so
    assert len(lines) == 1 and lines[0].startswith("trackstream: error: Redis at redis://:***@")
    assert "refused us" in lines[0] and "password" in lines[0]
    assert "wrong-Secret-77" not in proc.stderr + proc.stdout


def test_unreachable_at_start_with_fail_is_a_user_error(redis_server):  # type: ignore[no-untyped-def]
    redis_server.stop()
    with pytest.raises(UserError) as err:
        RedisSink(RedisConfig(url=redis_server.url, on_unreachable="fail", connect_timeout=0.5), "cam")
    message = str(err.value)
    assert "\n" not in message and f"127.0.0.1:{redis_server.port}" in message and "cannot reach" in message


def test_subscribe_to_unreachable_redis_exits_2_with_one_line(redis_server, run_subscribe):  # type: ignore[no-untyped-def]
    redis_server.stop()
    proc = run_subscribe("--redis", f"redis://user:pw-123@127.0.0.1:{redis_server.port}/3")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "pw-123" not in proc.stderr
    assert proc.stderr.startswith("trackstream: error: cannot reach Redis at redis://user:***@127.0.0.1")


def test_acl_user_and_database_number(redis_password_server, synth):  # type: ignore[no-untyped-def]
    admin = redis_password_server.client()
    admin.acl_setuser("pub", enabled=True, passwords=["+pub-pass-1"], keys=["trackstream:*"],
                      commands=["+ping", "+select", "+xadd"])
    url = f"redis://pub:pub-pass-1@127.0.0.1:{redis_password_server.port}/2"
    sink = WithEvents(RedisSink(RedisConfig(url=url, on_unreachable="fail"), "cam"), "cam")
    sink.write(synth.make_result(0, {1: [0, 0, 4, 4]}))
    sink.close()
    assert sink.stats.published == 3 and sink.stats.dropped == 0   # frame, track_started, track_ended
    admin.execute_command("SELECT", 2)
    assert admin.xlen("trackstream:cam:frames") == 1


@pytest.mark.parametrize("url, fragment", [
    ("http://u:pw-9@host/0", "must start with redis://"),
    ("redis://u:pw-9@host/zero", "must be a database number"),
    ("redis://u:pw-9@:6379/0", "has no host name"),
    ("redis://u:pw-9@host:99999/0", "not a valid Redis URL"),
])
def test_bad_urls_are_rejected_naming_the_key_without_password(url, fragment):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        from_mapping(RedisConfig, {"url": url}, "redis")
    assert str(err.value).startswith("redis.url:") and fragment in str(err.value)
    assert "pw-9" not in str(err.value)


@pytest.mark.parametrize("data, key", [
    ({"buffer_max_entries": 0}, "redis.buffer_max_entries"),
    ({"on_unreachable": "panic"}, "redis.on_unreachable"),
    ({"frames_stream": "x:{camera}"}, "redis.frames_stream"),
    ({"connect_timeout": 0}, "redis.connect_timeout"),
    ({"maxlen": 5}, "redis.maxlen"),
])
def test_config_errors_name_the_key(data, key):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        from_mapping(RedisConfig, data, "redis")
    assert str(err.value).startswith(key + ":")


def test_tls_with_password(redis_tls_server, run_subscribe, synth):  # type: ignore[no-untyped-def]
    url = redis_tls_server.url
    assert url.startswith("rediss://")
    sink = WithEvents(RedisSink(RedisConfig(url=url, on_unreachable="fail"), "cam"), "cam")
    for r in synth.scenario(n_frames=5):
        sink.write(r)
    sink.close()
    assert sink.stats.published == 5 + 2 and sink.stats.dropped == 0   # 5 frames, track 1 starts and ends
    proc = run_subscribe("--redis", url, "--source", "cam", "--frames", "--from", "0", "--count", "7")
    assert proc.returncode == 0, proc.stderr
    assert [line.count('"kind":"frames"') for line in proc.stdout.splitlines()].count(1) == 5
    assert "tls-Secret-5" not in proc.stdout + proc.stderr
    plain = run_subscribe("--redis", url.replace("rediss://", "redis://").split("?")[0])
    assert plain.returncode == 2 and plain.stderr.startswith("trackstream: error: cannot reach Redis")


def test_subscriber_on_a_key_that_is_not_a_stream_is_one_line(redis_server, run_subscribe):  # type: ignore[no-untyped-def]
    redis_server.client().set("trackstream:cam:events", "not a stream")
    proc = run_subscribe("--redis", redis_server.url, "--source", "cam", "--group", "g", "--consumer", "c")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("trackstream: error: Redis at redis://127.0.0.1") and "WRONGTYPE" in proc.stderr


def test_publisher_rejected_entries_are_counted_not_fatal(redis_server, synth, caplog):  # type: ignore[no-untyped-def]
    redis_server.client().set("trackstream:cam:frames", "not a stream")   # frames rejected, events fine
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url), "cam"), "cam")
    for r in synth.scenario(n_frames=8):
        sink.write(r)
    sink.close()
    assert sink.stats.dropped == 8 and sink.stats.published == 4     # 2 tracks started and ended
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 5   # the log is not flooded


def test_a_run_with_a_wrong_password_fails_at_once_even_when_told_to_wait(redis_password_server, bikes_video):  # type: ignore[no-untyped-def]
    """on_unreachable: wait (the default) waits for an outage, never for a password that will not change."""
    url = redis_password_server.url.replace(PASSWORD, "wrong-Secret-77")
    done = run_cli("run", str(bikes_video), "--redis", url, "--max-frames", "2", "--quiet", timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("trackstream: error: ")]
    assert done.returncode == 2 and len(errors) == 1 and "refused us" in errors[0], done.stderr
    assert "model" not in done.stderr                      # before the model loads
    assert "wrong-Secret-77" not in done.stderr + done.stdout


def test_the_redis_password_can_come_from_the_environment(redis_password_server, bikes_video, tmp_path):  # type: ignore[no-untyped-def]
    url = f"redis://127.0.0.1:{redis_password_server.port}/0"   # no password on the command line
    done = run_cli("run", str(bikes_video), "--redis", url, "--max-frames", "2", "--quiet", "--source-id", "envcam",
                   env={"TRACKSTREAM_REDIS_PASSWORD": PASSWORD}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert redis_password_server.client().xlen("trackstream:envcam:frames") == 2
    assert PASSWORD not in done.stderr


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_subscribe_idle_exit_must_be_seconds_not_below_zero(redis_server, run_subscribe, value):  # type: ignore[no-untyped-def]
    """``--idle-exit -1`` was accepted and exited at once with 0, as if the stream had gone quiet."""
    proc = run_subscribe("--redis", redis_server.url, "--idle-exit", value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"trackstream: error: --idle-exit must be a number of seconds >= 0, got " \
                                  f"{float(value)}"


def test_subscribe_refuses_an_empty_source_id(redis_server, run_subscribe):  # type: ignore[no-untyped-def]
    """``--source ""`` (``--source "$CAM"`` with CAM unset) followed trackstream::events, a stream no run
    writes, and exited 0 when idle as if the source had been quiet."""
    proc = run_subscribe("--redis", redis_server.url, "--source", "", "--idle-exit", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "trackstream: error: --source must name a source id, got an empty one"


@pytest.mark.parametrize("args, message", [
    (["--claim-idle-ms", "-5"], "--claim-idle-ms must be a number of milliseconds >= 0, got -5"),
    (["--group", "g", "--consumer", ""], "--consumer must name this consumer, got an empty name"),
    (["--group", " "], "--group must name a consumer group, got an empty name"),
])
def test_subscribe_refuses_a_negative_claim_time_and_empty_group_names(redis_server, run_subscribe, args,  # type: ignore[no-untyped-def]
                                                                        message):
    """``--claim-idle-ms -5`` and ``--consumer ''`` were accepted and ran."""
    proc = run_subscribe("--redis", redis_server.url, *args, "--idle-exit", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"trackstream: error: {message}"


def test_a_database_number_the_server_does_not_have_fails_at_once_even_when_told_to_wait(redis_server, bikes_video,
                                                                                          tmp_path):  # type: ignore[no-untyped-def]
    """'--redis redis://host/99' on a server with 16 databases was taken for an outage: the whole video ran, then
    every entry was lost after the 10 s flush timeout (exit 3). The server answered; retrying cannot help."""
    url = f"redis://127.0.0.1:{redis_server.port}/99"
    done = run_cli("run", str(bikes_video), "--redis", url, "--jsonl", str(tmp_path / "o.jsonl"), "--max-frames", "2",
                   "--quiet", timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("trackstream: error: ")]
    assert done.returncode == 2 and errors == [f"trackstream: error: Redis at {url} refused us: DB index is out of "
                                               "range"], done.stderr
    assert "model" not in done.stderr and not (tmp_path / "o.jsonl").exists()

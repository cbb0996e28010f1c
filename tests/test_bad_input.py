"""Bad input through the real command line: one clear line, non-zero exit, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import free_port, run_cli
from tests.test_source_file import damage_middle

PREFIX = "trackstream: error: "


def make_audio_only(path: Path) -> Path:
    """A short real audio file (AAC in MP4) without any video stream."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(16000 // 4, dtype=np.float32) / 16000
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _case(tmp: Path, bikes: Path, weights: Path, name: str) -> tuple[list[str], str]:
    """(arguments, text the error line must contain) for one bad-input case."""
    ok = [str(bikes), "--model", str(weights), "--max-frames", "1"]
    if name == "missing file":
        return [str(tmp / "nope.mp4"), "--model", str(weights)], "not found"
    if name == "zero-byte file":
        (tmp / "empty.mp4").write_bytes(b"")
        return [str(tmp / "empty.mp4"), "--model", str(weights)], "empty"
    if name == "truncated mp4":
        (tmp / "cut.mp4").write_bytes(bikes.read_bytes()[: bikes.stat().st_size * 2 // 5])
        return [str(tmp / "cut.mp4"), "--model", str(weights)], "cannot read video file"
    if name == "text file named .mp4":
        (tmp / "notes.mp4").write_text("this is not a video\n" * 50)
        return [str(tmp / "notes.mp4"), "--model", str(weights)], "cannot read video file"
    if name == "audio-only file":
        return [str(make_audio_only(tmp / "tone.m4a")), "--model", str(weights)], "no video stream"
    if name == "unsupported URL scheme":
        return ["gopher://x", "--model", str(weights)], "unsupported source"
    if name == "missing model file":
        return [str(bikes), "--model", str(tmp / "yolo11n.pt")], "--model /path/to/model.pt"
    if name == "model name not on disk":
        return [str(bikes), "--model", "yolo11n.pt"], "does not download"
    if name == "corrupt weights":
        (tmp / "garbage.pt").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
        return [str(bikes), "--model", str(tmp / "garbage.pt")], "cannot load model"
    if name == "invalid YAML":
        (tmp / "bad.yaml").write_text("detector:\n  conf: [0.5\n")
        return [*ok, "--config", str(tmp / "bad.yaml")], "invalid YAML"
    if name == "unknown config key":
        (tmp / "typo.yaml").write_text("detector:\n  confidence: 0.5\n")
        return [*ok, "--config", str(tmp / "typo.yaml")], "detector.confidence: unknown key"
    if name == "zone whose points lie on one line":   # no anchor could ever be inside: it counted nothing
        (tmp / "flat.yaml").write_text("zones: [{name: kerb, polygon: [[0, 200], [320, 200], [639, 200]]}]\n")
        return [*ok, "--config", str(tmp / "flat.yaml")], "zones[0].polygon: the points lie on one line"
    if name == "zone whose corners are out of order":   # a bow tie: counted two triangles, not the room
        (tmp / "bow.yaml").write_text("zones: [{name: room, polygon: [[0, 0], [320, 0], [0, 271], [320, 271]]}]\n")
        return [*ok, "--config", str(tmp / "bow.yaml"), "--jsonl", str(tmp / "o.jsonl")], \
            "zones[0].polygon: its sides [320.0, 0.0]-[0.0, 271.0] and [320.0, 271.0]-[0.0, 0.0] cross; " \
            "list the corners in order round the zone"
    if name in ("zone in fractions of the frame", "line in fractions of the frame"):   # 1 px: counted nothing
        key = "zones" if name.startswith("zone") else "lines"
        shape = "polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]" if key == "zones" else "points: [[0.5, 0], [0.5, 1]]"
        (tmp / "norm.yaml").write_text(f"{key}: [{{name: left, {shape}}}]\n")
        return [*ok, "--config", str(tmp / "norm.yaml"), "--jsonl", str(tmp / "o.jsonl")], \
            f"{key}[0].{shape.split(':')[0]}: every point lies within 0..1"
    if name == "--classes the model does not have":   # kept nothing: every output empty, exit 0
        return [*ok, "--classes", "0,2", "--jsonl", str(tmp / "o.jsonl")], \
            "detector.classes (--classes): 2 is not a class of the model (0=person)"
    if name == "out-of-range value":
        return [*ok, "--conf", "1.5"], "detector.conf: must be <= 1"
    if name == "--max-fps nan":   # was a traceback (int(NaN) while counting the frames to expect)
        return [*ok, "--max-fps", "nan"], "source.max_fps: must be a finite number, got nan"
    if name == "a NaN in the schedule: section":   # NaN passed every bound: adaptive ran with max_gap NaN
        (tmp / "nan.yaml").write_text("detector: {schedule: adaptive}\nschedule: {max_gap: .nan}\n")
        return [*ok, "--config", str(tmp / "nan.yaml")], "schedule.max_gap: must be a finite number, got nan"
    if name == "a typo in a sources[] entry":   # its known keys left out schedule, zones, lines, id, url, ...
        (tmp / "typo.yaml").write_text(f"sources: [{{url: '{bikes}', id: a, Schedule: adaptive}}]\n")
        return ["--model", str(weights), "--max-frames", "1", "--config", str(tmp / "typo.yaml")], \
            "sources[0].Schedule: unknown key (known keys: calibration, decode_threads, decoder, heatmap, id, lines, " \
            "loop, max_fps, open_timeout, read_timeout, realtime, reconnect, reconnect_initial_delay, " \
            "reconnect_max_attempts, reconnect_max_delay, rtsp_transport, schedule, url, vid_stride, zones)"
    if name == "a zone naming a class by name and by id":   # counted as [person, person] everywhere
        (tmp / "twice.yaml").write_text("zones: [{name: door, polygon: [[0, 0], [320, 0], [320, 271]], "
                                        "classes: [person, 0]}]\n")
        return [*ok, "--config", str(tmp / "twice.yaml"), "--jsonl", str(tmp / "o.jsonl")], \
            "source bikes: zone 'door': classes: names a class twice: ['person', 'person']"
    if name == "a section given twice":   # YAML keeps the last: the first detector: section was dropped silently
        (tmp / "twice.yaml").write_text("detector:\n  schedule: interval:3\nlines: []\ndetector:\n  imgsz: 160\n")
        return [*ok, "--config", str(tmp / "twice.yaml")], \
            "detector: given twice (line 4 of config file"
    if name == "unwritable output path":
        return [*ok, "--out", "/proc/trackstream-test/x.mp4"], "cannot"
    if name == "output under a file":   # the line said only 'File exists' (mkdir's errno), not which file
        (tmp / "plain.txt").write_text("x")
        return [*ok, "--jsonl", str(tmp / "plain.txt" / "sub" / "out.jsonl")], \
            f"cannot write {tmp / 'plain.txt' / 'sub' / 'out.jsonl'}: {tmp / 'plain.txt'} is a file, not a folder"
    if name == "output naming a folder":  # --jsonl results/ wrote a file called results
        return [*ok, "--jsonl", f"{tmp / 'results'}/"], \
            "it names a folder (ends with '/'); give a file name, with {source}"
    if name == "output that is a folder":  # the line said only 'it is a directory', not what to give instead
        (tmp / "tracks").mkdir()
        return [*ok, "--jsonl", str(tmp / "tracks")], "it is a directory (name a file in it; {source} in the name"
    if name == "output naming a folder, two sources":  # the '_<id>' added per source dropped the slash
        shutil.copyfile(bikes, tmp / "second.mp4")
        return [str(bikes), str(tmp / "second.mp4"), *ok[1:], "--jsonl", f"{tmp / 'results'}/"], \
            "it names a folder"
    if name == "database URL with a bad port":
        return [*ok, "--db", "postgresql://u:pw@127.0.0.1:x/db", "--jsonl", str(tmp / "o.jsonl")], \
            "store.db: not a valid database URL"
    if name == "database that is a folder":  # was retried as an unreachable database, then exit 3
        (tmp / "history").mkdir()
        return [*ok, "--db", str(tmp / "history")], "it is a directory"
    if name == "database on another output":  # SQLite wrote over the JSONL file
        return [*ok, "--db", str(tmp / "o.jsonl"), "--jsonl", str(tmp / "o.jsonl")], "are the same file"
    if name == "media folder that is a file":  # every snapshot and clip was lost, one warning line, exit 0
        (tmp / "media").write_text("x")
        return [*ok, "--db", str(tmp / "h.db"), "--media", str(tmp / "media")], "--media: cannot write"
    if name.startswith("name too long: "):   # each was an OSError traceback
        long, flag = str(tmp / ("n" * 300)), name.split(": ")[1]
        if flag == "SOURCE":
            return [f"{long}.mp4", *ok[1:], "--jsonl", str(tmp / "o.jsonl")], "File name too long"
        suffix = {"--jsonl": ".jsonl", "--out": ".mp4", "--db": ".db", "--heatmap": ".png", "--state": ""}[flag]
        extra = [] if flag in ("--jsonl", "--out") else ["--jsonl", str(tmp / "o.jsonl")]
        return [*ok, flag, f"{long}{suffix}", *extra], "File name too long"
    if name == "media folder with a name too long":   # was an OSError traceback (File name too long)
        return [*ok, "--db", str(tmp / "h.db"), "--media", str(tmp / ("m" * 300) / "media")], "--media: cannot write"
    if name == "database where the media folder goes":  # each snapshot and clip failed on the database file
        return [*ok, "--db", str(tmp / "history"), "--media", str(tmp / "history")], "is the --media folder"
    if name == "output where a source's media folder goes":
        return [*ok, "--db", str(tmp / "h.db"), "--media", str(tmp / "m"), "--jsonl", str(tmp / "m" / "bikes")], \
            "is the --media folder of source bikes"
    if name == "no source":
        return ["--model", str(weights)], "no source given"
    if name == "a glob through a folder with [ in its name":   # 'no file matches', with no hint why
        (tmp / "cam[1]").mkdir()
        shutil.copyfile(bikes, tmp / "cam[1]" / "day.mp4")
        return [f"{tmp}/cam[1]/*.mp4", *ok[1:], "--jsonl", str(tmp / "o.jsonl")], \
            f"a glob reads as a set of characters: write {tmp}/cam[[]1]/*.mp4"
    # a flag that only works beside another was silently ignored without it
    if name == "--fresh-state without --state":
        return [*ok, "--fresh-state", "--jsonl", str(tmp / "o.jsonl")], "--fresh-state: needs --state"
    if name == "a Ray flag without --engine ray":
        return [*ok, "--cameras-per-actor", "2"], "--cameras-per-actor: needs --engine ray"
    if name == "video rotation without --out":
        return [*ok, "--out-rotate-seconds", "60", "--jsonl", str(tmp / "o.jsonl")], "--out-rotate-seconds: needs --out"
    if name == "--heatmap-overwrite without --heatmap":
        return [*ok, "--heatmap-overwrite", "--jsonl", str(tmp / "o.jsonl")], "--heatmap-overwrite: needs --heatmap"
    if name == "a password file without its server":
        secret = tmp / "pw"
        secret.write_text("hunter2\n")
        return ([*ok, "--mqtt-password-file", str(secret), "--jsonl", str(tmp / "o.jsonl")],
                "--mqtt-password-file: needs --mqtt URL")
    if name == "--http and --metrics-port on one port":   # was "cannot serve the web view ...: address in use"
        port = str(free_port())
        return [*ok, "--http", port, "--metrics-port", port, "--jsonl", str(tmp / "o.jsonl")], \
            f"metrics.port: {port} is the web view's port too (http.listen {port}); give each its own port, or " \
            "leave the metrics port out: the web view serves /metrics as well"
    if name == "a web token without anything it protects":   # the token was taken, and nothing asked for it
        return [*ok, "--http-token", "Tok-Secret-3", "--jsonl", str(tmp / "o.jsonl")], \
            "--http-token: needs --http or --metrics-port (what the token protects)"
    if name == "--retain without an output":
        return [*ok, "--retain", "7d"], "--retain: needs an output"
    raise AssertionError(name)


CASES = ["missing file", "zero-byte file", "truncated mp4", "text file named .mp4", "audio-only file",
         "unsupported URL scheme", "missing model file", "model name not on disk", "corrupt weights",
         "invalid YAML", "unknown config key", "zone whose points lie on one line",
         "zone whose corners are out of order", "zone in fractions of the frame", "line in fractions of the frame",
         "--classes the model does not have", "out-of-range value", "--max-fps nan", "a NaN in the schedule: section",
         "a typo in a sources[] entry", "a zone naming a class by name and by id",
         "a section given twice",
         "unwritable output path", "output under a file", "output naming a folder", "output that is a folder",
         "output naming a folder, two sources", "database URL with a bad port",
         "database that is a folder", "database on another output", "media folder that is a file",
         "media folder with a name too long", "name too long: --jsonl", "name too long: --out",
         "name too long: --db", "name too long: --heatmap", "name too long: --state", "name too long: SOURCE",
         "database where the media folder goes",
         "output where a source's media folder goes", "no source", "a glob through a folder with [ in its name",
         "--fresh-state without --state", "a Ray flag without --engine ray", "video rotation without --out",
         "--retain without an output", "--heatmap-overwrite without --heatmap", "a password file without its server",
         "a web token without anything it protects", "--http and --metrics-port on one port"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gives_one_clear_line(tmp_path, bikes_video, pose_weights, name):
    args, expected = _case(tmp_path, bikes_video, pose_weights, name)
    proc = run_cli("run", *args, "--quiet", cwd=tmp_path, timeout=180)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(PREFIX)]
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert not list(tmp_path.glob("*.jsonl")) and not (tmp_path / "out.mp4").exists()
    assert not (tmp_path / "results").exists() and not list(tmp_path.glob("results_*"))



@pytest.mark.parametrize("retain", ["infGB", "nanGB", "1e999d", "nanh"])
def test_a_retention_that_is_not_a_number_is_one_usage_error(tmp_path, bikes_video, pose_weights, retain):
    """'--retain infGB' was an OverflowError traceback; 'nanh' and '1e999d' passed the parser."""
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--max-frames", "1", "--retain", retain,
                   "--jsonl", str(tmp_path / "o.jsonl"), "--jsonl-rotate-seconds", "60", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ("trackstream run: error: argument --retain: expected an age like "
                                                    f"12h or 7d and/or a size like 500GB, got {retain.lower()!r}")


@pytest.mark.parametrize("flag", ["--jsonl-rotate-bytes", "--out-rotate-bytes"])
@pytest.mark.parametrize("size", ["10XB", "0", "5ZB", "nanMB", "0.5"])
def test_a_rotation_size_that_is_no_size_is_one_usage_error(tmp_path, bikes_video, flag, size):
    """Sizes take a unit as --retain's do; what is not a size of at least one byte is one usage line."""
    proc = run_cli("run", str(bikes_video), flag, size, "--jsonl", str(tmp_path / "o.jsonl"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"trackstream run: error: argument {flag}: expected a size like "
                                                    f"100MB, 2GB or 5000000 (bytes), got {size!r}")


def test_a_rotation_size_with_a_unit_rotates_at_that_many_bytes(tmp_path, bikes_video, pose_weights):
    """'--jsonl-rotate-bytes 10MB' was refused ('invalid int value') while '--retain 500GB' was taken."""
    out = tmp_path / "o.jsonl"
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "12",
                   "--jsonl", str(out), "--jsonl-rotate-bytes", "0.5kB", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("o.*.jsonl")) + [out]
    assert len(files) >= 2 and all(f.stat().st_size <= 500 for f in files)
    assert sum(len(f.read_text().splitlines()) for f in files) == 12


@pytest.mark.parametrize("flags", [["--source-id", "rtsp://cam:Id-Secret-5@cam.local/live"],
                                   ["--source-id", "cam.local/live?token=Id-Secret-5"],
                                   ["--config", "redis-id.yaml"]])
def test_a_source_id_holding_a_password_is_refused_without_showing_it(tmp_path, bikes_video, pose_weights, flags):
    """An id given as a camera URL kept its password in every output: the summary, Redis stream names, MQTT
    topics and payloads, JSONL records (log lines alone were masked)."""
    (tmp_path / "redis-id.yaml").write_text("redis: {source_id: 'rtsp://cam:Id-Secret-5@cam.local/live'}\n")
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--max-frames", "1", *flags,
                   "--jsonl", str(tmp_path / "o.jsonl"), "--quiet", cwd=tmp_path, timeout=180)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(PREFIX)]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and "must not hold a password or token" in errors[0], proc.stderr
    assert "Id-Secret-5" not in proc.stderr + proc.stdout and not (tmp_path / "o.jsonl").exists()

@pytest.mark.slow
def test_file_damaged_in_the_middle_is_processed_to_the_end(tmp_path, bikes_video, pose_weights):
    broken = damage_middle(bikes_video, tmp_path / "damaged.mp4")
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    proc = run_cli("run", str(broken), "--model", str(pose_weights), "--imgsz", "320", "--vid-stride", "10",
                   "--out", str(out), "--jsonl", str(jsonl), "--quiet", timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    pts = [r["pts"] for r in records]
    assert min(pts) < 3.0 and max(pts) > 8.0          # frames before and after the damage
    with av.open(str(out)) as container:              # the annotated video still plays
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == len(records) >= 15


@pytest.mark.parametrize("url", ["postgresql://u:p#ss@db.example:5432/x", "postgresql://u:p[ss@db.example/x",
                                 "postgresql://u:p/ss@[::1]:5432/x"])
def test_a_database_password_with_url_characters_is_accepted_as_sqlalchemy_reads_it(url):  # type: ignore[no-untyped-def]
    from pipelines.store.config import check_db

    check_db(url)   # no ConfigError: only the host part's port is checked


@pytest.mark.parametrize("args, command", [
    (("run", "--bogus"), "trackstream run"),
    (("run", "clip.mp4", "--jsonl", "o.jsonl", "--imgsz", "160", "--bogus"), "trackstream run"),
    (("cluster", "add", "--bogus"), "trackstream cluster add"),
    (("--bogus",), "trackstream"),
])
def test_an_unknown_flag_shows_the_usage_of_the_command_it_was_given_to(args, command):
    proc = run_cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"usage: {command} [-h]")
    assert proc.stderr.strip().splitlines()[-1] == f"{command}: error: unrecognized arguments: --bogus"


@pytest.mark.parametrize("source", ["rtsp://admin:Id-Secret-5@127.0.0.1:8554/cam", "clip.mp4", "videos/"])
def test_a_source_given_without_a_command_says_to_put_run_first_and_shows_no_password(tmp_path, source):
    """'trackstream rtsp://admin:pw@cam/...' (run forgotten) was argparse's 'invalid choice' line, which echoed the
    camera's password."""
    proc = run_cli("-v", source, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "Id-Secret-5" not in proc.stderr
    shown = source.replace("Id-Secret-5", "***")
    assert proc.stderr.strip().splitlines()[-1] == (f"trackstream: error: {shown!r} is not a command: to process a "
                                                    f"video or camera, give the command first: trackstream run {shown}")
    assert list(tmp_path.iterdir()) == []  # nothing ran


@pytest.mark.parametrize("args", [("eval", "mot", "--out", "o", "rtsp://admin:Id-Secret-5@127.0.0.1/cam"),
                                  ("subscribe", "--bogus", "rtsp://admin:Id-Secret-5@127.0.0.1/cam")])
def test_a_usage_error_echoing_a_url_shows_no_password(tmp_path, args):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Id-Secret-5" not in proc.stderr and "admin:***@127.0.0.1" in proc.stderr

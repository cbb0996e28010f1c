"""Pipeline config: YAML + flags, typed, every mistake rejected with a message naming the key."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from pipelines.commands.run import add_arguments, config_from_args
from pipelines.config import PipelineConfig, build_config, load_config
from tracker.configutil import ConfigError, to_mapping

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def parse(*argv: str) -> PipelineConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_default_yaml_documents_every_key_with_its_default():
    data = yaml.safe_load((CONFIGS / "default.yaml").read_text())
    assert data == to_mapping(PipelineConfig())
    lines = [ln for ln in (CONFIGS / "default.yaml").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#") and not ln.lstrip().startswith("- ")]
    uncommented = [ln for ln in lines if "#" not in ln]
    assert uncommented == []


@pytest.mark.parametrize("name", ["default", "pose", "segment", "camera"])
def test_example_configs_load(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert isinstance(config, PipelineConfig)


def test_camera_example_has_per_source_overrides_and_zones():
    config = load_config(CONFIGS / "camera.yaml")
    entrance, parking = config.sources
    assert (entrance.id, parking.id) == ("entrance", "parking")
    assert parking.options.max_fps == 5.0 and entrance.options.max_fps is None
    assert parking.options.rtsp_transport == "tcp"   # the global section still applies
    assert entrance.zones[0].name == "door" and parking.lines[0].name == "gate"


def test_flags_override_config_values(tmp_path):
    path = write(tmp_path, "detector: {conf: 0.5, imgsz: 320}\noutput: {jsonl: a.jsonl}\n"
                           "overlay: {trails: true}\nsources: [{url: from_config.mp4}]\n")
    config = parse("clip.mp4", "--config", path, "--conf", "0.6", "--jsonl", "b.jsonl", "--no-trails",
                   "--classes", "0,2", "--vid-stride", "2", "--realtime", "--source-id", "cam")
    assert config.detector.conf == 0.6 and config.detector.imgsz == 320     # flag wins, file kept
    assert config.detector.classes == (0, 2)
    assert config.output.jsonl == "b.jsonl" and config.overlay.trails is False
    assert [(s.url, s.id) for s in config.sources] == [("clip.mp4", "cam")]  # SOURCE replaces the list
    assert config.sources[0].options.vid_stride == 2 and config.sources[0].options.realtime is True


def test_no_flags_keep_file_values(tmp_path):
    config = parse("--config", write(tmp_path, "detector: {conf: 0.5}\nsources: [{url: a.mp4, id: a}]\n"))
    assert config.detector.conf == 0.5 and config.sources[0].id == "a"


@pytest.mark.parametrize("text, key", [
    ("detectr: {conf: 0.5}", "detectr"),
    ("detector: {confidence: 0.5}", "detector.confidence"),
    ("detector: {conf: 1.5}", "detector.conf"),
    ("detector: {conf: high}", "detector.conf"),
    ("detector: {batch: 0}", "detector.batch"),
    ("detector: {workers: 0}", "detector.workers"),
    ("detector: {device: gpu}", "detector.device"),
    ("detector: {classes: [0, -1]}", "detector.classes"),
    ("source: {vid_stride: 0}", "source.vid_stride"),
    ("source: {max_fps: 0}", "source.max_fps"),
    ("source: {rtsp_transport: sctp}", "source.rtsp_transport"),
    ("source: {reconnect: maybe}", "source.reconnect"),
    ("overlay: {mask_alpha: 2}", "overlay.mask_alpha"),
    ("output: {video_crf: 60}", "output.video_crf"),
    ("output: {video_preset: turbo}", "output.video_preset"),
    ("output: {events: 'out/{id}-events.jsonl'}", "output.events"),
    ("redis: {on_unreachable: panic}", "redis.on_unreachable"),
    ("metrics: {port: 70000}", "metrics.port"),
    ("sources: [{id: a}]", "sources[0].url"),
    ("sources: [{url: a.mp4, vid_strde: 2}]", "sources[0].vid_strde"),
    ("sources: [{url: a.mp4, max_fps: -1}]", "sources[0].max_fps"),
    ("sources: [{url: a.mp4, id: x}, {url: b.mp4, id: x}]", "sources"),
    ("zones: [{name: z, polygon: [[0, 0], [1, 1]]}]", "zones[0].polygon"),
    ("lines: [{name: l, points: [[0, 0], [1, 1], [2, 2]]}]", "lines[0].points"),
    ("zones: [{name: z}]", "zones[0].polygon"),  # a required key left out was a TypeError traceback
    ("lines: [{points: [[0, 0], [1, 1]]}]", "lines[0].name"),
    ("sources: [{url: a.mp4, zones: [{polygon: [[0, 0], [9, 0], [9, 9]]}]}]", "sources[0].zones[0].name"),
    ("detector: 5", "detector"),
    ("tracker: [1, 2]", "tracker"),
])
def test_bad_config_is_rejected_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert message.startswith(f"{key}: ") and "\n" not in message


@pytest.mark.parametrize("argv, key", [
    (["a.mp4", "--conf", "2"], "detector.conf"),
    (["a.mp4", "--vid-stride", "0"], "source.vid_stride"),
    (["a.mp4", "--max-fps", "-5"], "source.max_fps"),
    (["a.mp4", "--imgsz", "8"], "detector.imgsz"),
    (["a.mp4", "--metrics-port", "0"], "metrics.port"),
    (["a.mp4", "b.mp4", "--source-id", "x"], "--source-id"),
    (["a.mp4", "--source-id", ""], "--source-id"),
    (["a.mp4", "--max-frames", "0"], "--max-frames"),
    (["a.mp4", "--jsonl", "out/{sorce}.jsonl"], "output.jsonl"),  # else written as a file named {sorce}.jsonl
    (["a.mp4", "--out", "out/{source.mp4"], "output.video"),  # else written as a file named {source.mp4
    (["a.mp4", "--mot", "out/source}.txt"], "output.mot"),
])
def test_bad_flag_values_are_rejected_naming_the_key(argv, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        parse(*argv)


def test_invalid_yaml_is_one_line_with_position(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "detector:\n  conf: [0.5\n"))
    assert "invalid YAML" in str(info.value) and "line" in str(info.value) and "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_several_sources_need_zones_per_source():
    with pytest.raises(ConfigError, match="^zones: "):
        build_config({"sources": [{"url": "a.mp4"}, {"url": "b.mp4"}],
                      "zones": [{"name": "z", "polygon": [[0, 0], [10, 0], [10, 10]]}]})


@pytest.mark.slow
def test_two_zones_or_lines_of_one_name_are_refused(bikes_video, pose_weights, tmp_path):
    """Counts, state and topics go by name: the second of two lines named alike used to vanish from the
    summary (one "line a" printed for two lines) and share the first one's counts."""
    from tests.conftest import run_cli

    line = "{name: a, points: [[320, 0], [320, 271]]}"
    zone = "{name: a, polygon: [[0, 0], [100, 0], [100, 100]]}"
    for text, key in ((f"lines: [{line}, {line}]", "lines"), (f"zones: [{zone}, {zone}]", "zones"),
                      (f"zones: [{zone}]\nsources: [{{url: {bikes_video}, zones: [{zone}]}}]", "sources[0].zones")):
        config = tmp_path / "c.yaml"
        config.write_text(text + "\n")
        given = [] if key.startswith("sources") else [str(bikes_video)]   # a SOURCE argument replaces sources:
        run = run_cli("run", *given, "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                      "--quiet", "--config", str(config), timeout=120)
        assert run.returncode == 2, (text, run.stdout, run.stderr)
        assert run.stderr.strip().splitlines() == [f"trackstream: error: {key}: the name 'a' is used twice; give "
                                                   "each its own name (counts, events and MQTT topics go by it)"]


def test_tracker_settings_from_a_file_beside_the_config(tmp_path):
    (tmp_path / "tracker.yaml").write_text("minimum_iou: 0.35\n")
    config = load_config(write(tmp_path, "tracker_config: tracker.yaml\nsources: [clip.mp4]\n"))
    assert config.sources[0].tracker.minimum_iou == 0.35


def test_bad_tracker_key_is_rejected_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="^tracker.minimum_iuo: "):
        load_config(write(tmp_path, "tracker: {minimum_iuo: 0.3}\n"))


def test_no_stage_reads_the_sections_already_folded_into_each_sources_settings():
    """``PipelineConfig.source/tracker/zones/lines/calibration/events`` are the sections as written (so the
    config can be written back key for key); ``build_config`` folds them into each source's ``SourceSettings``,
    which is what every stage must read: a stage reading the top-level copy would ignore per-source overrides.
    Only the path of the tracker config file is read, by the output guard (an input a run must never
    overwrite)."""
    import re

    root = Path(__file__).resolve().parents[1] / "pipelines"
    folded = re.compile(r"\bconfig\.(source|tracker|zones|lines|calibration|events)\b(?!_)")
    readers = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py") if path.name != "config.py"
               for n, line in enumerate(path.read_text().splitlines(), 1) if folded.search(line)]
    assert readers == [], readers
    config = build_config({"sources": [{"url": "a.mp4", "id": "a", "zones": [
        {"name": "door", "polygon": [[0, 0], [10, 0], [10, 10]]}]}, {"url": "b.mp4", "id": "b"}],
        "zones": [], "tracker": {"confirmation_hits": 7}})
    assert [len(s.zones) for s in config.sources] == [1, 0]
    assert all(s.tracker.confirmation_hits == 7 for s in config.sources)


def test_numbers_with_an_exponent_and_no_dot_are_numbers(tmp_path):
    # YAML 1.2 (and every other YAML tool) reads 5e-3 as a number; PyYAML alone read it as text, so a small
    # scale written the way people write it was refused as "must be a number, got '5e-3'"
    path = tmp_path / "c.yaml"
    path.write_text("calibration: {metres_per_pixel: 5e-3}\ndetector: {conf: 2.5E-1}\nsources: [road.mp4]\n")
    config = load_config(path)
    assert config.sources[0].calibration is not None
    assert config.sources[0].calibration.metres_per_pixel == 0.005 and config.detector.conf == 0.25
    quoted = tmp_path / "q.yaml"
    quoted.write_text("calibration: {metres_per_pixel: '5e-3'}\nsources: [road.mp4]\n")   # quoted: text
    with pytest.raises(ConfigError, match="metres_per_pixel: must be a number"):
        load_config(quoted)


def test_a_source_on_the_command_line_says_what_of_the_config_sources_it_drops(tmp_path, caplog):
    # SOURCE replaces the config's sources: (documented); their zones and calibration go with them, which a
    # user who gave both did not mean: a warning names what is not used
    path = write(tmp_path, "sources: [{url: road.mp4, id: road, calibration: {metres_per_pixel: 0.05},\n"
                           "           zones: [{name: kerb, polygon: [[0, 0], [9, 0], [9, 9]]}]}]\n")
    with caplog.at_level("WARNING"):
        config = parse("clip.mp4", "--config", path)
    assert [s.url for s in config.sources] == ["clip.mp4"] and not config.sources[0].zones
    assert "replaces the config's sources:" in caplog.text and "calibration, zones" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        parse("--config", path)                                  # the config's own sources: nothing dropped
        parse("clip.mp4", "--config", write(tmp_path, "sources: [{url: a.mp4, id: a}]\n"))
    assert "replaces" not in caplog.text


def test_a_heatmap_overlay_with_nothing_to_draw_it_on_is_reported(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        parse("clip.mp4", "--heatmap-overlay", "--jsonl", "t.jsonl")
    assert "heatmap overlay is drawn on the annotated video (--out) or the web view (--http)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        parse("clip.mp4", "--heatmap-overlay", "--out", "t.mp4")
    assert "heatmap overlay" not in caplog.text


def test_a_redis_password_file_serves_a_state_in_redis_over_tls_too(tmp_path):
    # --redis-password-file without --redis is refused, unless --state is in Redis: rediss:// (TLS) as redis://
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    for scheme in ("redis", "rediss"):
        config = parse("clip.mp4", "--state", f"{scheme}://127.0.0.1:6390/0", "--redis-password-file", str(secret))
        assert config.state.dir == f"{scheme}://:hunter2@127.0.0.1:6390/0"
    with pytest.raises(ConfigError, match="needs --redis URL"):
        parse("clip.mp4", "--state", str(tmp_path / "state"), "--redis-password-file", str(secret))


def test_same_named_files_get_the_folder_names_that_tell_them_apart():
    from pipelines.settings import distinct_file_ids

    assert distinct_file_ids(["/a/2026-12-01/gate.mp4", "/a/2026-12-02/gate.mp4"]) == [
        "2026-12-01_gate", "2026-12-02_gate"]
    # Frigate's recordings: <day>/<hour>/<camera>/<MM.SS>.mp4, one depth for the whole group
    frigate = ["/r/2026-12-01/12/door/00.00.mp4", "/r/2026-12-01/12/yard/00.00.mp4", "/r/2026-12-01/13/door/00.00.mp4"]
    assert distinct_file_ids(frigate) == ["12_door_00.00", "12_yard_00.00", "13_door_00.00"]
    frigate.append("/r/2026-12-02/12/door/00.00.mp4")   # another day: the day is needed too
    assert distinct_file_ids(frigate)[0] == "2026-12-01_12_door_00.00"  # type: ignore[index]
    assert distinct_file_ids(["/a/x.mp4", "/a/x.mkv"]) is None   # same folder, same stem: nothing tells them apart


def test_a_derived_id_that_clashes_with_a_given_one_is_still_refused(tmp_path):
    path = write(tmp_path, "sources:\n  - {url: /a/2026-12-01/gate.mp4, id: gate}\n  - /a/2026-12-02/gate.mp4\n")
    with pytest.raises(ConfigError, match="two sources get the id 'gate'"):
        load_config(path)

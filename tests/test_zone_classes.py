"""``classes:`` per zone and per line: count only cars on the road line, people in the door zone."""

from __future__ import annotations

import pytest

from pipelines.config import build_config
from pipelines.frames import StatusKind, StreamStatus
from pipelines.processing.events import EventGenerator
from pipelines.processing.zones import LineConfig, ZoneConfig
from tests.analytics_scenes import walk
from tests.conftest import run_cli
from tests.test_docs_quotes import quoted
from tracker.configutil import ConfigError

ROAD = LineConfig("road", ((100, 100), (100, 0)), classes=("car",))
EVERYONE = LineConfig("all", ((100, 100), (100, 0)))
DOOR = ZoneConfig("door", ((60, 0), (140, 0), (140, 100), (60, 100)), classes=(0,))   # by id: person


def _run(zones=(DOOR,), lines=(ROAD, EVERYONE)):  # type: ignore[no-untyped-def]
    gen = EventGenerator("cam", zones, lines)
    events = []
    # a person (class 0) and a car (class 2) both walk right through the door and over both lines
    for res in walk(40, {1: (0, 0.0, 5.0), 2: (2, 10.0, 5.0)}):
        events += gen.update(res)
    events += gen.status(StreamStatus(StatusKind.ENDED, "cam", 0.0))
    return gen, events


def test_a_line_with_classes_counts_only_those_classes():
    gen, events = _run()
    counts = gen.counts()
    assert (counts.lines["road"].left_to_right, counts.lines["all"].left_to_right) == (1, 2)
    crossed = {(e["line"], e["track"]["class_name"]) for e in events if e["event"] == "line_crossed"}
    assert crossed == {("road", "car"), ("all", "car"), ("all", "person")}
    assert counts.lines["road"].classes == ("car",) and counts.lines["all"].classes == ()
    assert counts.lines["road"].doc()["classes"] == ["car"] and "classes" not in counts.lines["all"].doc()


def test_a_zone_with_class_ids_counts_only_those_and_names_them():
    gen, events = _run()
    door = gen.counts().zones["door"]
    assert (door.entries, door.exits, door.occupancy) == (1, 1, 0)
    assert door.classes == ("person",)                        # the id as the model names it
    entered = [e["track"]["class_name"] for e in events if e["event"] == "zone_entered"]
    assert entered == ["person"]


@pytest.mark.parametrize("classes, message", [
    ("car", "zones[0].classes: must be a list"),
    ([True], "zones[0].classes[0]"),
    ([-1], "zones[0].classes[0]: a class is a name or an id >= 0"),
    ([""], "zones[0].classes[0]: a class is a name or an id >= 0"),
    (["car", "car"], "zones[0].classes: names a class twice"),
    ([1.5], "zones[0].classes[0]"),
])
def test_bad_classes_are_refused_naming_the_key(classes, message):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        build_config({"zones": [{"name": "door", "polygon": [[0, 0], [9, 0], [9, 9]], "classes": classes}]})
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.slow
def test_a_class_the_model_does_not_have_is_one_clear_line(bikes_video, pose_weights, tmp_path):  # type: ignore[no-untyped-def]
    config = tmp_path / "c.yaml"
    config.write_text("lines:\n  - {name: road, points: [[400, 0], [400, 300]], classes: [car]}\n")
    run = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                  "--quiet", "--config", str(config), timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == \
        "trackstream: error: source bikes: line 'road': classes: 'car' is not a class of the model (0=person)"
    assert "Traceback" not in run.stderr
    assert quoted("analytics.md", "source bikes: line") == run.stderr.strip().splitlines()[-1]   # the docs say it


@pytest.mark.slow
def test_a_line_whose_classes_the_run_does_not_track_is_one_clear_line(bikes_video, tmp_path):  # type: ignore[no-untyped-def]
    """``--classes 0`` drops cars before tracking: a line counting only cars counted nothing, silently."""
    from tests.conftest import shared_data

    weights = shared_data("weights/yolov8n_int8_640.onnx")   # COCO: 0=person, 2=car
    config = tmp_path / "c.yaml"
    config.write_text("lines:\n  - {name: road, points: [[400, 0], [400, 300]], classes: [car, 7]}\n")
    args = ["run", str(bikes_video), "--model", str(weights), "--imgsz", "160", "--max-frames", "2", "--quiet",
            "--config", str(config), "--jsonl", str(tmp_path / "o.jsonl")]
    run = run_cli(*args, "--classes", "0,1", timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == ("trackstream: error: source bikes: line 'road': classes: "
                                                   "car, truck are not tracked: --classes (detector.classes) "
                                                   "keeps only 0, 1")
    assert "Traceback" not in run.stderr
    assert run_cli(*args, "--classes", "0,2", "--overwrite", timeout=120).returncode == 0   # one of them: fine

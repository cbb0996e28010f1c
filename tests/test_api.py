"""The Python API (``pipelines.process``): the README's example runs as written, several sources at once,
stopping early, and mistakes as one-line errors."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from pipelines import process
from pipelines.errors import OutputError, SourceError
from tracker.configutil import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    """The fenced ```python block of the README's "Python API" section."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(r"^#+ Python API\s*$", text, re.MULTILINE)
    assert heading, "README.md has no 'Python API' heading"
    section = text[heading.end():]
    block = re.search(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block, "the README's Python API section has no ```python block"
    before = section[:block.start()]
    assert not re.search(r"^#+ ", before, re.MULTILINE), "the example is under another heading"
    return block.group(1)


def trackstream_threads(wait: float = 2.0) -> list[str]:
    """Names of the pipeline's threads still running after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        names = [t.name for t in threading.enumerate() if t.name.startswith("trackstream-")]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


@pytest.mark.slow
def test_readme_python_example_runs_and_finds_tracks_events_and_counts(bikes_video, pose_weights, capsys):
    namespace: dict[str, object] = {"__name__": "readme_example"}
    code = compile(readme_python_example(), "README.md (Python API)", "exec")
    exec(code, namespace)  # noqa: S102 - the README's own example, as a user would run it
    printed = capsys.readouterr().out
    track_ids, events = namespace["track_ids"], namespace["events"]
    assert isinstance(track_ids, set) and track_ids and all(isinstance(i, int) and i >= 1 for i in track_ids)
    assert f"bikes: tracks {sorted(track_ids)}" in printed
    assert isinstance(events, list) and "track_started" in events and "zone_entered" in events
    assert "counts: {'zones': {'right_half':" in printed
    assert not trackstream_threads()


@pytest.mark.slow
def test_two_sources_at_once_yield_results_of_both_with_their_own_ids(bikes_video, pose_weights):
    """The same clip as two sources: both come through, in frame order, each with its own tracker (the
    same IDs in each, not one counter shared)."""
    results = list(process({"url": str(bikes_video), "id": "left"}, {"url": str(bikes_video), "id": "right"},
                           model=pose_weights, imgsz=256, vid_stride=5, max_frames=10))
    frames: dict[str, list[int]] = {}
    tracks: dict[str, list[list[int]]] = {}
    for result in results:
        frames.setdefault(result.frame.source_id, []).append(result.frame.index)
        tracks.setdefault(result.frame.source_id, []).append(result.tracks.track_id.tolist())
    assert frames == {"left": list(range(0, 50, 5)), "right": list(range(0, 50, 5))}
    assert tracks["left"] == tracks["right"] and any(tracks["left"])


@pytest.mark.slow
def test_breaking_out_early_stops_the_pipeline_and_closes_its_outputs(bikes_video, pose_weights, tmp_path):
    jsonl = tmp_path / "bikes.jsonl"
    seen: list[int] = []
    for result in process(bikes_video, model=pose_weights, imgsz=160, overrides={"output.jsonl": str(jsonl)}):
        seen.append(result.frame.index)
        if len(seen) == 3:
            stopping = time.monotonic()
            break
    stopped_in = time.monotonic() - stopping
    assert seen == [0, 1, 2]
    assert stopped_in < 10, f"stopping took {stopped_in:.1f} s"
    assert not trackstream_threads()
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]  # flushed, whole
    assert 3 <= len(records) < 250                   # it stopped reading long before the clip's end
    assert [r["frame_index"] for r in records] == list(range(len(records)))


@pytest.mark.slow
def test_a_script_that_stops_reading_without_closing_the_run_still_exits(bikes_video, pose_weights):
    """A script keeps the iterator, reads a few results and ends: the interpreter must exit (the run is closed
    while its threads still run, not after the interpreter froze them holding a lock)."""
    import subprocess
    import sys

    script = ("import sys\nfrom pipelines import process\n"
              "results = process(sys.argv[1], model=sys.argv[2], imgsz=160, schedule='adaptive')\n"
              "for _ in range(40):\n    next(results)\nprint('read 40', flush=True)\n")
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script, str(bikes_video), str(pose_weights)], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "read 40" in done.stdout


def test_a_failure_inside_the_pipeline_is_raised_in_the_loop(bikes_video, pose_weights, tmp_path):
    """The video sink fails in the pipeline's own thread (an unknown encoder): the loop gets its one-line
    error, and nothing is left running."""
    video = {"output.video": str(tmp_path / "out.mp4"), "output.video_codec": "no_such_codec"}
    results = process(bikes_video, model=pose_weights, imgsz=160, max_frames=3, overrides=video)
    with pytest.raises(OutputError, match="unknown video codec 'no_such_codec'") as failure:
        list(results)
    assert "\n" not in str(failure.value)
    assert not trackstream_threads()


def test_a_missing_video_is_a_one_line_source_error(tmp_path):
    results = process(tmp_path / "missing.mp4", imgsz=160)
    with pytest.raises(SourceError, match="video file not found") as failure:
        next(results)
    assert "\n" not in str(failure.value)
    assert not trackstream_threads()


def test_a_bad_setting_is_refused_at_the_call_naming_its_key():
    with pytest.raises(ConfigError, match=r"^detector\.conf: "):
        process("street.mp4", conf=2.0)
    with pytest.raises(ConfigError, match="detector.bogus"):
        process("street.mp4", overrides={"detector.bogus": 1})


def test_overrides_of_keys_that_have_a_named_argument_are_applied(bikes_video, pose_weights):
    """``overrides={"detector.schedule": "interval:3"}`` was dropped (the unset ``schedule=`` argument, None,
    replaced it): every frame was detected, and ``interval:0`` there was not even refused."""
    results = process(bikes_video, model=pose_weights, imgsz=160, max_frames=7,
                      overrides={"detector.schedule": "interval:3", "detector.conf": 0.3})
    assert [r.detected for r in results] == [True, False, False, True, False, False, True]
    with pytest.raises(ConfigError, match=r"^detector\.schedule: interval:K needs K >= 1"):
        process(bikes_video, overrides={"detector.schedule": "interval:0"})
    with pytest.raises(ConfigError, match=r"^detector\.conf: "):
        process(bikes_video, overrides={"detector.conf": 2.0})


@pytest.mark.parametrize("sources, message", [
    ((["a.mp4", "b.mp4"],), "give each source as its own argument"),
    ((3.5,), "a source is a path, URL, mapping or SourceSettings, got float"),
])
def test_a_source_that_is_not_one_is_a_config_error_naming_it(sources, message):  # type: ignore[no-untyped-def]
    """``process(["a.mp4"])`` raised a bare TypeError from deep inside; the README promises ConfigError."""
    from pipelines.api import process
    from tracker.configutil import ConfigError

    with pytest.raises(ConfigError, match=message):
        next(iter(process(*sources)))


ZONE = {"name": "door", "polygon": [[0, 0], [50, 0], [50, 50]]}


@pytest.mark.parametrize("options, message", [
    ({"zones": ZONE}, r"^zones: must be a list of \{'name'"),                 # one zone without its list
    ({"zones": "door"}, r"^zones: must be a list of "),
    ({"zones": ["door"]}, r"^zones\[0\]: must be a mapping like "),
    ({"lines": {"name": "gate", "points": [[0, 0], [9, 9]]}}, r"^lines: must be a list of "),
    ({"classes": 0}, r"^detector\.classes: must be a list of class ids"),
    ({"max_frames": "3"}, r"^max_frames: must be a whole number of frames >= 1, got '3'"),
    ({"max_frames": 2.5}, r"^max_frames: must be a whole number"),              # read 3 frames
    ({"max_frames": True}, r"^max_frames: must be a whole number"),             # read 1 frame
    ({"overrides": "detector.iou=0.5"}, r"^overrides: must be a mapping of dotted keys"),
    ({"model": 123}, r"^model: must be a file path"),
    ({"config": 123}, r"^config: must be a file path"),
    ({"heatmap": 1}, r"^heatmap: must be a file path"),
])
def test_an_argument_of_the_wrong_shape_is_a_config_error_naming_it(options, message):  # type: ignore[no-untyped-def]
    """``zones=one_zone`` raised "dictionary update sequence element #0 has length 1", ``classes=0`` "'int'
    object is not iterable" and ``max_frames="3"`` a TypeError from a comparison; ``max_frames=2.5`` ran.
    The README promises a ``ConfigError`` naming the setting, at the call."""
    with pytest.raises(ConfigError, match=message) as refused:
        process("street.mp4", **options)
    assert "\n" not in str(refused.value)


def test_numpy_integers_are_taken_for_classes_and_max_frames(bikes_video, pose_weights):
    """Class ids and counts computed with numpy (``np.array([0])``, ``np.int64(2)``) were refused as "must be a
    whole number, got np.int64(0)"."""
    import numpy as np

    results = process(bikes_video, model=pose_weights, imgsz=160, classes=np.array([0]), max_frames=np.int64(2))
    assert [r.frame.index for r in results] == [0, 1]

"""``--state`` keeps the warnings before a predicted crossing and the heatmap: a run stopped while a warning
stands and resumed from its snapshot announces that warning once, cancels it when it stops holding, and
writes the same heatmap PNG as an uninterrupted run. First with the real ``StreamProcessor`` and a walker
(synthetic detector boxes, real tracker) through a JSON round trip, then with ``trackstream run`` on the
bundled clip and detector, stopped three times."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.processing.heatmap import HeatmapConfig
from pipelines.processing.processor import StreamProcessor
from pipelines.settings import SourceSettings
from tests.conftest import run_cli
from tests.test_forecast import GATE, SHOP, _walk
from tests.test_resume import lines, without_times

HEAT = HeatmapConfig(enabled=True, half_life_seconds=1.5)   # with a decay: its running scale is kept too


def _settings() -> SourceSettings:
    return SourceSettings("cam.mp4", lines=(GATE,), zones=(SHOP,), heatmap=HEAT)


def _turning_walker() -> list:  # type: ignore[type-arg]
    """Towards the gate and the shop (warned for both at about frame 17), back the way they came from
    frame 25 (both warnings cancelled), then at it again and through (warned, crossed, entered)."""
    towards = [(100.0 + 6.0 * i, 400.0) for i in range(25)]
    back = [(244.0 - 6.0 * i, 400.0) for i in range(1, 20)]
    again = [(130.0 + 8.0 * i, 400.0) for i in range(1, 40)]
    return _walk(towards + back + again)


def _run(proc: StreamProcessor, frames: list) -> tuple[list[dict[str, Any]], Any]:  # type: ignore[type-arg]
    events: list[dict[str, Any]] = []
    heat = None
    for frame, dets in frames:
        result = proc.process(frame, dets)
        events += result.events
        heat = result.heat
    return events, heat


@pytest.mark.parametrize("stop", [20, 30, 60])   # a warning standing; both cancelled; the second one standing
def test_a_processor_resumed_from_its_snapshot_neither_repeats_nor_forgets_a_warning(stop):  # type: ignore[no-untyped-def]
    frames = _turning_walker()
    whole, whole_heat = _run(StreamProcessor(_settings(), {0: "person"}), frames)
    names = [e["event"] for e in whole]
    assert names.count("crossing_predicted") == names.count("zone_entry_predicted") == 2
    assert names.count("crossing_prediction_cancelled") == names.count("zone_entry_prediction_cancelled") == 1
    first = StreamProcessor(_settings(), {0: "person"})
    before, _ = _run(first, frames[:stop])
    saved = json.loads(json.dumps(first.state_dict()))        # what --state writes and reads back
    resumed = StreamProcessor(_settings(), {0: "person"})
    resumed.load_state_dict(saved)
    after, heat = _run(resumed, frames[stop:])
    assert before + after == whole                            # every warning once, every cancellation delivered
    assert heat is not None and whole_heat is not None
    assert heat.frames == whole_heat.frames == len(frames)
    np.testing.assert_array_equal(heat.total, whole_heat.total)   # the heat of the whole walk, to the bit
    np.testing.assert_array_equal(heat.by_class["person"], whole_heat.by_class["person"])


def test_a_pending_warning_is_in_the_snapshot_and_one_of_an_earlier_release_still_loads():
    frames = _turning_walker()
    proc = StreamProcessor(_settings(), {0: "person"})
    _run(proc, frames[:20])
    state = json.loads(json.dumps(proc.state_dict()))
    standing = state["events"]["predictions"]
    assert [row[:2] for row in standing["lines"]["gate"]["standing"]] == [[1, 1]]   # track 1, left to right
    assert [row[0] for row in standing["zones"]["shop"]["standing"]] == [1]
    # a snapshot written before predictions and heatmaps were kept loads (same version: the keys are optional);
    # the warning it did not keep is then announced again, and the heat starts from the resumed frames
    del state["events"]["predictions"], state["heatmap"]
    old = StreamProcessor(_settings(), {0: "person"})
    old.load_state_dict(state)
    again, heat = _run(old, frames[20:25])
    assert "crossing_predicted" in [e["event"] for e in again]
    assert heat is not None and 1 <= heat.frames <= 5   # the resumed frames only, not the 20 before


def test_a_snapshot_with_broken_heat_is_refused_in_one_line():
    from pipelines.processing.processor import StateError

    proc = StreamProcessor(_settings(), {0: "person"})
    _run(proc, _turning_walker()[:10])
    state = json.loads(json.dumps(proc.state_dict()))
    state["heatmap"]["total"][0] = "not base64!"
    fresh = StreamProcessor(_settings(), {0: "person"})
    with pytest.raises(StateError, match="saved state of cam: malformed \\(heatmap cells"):
        fresh.load_state_dict(state)
    assert fresh.frames_processed == 0 and not fresh.restored   # unchanged


# -- trackstream run on the bundled clip -------------------------------------------------------------------------
# the bikes cross ``road`` (track 1: warned at frame 33, crossed at 39); track 3 heads down for ``kerb`` (warned at
# 189, cancelled at 192, warned again at 199, cancelled a few frames later: 201 or 202 as the runtime's release rounds)
CONFIG = """
lines:
  - {name: road, points: [[400, 0], [400, 400]], predict_seconds: 3.0, predict_min_probability: 0.7}
  - {name: kerb, points: [[0, 300], [640, 300]], predict_seconds: 2.0}
zones: [{name: left, polygon: [[0, 0], [320, 0], [320, 300], [0, 300]], predict_seconds: 3.0}]
"""


def _args(video: Path, weights: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return ["run", str(video), "--model", str(weights), "--imgsz", "160", "--config", str(config),
            "--events", str(out / "e.jsonl"), "--heatmap", str(out / "heat.png"), "--heatmap-half-life", "4",
            "--batch", "4", "--quiet", *extra]


@pytest.mark.slow
def test_resumed_run_warns_once_cancels_and_writes_the_heatmap_of_the_whole_video(tmp_path, bikes_video,
                                                                                   pose_weights):
    full, pieces = tmp_path / "full", tmp_path / "pieces"
    full.mkdir(), pieces.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    proc = run_cli(*_args(bikes_video, pose_weights, full, config))
    assert proc.returncode == 0, proc.stderr
    whole = lines(full / "e.jsonl")
    warned = [(e["frame_index"], e["line"]) for e in whole if e["event"] == "crossing_predicted"]
    cancelled = [(e["frame_index"], e["line"]) for e in whole if e["event"] == "crossing_prediction_cancelled"]
    assert 30 <= min(f for f, line in warned if line == "road") < 35   # standing at the first stop
    assert [(189, "kerb"), (199, "kerb")] == [w for w in warned if w[1] == "kerb"]
    assert [line for _, line in cancelled] == ["kerb", "kerb"]
    # each after its warning, soon: a cancel is decided on min_frames_on_side + 1 detected frames in a row
    assert 189 < cancelled[0][0] <= 198 and 199 < cancelled[1][0] <= 208
    state = tmp_path / "state"
    for max_frames in ("35", "155", "10"):   # frames read by each run: stops after frames 34, 189 and 199, each
                                             # with a warning standing
        proc = run_cli(*_args(bikes_video, pose_weights, pieces, config, "--state", str(state),
                              "--max-frames", max_frames))
        assert proc.returncode == 0, proc.stderr
        standing = json.loads((state / "bikes.json").read_text())["processor"]["events"]["predictions"]["lines"]
        assert any(s["standing"] for s in standing.values()), max_frames
    proc = run_cli(*_args(bikes_video, pose_weights, pieces, config, "--state", str(state)))
    assert proc.returncode == 0, proc.stderr
    events = lines(pieces / "e.jsonl")
    assert without_times(events) == without_times(whole)   # no warning twice, every cancellation delivered
    assert [(e["frame_index"], e["line"]) for e in events if e["event"] == "crossing_prediction_cancelled"] \
        == cancelled
    assert (pieces / "heat.png").read_bytes() == (full / "heat.png").read_bytes()   # the whole video's heat

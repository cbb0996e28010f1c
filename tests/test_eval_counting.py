"""Counting accuracy (`trackstream eval --count-lines`) and predicted crossings (`--predict-horizon`): the
counting rule on hand-checkable trajectories, supervision's LineZone on the same tracks, and the CLI on the
first 100 frames of a real MOT17 sequence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import UserError
from pipelines.evaluation.counting import (LineSets, auto_lines, count_crossings, count_metrics,
                                           linezone_crossings, score_lines)
from pipelines.processing.zones import LineConfig
from tests.conftest import run_cli, shared_data
from tests.test_eval import _copy_head

SEQ = "MOT17-05-FRCNN"   # 18 ground-truth crossings of the auto lines in its first 100 frames
FRAMES = 100
# a vertical line at x = 100 from y = 0 to y = 200, drawn downwards: its right-hand side on screen is x < 100
LINE = LineConfig("door", ((100.0, 0.0), (100.0, 200.0)))


def _walk(track: int, xs: list[float], y: float = 150.0, first_frame: int = 1) -> list[list[float]]:
    """MOT rows ``frame, id, x, y, w, h`` of a 20 x 40 px box whose bottom centre follows ``xs`` at height y."""
    return [[first_frame + i, track, x - 10, y - 40, 20, 40] for i, x in enumerate(xs)]


def _scene() -> np.ndarray:
    """Five people, counted by hand against LINE (the segment spans y 0..200):

    1 walks right across it          -> right_to_left (x grows: from the right-hand side to the left)
    2 walks right across it          -> right_to_left
    3 walks left across it           -> left_to_right
    4 walks right below its end (y = 260, outside the segment) -> nothing
    5 hovers on it, one frame on the far side at a time (flicker)  -> nothing
    """
    rows = (_walk(1, [60 + 8 * i for i in range(11)]) + _walk(2, [40 + 10 * i for i in range(13)], first_frame=5)
            + _walk(3, [150 - 10 * i for i in range(11)], y=100) + _walk(4, [60 + 8 * i for i in range(11)], y=260)
            + _walk(5, [96, 104, 96, 104, 96, 96, 104, 96], y=50))
    return np.array(rows, float)


def test_our_rule_counts_the_hand_checked_crossings():
    crossings = count_crossings(_scene(), [LINE])
    assert sorted((c.track, c.sign) for c in crossings) == [(1, -1), (2, -1), (3, 1)]
    assert all(c.line == "door" and c.height == 40 for c in crossings)


def test_scores_compare_a_tracker_with_an_id_switch_to_the_truth():
    truth = count_crossings(_scene(), [LINE])
    tracked = _scene()
    switch = (tracked[:, 1] == 1) & (tracked[:, 2] + 10 > 100)   # person 1 gets a new id on the far side
    tracked[switch, 1] = 99
    found = count_crossings(tracked, [LINE])
    scores = {s.direction: s for s in score_lines(truth, found, [LINE], rate=10.0)}
    rtl, ltr = scores["right_to_left"], scores["left_to_right"]
    assert (rtl.true, rtl.found, rtl.matched, rtl.error, rtl.recall) == (2, 1, 1, -1, 50.0)
    assert (ltr.true, ltr.found, ltr.precision) == (1, 1, 100.0)
    assert count_metrics(list(scores.values()))["CountErr"] == pytest.approx(100 / 3)


def test_supervision_linezone_counts_the_same_scene_in_our_directions():
    crossings = linezone_crossings(_scene(), [LINE])
    # LineZone counts the three walkers and ignores the one passing beside the segment; its rule has no
    # hysteresis, so the flickering person 5 is counted at every change of side
    walkers = sorted((c.track, c.sign) for c in crossings if c.track != 5)
    assert walkers == [(1, -1), (2, -1), (3, 1)]
    assert sum(c.track == 5 for c in crossings) >= 2


def test_auto_lines_are_fixed_by_the_image_size():
    a, b = auto_lines(1920, 1080), auto_lines(1920, 1080)
    assert a == b and [ln.name for ln in a] == ["vertical", "horizontal", "diagonal-lr", "diagonal-tb"]
    assert a[0].points == ((960.0, 0.0), (960.0, 1080.0)) and a[1].points == ((0.0, 540.0), (1920.0, 540.0))


def test_a_bad_line_file_is_one_clear_error(tmp_path: Path):
    bad = tmp_path / "lines.yaml"
    bad.write_text("MOT17-05-FRCNN:\n  - {name: door, points: [[0, 0], [0, 0]]}\n")
    with pytest.raises(UserError, match=r"lines.yaml: MOT17-05-FRCNN\[0\]: points: the two points must differ"):
        LineSets(str(bad))
    with pytest.raises(UserError, match="not found"):
        LineSets(str(tmp_path / "missing.yaml"))
    with pytest.raises(UserError, match="is a folder"):   # it said 'not found' of a folder that is there
        LineSets(str(tmp_path))


@pytest.fixture(scope="module")
def mot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mot_count")
    _copy_head(shared_data(f"mot/MOT17/train/{SEQ}"), root / "MOT17" / "train" / SEQ, FRAMES)
    return root


def test_eval_prints_counts_per_line_and_writes_them_to_the_summary(mot_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc = run_cli("eval", str(mot_root), "--out", str(out), "--tracker", "trackstream",
                   "--tracker", "ultralytics-bytetrack", "--count-lines", "auto", "--predict-horizon", "1",
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    table = text[text.index("line counts [stride1]"):].split("\n\n")[0].splitlines()
    rows = [line.split() for line in table if line.startswith("trackstream ")]
    assert len(rows) == 8                                      # 4 auto lines x 2 directions
    assert sum(int(r[4]) for r in rows) == 18                  # the true crossings, counted by hand above
    for r in rows:
        assert int(r[6]) == int(r[5]) - int(r[4])              # error = count - true
    assert "counting accuracy [stride1]" in text and "predicted crossings" in text
    for label in ("trackstream", "trackstream+linezone", "ultralytics-bytetrack", "ultralytics-bytetrack+linezone"):
        assert any(line.startswith(f"{label} ") and SEQ in line for line in text.splitlines()), label
    def no_nan(name: str) -> None:
        raise AssertionError(f"summary.json holds {name}: not strict JSON")
    summary = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    seq = summary["counts_by_condition"]["stride1"]["ultralytics-bytetrack+linezone"][SEQ]
    assert len(seq["lines"]) == 8 and seq["CountTrue"] == 18 and 0 <= seq["CountErr"]
    assert set(seq["lines"][0]) == {"line", "direction", "true", "found", "matched", "error", "precision", "recall"}
    assert summary["count_totals"]["stride1"]["trackstream"]["CountTrue"] == 18
    predicted = summary["predicted_crossings"]["stride1"][SEQ]
    assert predicted["gt_crossings"] == 18 and predicted["predictions"] > 0
    assert 0 < predicted["recall"] <= 100 and 0 < predicted["precision"] <= 100
    assert 0 < predicted["median_lead_seconds"] <= 1.0 + 2 / 14


def test_eval_reads_lines_from_a_file_and_refuses_a_horizon_without_lines(mot_root: Path, tmp_path: Path):
    lines = tmp_path / "lines.yaml"
    lines.write_text('"*":\n  - {name: middle, points: [[320, 0], [320, 480]]}\n')
    out = tmp_path / "out"
    proc = run_cli("eval", str(mot_root), "--out", str(out), "--count-lines", str(lines), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("trackstream  ")
            and SEQ in line and ("left_to_right" in line or "right_to_left" in line)] == ["middle", "middle"]
    bad = run_cli("eval", str(mot_root), "--out", str(out), "--predict-horizon", "1")
    assert bad.returncode != 0 and "add --count-lines" in bad.stderr and "Traceback" not in bad.stderr


def test_ground_truth_as_detections_shows_what_tracking_and_counting_lose_on_their_own(mot_root: Path,
                                                                                       tmp_path: Path):
    # the same 100 frames fed from det.txt and from the ground truth: with a detector that misses no one the
    # tracks match the ground truth almost exactly and the counts come close to the 18 true crossings, far
    # closer than with the public detections (which miss people: the counts fall short)
    def run(*extra: str) -> tuple[str, dict]:
        out = tmp_path / "-".join(extra or ("public",))
        proc = run_cli("eval", str(mot_root), "--out", str(out), "--count-lines", "auto", *extra, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, json.loads((out / "summary.json").read_text())

    public_text, public = run()
    gt_text, oracle = run("--detections", "gt")
    assert "counting accuracy [stride1-gt]" in gt_text and "[stride1]" not in gt_text
    hota_public = public["by_condition"]["stride1"]["trackstream"][SEQ]["hota"]
    hota_gt = oracle["by_condition"]["stride1-gt"]["trackstream"][SEQ]["hota"]
    gt_counts = oracle["count_totals"]["stride1-gt"]["trackstream"]
    public_counts = public["count_totals"]["stride1"]["trackstream"]
    assert gt_counts["CountTrue"] == public_counts["CountTrue"] == 18
    assert gt_counts["CountErr"] < public_counts["CountErr"]
    # measured: error 11% vs 61%, recall 89% vs 33%, HOTA 94 vs 44
    assert gt_counts["CountR"] >= 85.0 and gt_counts["CountR"] > public_counts["CountR"] + 30.0
    assert hota_gt >= 85.0 and hota_gt > hota_public + 30.0


def test_ground_truth_as_detections_needs_the_ground_truth(tmp_path: Path):
    root = tmp_path / "mot"
    _copy_head(shared_data(f"mot/MOT17/train/{SEQ}"), root / "MOT17" / "train" / SEQ, 20, with_gt=False)
    proc = run_cli("eval", str(root), "--out", str(tmp_path / "out"), "--detections", "gt")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"--detections gt: {SEQ} has no gt/gt.txt" in proc.stderr


def test_eval_out_naming_a_file_is_refused_before_anything_is_tracked(tmp_path):  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli, shared_data

    out = tmp_path / "results.txt"
    out.write_text("mine\n")
    proc = run_cli("eval", str(shared_data("mot")), "--out", str(out), "--seqs", "MOT17-09-FRCNN", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().endswith("is a file; eval writes a folder of results there")
    assert out.read_text() == "mine\n"


def test_eval_never_writes_into_a_folder_of_earlier_results_unasked(tmp_path):  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli, shared_data

    out = tmp_path / "results"
    (out / "data").mkdir(parents=True)
    (out / "summary.json").write_text('{"mine": 1}\n')
    (out / "data" / "MOT17-09-FRCNN.txt").write_text("1,1,0,0,1,1,1,-1,-1,-1\n")
    args = ("eval", str(shared_data("mot")), "--out", str(out), "--seqs", "MOT17-09-FRCNN")
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"trackstream: error: --out {out}: holds files already; refusing "
                                                "to write results into it (choose a new or empty folder, or "
                                                "--overwrite)"]
    assert (out / "summary.json").read_text() == '{"mine": 1}\n'
    assert (out / "data" / "MOT17-09-FRCNN.txt").read_text() == "1,1,0,0,1,1,1,-1,-1,-1\n"


def _stop_at_line_sequence(root: Path) -> Path:
    """A 1920x1080 MOT sequence (gt = det) of two people, against the ``auto`` horizontal line at y = 540:

    A walks up to 2 px short of it (its box bottom at 538: within the 2 px dead band, so on no side),
    stands there, and walks back down: no crossing. B walks up across every line it meets.
    A's Kalman box runs on past where A stopped, beyond the dead band, and back: counted on it, A crossed twice.
    """
    seq = root / "MOT17" / "train" / "STOP-01"
    rows: list[list[float]] = []
    bottoms = [600.0 - 4 * i for i in range(16)] + [538.0] * 30 + [538.0 + 4 * i for i in range(1, 16)]
    for frame, bottom in enumerate(bottoms, start=1):
        rows.append([frame, 1, 480, bottom - 100, 40, 100])
        rows.append([frame, 2, 1180, 720 - 6 * frame - 100, 40, 100])
    (seq / "gt").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "gt" / "gt.txt").write_text("".join(",".join(f"{v:g}" for v in r) + ",1,1,1\n" for r in rows))
    (seq / "det" / "det.txt").write_text("".join(",".join(f"{v:g}" for v in r[:1] + [-1] + r[2:]) + ",1\n"
                                                 for r in rows))
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname=STOP-01\nimDir=img1\nframeRate=25\nseqLength={len(bottoms)}\n"
                                     "imWidth=1920\nimHeight=1080\nimExt=.jpg\n")
    return root


def test_eval_counts_trackstream_on_the_boxes_run_counts_on(tmp_path: Path):
    # trackstream run decides crossings on the detector's boxes of matched tracks (EventGenerator.update), not on
    # the Kalman boxes its MOT file reports: the eval counts the same, so fed the ground truth it counts what the
    # ground truth counts, and A, who stops short of the line, is never counted
    root = _stop_at_line_sequence(tmp_path / "mot")
    out = tmp_path / "out"
    proc = run_cli("eval", str(root), "--out", str(out), "--tracker", "trackstream", "--count-lines", "auto",
                   "--detections", "gt", timeout=300)
    assert proc.returncode == 0, proc.stderr
    totals = json.loads((out / "summary.json").read_text())["count_totals"]["stride1-gt"]["trackstream"]
    assert totals["CountTrue"] >= 2                                  # B crosses the horizontal line and more
    assert totals["CountErr"] == 0.0, proc.stdout
    # the Kalman boxes in the MOT file do run past A's stop, beyond the dead band
    reported = np.loadtxt(out / "data" / "STOP-01.txt", delimiter=",")
    a = reported[reported[:, 2] < 960]
    assert len(a) and (a[:, 3] + a[:, 5]).min() < 538.0


def _run_warnings(seq_root: Path, name: str, horizon: float) -> tuple[int, int]:
    """(crossing_predicted, crossing_prediction_cancelled) events of ``trackstream run``'s own processor fed the
    sequence's det.txt frame by frame, with the ``auto`` lines predicting ``horizon`` s ahead (the stream not
    ended: no cancellations by the end of the stream)."""
    from dataclasses import replace

    from pipelines.evaluation.base import tlwh_to_xyxy
    from pipelines.evaluation.motio import find_sequences, frames, read_detections
    from pipelines.frames import VideoFrame
    from pipelines.processing.processor import StreamProcessor
    from pipelines.settings import SourceSettings
    from tracker.types import Detections

    seq = find_sequences(seq_root, "MOT17", "train", (name,))[0]
    lines = tuple(replace(ln, predict_seconds=horizon, predict_min_probability=0.5)
                  for ln in auto_lines(seq.info.width, seq.info.height))
    proc = StreamProcessor(SourceSettings("cam.mp4", lines=lines), {0: "person"})
    image = np.zeros((seq.info.height, seq.info.width, 3), np.uint8)
    events: list[str] = []
    for frame, rows in frames(read_detections(seq.det, seq.info.length), seq.info.length):
        t = (frame - 1) / seq.info.frame_rate
        dets = Detections(tlwh_to_xyxy(rows[:, :4]).astype(np.float32), rows[:, 4].astype(np.float32),
                          np.zeros(len(rows), np.int64))
        events += [e["event"] for e in proc.process(VideoFrame(image, frame - 1, t, "cam", 1000.0 + t), dets).events]
    return events.count("crossing_predicted"), events.count("crossing_prediction_cancelled")


def test_predicted_crossings_are_scored_on_the_warnings_run_makes_and_cancels(tmp_path: Path):
    # --predict-horizon scores the warnings trackstream run makes: A, who stops 2 px short of the line, is warned
    # and the warning cancelled when A's Kalman anchor is on the far side without a counted crossing (run counts
    # on the detector's box, so A's Kalman box running past the line fulfils nothing); C, warned and then
    # never seen again mid-picture, ends when the tracker removes the track: run cancels that warning too
    from pipelines.evaluation.forecast_eval import score_predictions
    from pipelines.evaluation.motio import find_sequences, read_detections
    from pipelines.evaluation.paths import read_gt_people

    root = _stop_at_line_sequence(tmp_path / "mot")
    seq_dir = root / "MOT17" / "train" / "STOP-01"
    rows = [[frame, 3, 1500, 640 - 6 * (frame - 1) - 100, 40, 100] for frame in range(1, 12)]
    with (seq_dir / "gt" / "gt.txt").open("a") as gt_file, (seq_dir / "det" / "det.txt").open("a") as det_file:
        for r in rows:
            gt_file.write(",".join(f"{v:g}" for v in r) + ",1,1,1\n")
            det_file.write(",".join(f"{v:g}" for v in r[:1] + [-1] + r[2:]) + ",1\n")
    info = seq_dir / "seqinfo.ini"
    info.write_text(info.read_text().replace("seqLength=61", "seqLength=100"))   # C's track removed at 2 s
    seq = find_sequences(root, "MOT17", "train", ("STOP-01",))[0]
    dets = read_detections(seq.det, seq.info.length)
    lines = auto_lines(seq.info.width, seq.info.height)
    score = score_predictions(seq, dets, read_gt_people(seq.gt), lines, {}, 1.0)
    made, cancelled = _run_warnings(root, "STOP-01", 1.0)
    assert cancelled >= 2                                   # A's (misses_line) and C's (track_ended)
    assert (score.predictions, score.cancelled) == (made, cancelled)


def test_predicted_crossings_under_a_schedule_are_warned_on_the_frames_it_detects(mot_root: Path, tmp_path: Path):
    # run makes crossing_predicted warnings on detected frames only: a scheduled eval warns on the frames its
    # schedule feeds (here a quarter of them), so it makes fewer warnings than detecting every frame
    def warnings(*extra: str) -> int:
        out = tmp_path / ("-".join(extra) or "every").replace(":", "")
        proc = run_cli("eval", str(mot_root), "--out", str(out), "--tracker", "trackstream", "--count-lines",
                       "auto", "--predict-horizon", "1", *extra, timeout=300)
        assert proc.returncode == 0, proc.stderr
        found = json.loads((out / "summary.json").read_text())["predicted_crossings"]
        return sum(seq["predictions"] for cond in found.values() for seq in cond.values())

    every, scheduled = warnings(), warnings("--schedule", "interval:4")
    assert 0 < scheduled < every, (every, scheduled)


def test_a_sequence_nobody_crosses_does_not_dilute_the_mean_count_error():
    """MOT17-09 with the docs' `door` line has no true crossings: its 0 of 0 is no 0 % error, and averaging
    it in halved the mean a user reads (11.8 % for a tracker 23.5 % off on the one sequence with crossings)."""
    from pipelines.evaluation.count_table import format_count_totals
    from pipelines.evaluation.counting import LineScore
    from pipelines.evaluation.runner import EvalReport

    report = EvalReport(counts_by_condition={"stride1": {"trackstream": {
        "MOT17-09-FRCNN": [LineScore("door", "left_to_right", 0, 0, 0), LineScore("door", "right_to_left", 0, 0, 0)],
        "MOT17-05-FRCNN": [LineScore("middle", "left_to_right", 14, 11, 9),
                           LineScore("middle", "right_to_left", 20, 15, 11)]}}})
    rows = {line.split()[1]: line.split() for line in format_count_totals(report, "stride1").splitlines()
            if line.startswith("trackstream")}
    assert rows["MOT17-09-FRCNN"][5] == "-"                 # error % of no crossings: none to be off by
    assert rows["MOT17-05-FRCNN"][5] == "23.5"
    mean = next(line for line in format_count_totals(report, "stride1").splitlines() if "mean over" in line)
    assert mean.split()[-1] == "23.5", mean


def test_cross_validation_leaves_a_sequence_nobody_crosses_out_of_the_count_error_as_the_table_does():
    """The printed table shows '-' for a sequence with no true crossings and leaves it out of its mean, but the
    folds scored it as 0 % error (nothing counted) or found x 100 % (3 false crossings: 300 %), so the fold means
    and ``--select-by CountErr`` were decided by a sequence with nothing to count."""
    from pipelines.evaluation.counting import LineScore
    from pipelines.evaluation.crossval import cross_validate, flatten

    def seq(true: int, found: int) -> list[LineScore]:
        return [LineScore("door", "left_to_right", true, found, min(true, found))]

    counts = {"stride1": {                              # "tight" is 10 % off where people cross, "loose" 30 %
        "tight": {"empty": seq(0, 3), "a": seq(20, 18), "b": seq(10, 11)},
        "loose": {"empty": seq(0, 0), "a": seq(20, 14), "b": seq(10, 13)}}}
    table = flatten({}, {}, counts)
    assert not np.isfinite(table[("tight", "stride1", "empty")]["CountErr"])       # as the table's '-'
    cv = cross_validate(table, ["tight", "loose"], ["stride1"], ["empty", "a", "b"], select_by="CountErr")
    assert cv.fixed["tight"]["stride1"]["CountErr"] == pytest.approx(10.0)         # (10 + 10) / 2, not 110
    assert cv.fixed["loose"]["stride1"]["CountErr"] == pytest.approx(30.0)         # not 20
    assert [f.chosen for f in cv.folds] == ["tight"] * 3
    assert cv.selected["stride1"]["CountErr"] == pytest.approx(10.0)

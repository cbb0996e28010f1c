"""`trackstream eval --cross-validate / --frame-stride / noise`, path errors, and the pieces behind them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import UserError
from pipelines.evaluation.conditions import Condition, derive_sequence, perturb_detections
from pipelines.evaluation.crossval import cross_validate
from pipelines.evaluation.motio import find_sequences, read_detections
from pipelines.evaluation.paths import PathRecord, path_errors
from tests.conftest import REPO, run_cli, shared_data
from tests.test_eval import FRAMES, _copy_head

SEQS = ("MOT17-05-FRCNN", "MOT17-09-FRCNN")  # a moving camera at 14 fps and a static one at 30 fps


@pytest.fixture(scope="module")
def two_seq_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mot2")
    for seq in SEQS:
        _copy_head(shared_data(f"mot/MOT17/train/{seq}"), root / "MOT17" / "train" / seq, FRAMES)
    return root


def test_cross_validated_table_lists_every_tracker_per_condition_with_folds(two_seq_root: Path,
                                                                             tmp_path: Path) -> None:
    candidate = tmp_path / "coast.yaml"
    candidate.write_text("output_unmatched_seconds: 0.5\n")
    out = tmp_path / "cv"
    proc = run_cli("eval", str(two_seq_root), "--out", str(out), "--tracker", "trackstream",
                   "--tracker", "ultralytics-bytetrack", "--tracker", "roboflow-bytetrack",
                   "--candidate", str(candidate), "--cross-validate", "--frame-stride", "1", "2",
                   "--drop-detections", "0.2", "--jitter", "0.05", timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "cross-validated: leave one sequence out over 2 sequences" in text
    for seq in SEQS:
        assert f"fold {seq}: chose trackstream" in text
    table = text[text.index("cross-validated"):].splitlines()
    header = table[1]
    for cond in ("stride1", "stride2", "stride1-noise"):
        for metric in ("HOTA", "IDF1", "MOTA"):
            assert f"{cond} {metric}" in header
    for label in ("trackstream", "trackstream-coast", "ultralytics-bytetrack", "roboflow-bytetrack",
                  "trackstream (chosen by HOTA per fold)"):
        row = next(line for line in table if line.startswith(label + "  "))
        values = [float(v) for v in row[len(label):].split()[-9:]]
        assert all(-100 < v <= 100 for v in values), row
    fde = next(line for line in table if line.startswith("  trackstream: stride1 "))  # path, held out
    model, baseline = (float(v) for v in fde.split()[2].rstrip(";").split("/"))
    assert 0 < model < 1 and 0 < baseline < 1
    # the per-condition tables are there too, and the stride-2 copy has half the frames
    assert "== stride2 ==" in text and "== stride1-noise ==" in text
    summary = json.loads((out / "summary.json").read_text())
    cv = summary["cross_validation"]
    assert [f["held_out"] for f in cv["folds"]] == sorted(SEQS)
    fixed = cv["fixed"]["ultralytics-bytetrack"]["stride1"]["HOTA"]
    per_seq = summary["by_condition"]["stride1"]["ultralytics-bytetrack"]
    assert fixed == pytest.approx(np.mean([per_seq[s]["hota"] for s in SEQS]))
    strided = (out / "conditions" / "stride2" / "mot" / "MOT17" / "train" / SEQS[1] / "seqinfo.ini").read_text()
    assert "seqLength=50" in strided and "frameRate=15" in strided


def test_eval_reports_path_errors_beside_the_constant_position_baseline(two_seq_root: Path,
                                                                       tmp_path: Path) -> None:
    proc = run_cli("eval", str(two_seq_root), "--out", str(tmp_path / "p"), "--seqs", SEQS[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("predicted paths"))
    header = lines[start + 1].split()
    assert header[:4] == ["tracker", "condition", "horizon", "samples"]
    rows = {line.split()[2]: line.split() for line in lines[start + 2:start + 4]}
    assert set(rows) == {"0.5", "1.0"}
    for row in rows.values():
        samples, ade_px, fde_px, _, fde_h, c_ade_px, c_fde_px, _, c_fde_h = map(float, row[4:])
        assert samples > 100
        assert 0 < ade_px <= fde_px * 1.5 and 0 < c_ade_px <= c_fde_px * 1.5
        assert 0 < fde_h < 1 and 0 < c_fde_h < 1
    assert float(rows["1.0"][7]) > float(rows["0.5"][7])  # error grows with the horizon


@pytest.mark.parametrize("args, message", [
    (["--frame-stride", "0"], "--frame-stride must be >= 1"),
    (["--drop-detections", "1.5"], "drop fraction must be in [0, 1)"),
    (["--jitter", "0.1", "--noise-seed", "-1"], "--noise-seed must be >= 0"),
    (["--cross-validate", "--seqs", SEQS[0]], "--cross-validate needs at least 2 sequences"),
    (["--cross-validate", "--tracker", "ultralytics-bytetrack"], "chooses among trackstream configs"),
    (["--cross-validate", "--max-detected", "0"], "--max-detected: a share of frames in %"),
    (["--max-detected", "50"], "--max-detected is the folds' detection budget: add --cross-validate"),
    (["--select-by", "IDF1"], "--select-by is what the folds choose by: add --cross-validate"),
    (["--cross-validate", "--select-by", "CountErr"], "chooses by the counting error: add --count-lines"),
    (["--count-lines", "auto", "--predict-probability", "0.8"], "add --predict-horizon"),
])
def test_bad_cross_validation_options_give_one_line(args: list[str], message: str, two_seq_root: Path,
                                                    tmp_path: Path) -> None:
    proc = run_cli("eval", str(two_seq_root), "--out", str(tmp_path / "o"), *args, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def _write_seq(root: Path, name: str, frames: int, rate: int) -> None:
    seq = root / "MOT17" / "train" / name
    (seq / "det").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nframeRate={rate}\nseqLength={frames}\n"
                                     "imWidth=640\nimHeight=480\n")
    (seq / "det" / "det.txt").write_text("".join(f"{f},-1,{10 * f},20,30,60,0.9\n{f},-1,300,20,30,60,0.4\n"
                                                 for f in range(1, frames + 1)))
    (seq / "gt" / "gt.txt").write_text("".join(f"{f},1,{10 * f},20,30,60,1,1,1\n" for f in range(1, frames + 1)))


def test_stride_keeps_every_kth_frame_of_det_and_gt_and_divides_the_rate(tmp_path: Path) -> None:
    _write_seq(tmp_path / "src", "S", 10, 30)
    seq = find_sequences(tmp_path / "src", "MOT17")[0]
    derived = derive_sequence(seq, Condition(stride=3), tmp_path / "out")
    assert derived.info.frame_rate == 10 and derived.info.length == 4  # frames 1, 4, 7, 10
    dets = read_detections(derived.det, derived.info.length)
    assert dets[dets[:, 5] > 0.5, 1].tolist() == [10, 40, 70, 100]  # x of the original frames 1, 4, 7, 10
    assert sorted(set(dets[:, 0].tolist())) == [1, 2, 3, 4]
    gt = np.loadtxt(derived.gt, delimiter=",")
    assert gt[:, 0].tolist() == [1, 2, 3, 4] and gt[:, 2].tolist() == [10, 40, 70, 100]


def test_detection_noise_is_seeded_drops_about_the_fraction_and_keeps_order() -> None:
    rng = np.random.default_rng(0)
    dets = np.column_stack([np.repeat(np.arange(1, 201), 10), rng.uniform(0, 500, (2000, 2)),
                            np.full((2000, 2), 50.0), rng.uniform(0.1, 1, 2000)])
    cond = Condition(drop=0.2, jitter=0.05, seed=7)
    a, b = perturb_detections(dets, cond, "S"), perturb_detections(dets, cond, "S")
    np.testing.assert_array_equal(a, b)  # every tracker gets the very same perturbed detections
    assert 0.75 < len(a) / len(dets) < 0.85
    assert np.all(np.diff(a[:, 0]) >= 0)
    assert not np.array_equal(a, perturb_detections(dets, Condition(drop=0.2, jitter=0.05, seed=8), "S"))
    moved = perturb_detections(dets, Condition(jitter=0.05), "S")
    shift = (moved[:, 1] + moved[:, 3] / 2) - (dets[:, 1] + dets[:, 3] / 2)
    assert 0.03 * 50 < shift.std() < 0.07 * 50  # centres move by about 5% of the box width


def test_pan_moves_detections_and_gt_alike(tmp_path: Path) -> None:
    _write_seq(tmp_path / "src", "S", 60, 30)
    seq = find_sequences(tmp_path / "src", "MOT17")[0]
    derived = derive_sequence(seq, Condition(pan=0.1), tmp_path / "out")
    dets = read_detections(derived.det)
    gt = np.loadtxt(derived.gt, delimiter=",")
    confident = dets[dets[:, 5] > 0.5]
    np.testing.assert_allclose(confident[:, 1], gt[:, 2], atol=0.01)
    offsets = gt[:, 2] - 10 * gt[:, 0]
    assert np.ptp(offsets) > 30  # a 64 px pan on a 640 px image (0.1 widths)


def test_cross_validation_chooses_on_the_other_folds_and_scores_the_held_out_one() -> None:
    # "b" wins in-sample (mean 50 vs 46.7) only thanks to s3; held out, each fold is scored on a sequence
    # it did not choose on, and the figure of merit is lower than either in-sample mean
    hota = {("a", "s1"): 50, ("a", "s2"): 50, ("a", "s3"): 40, ("b", "s1"): 45, ("b", "s2"): 45,
            ("b", "s3"): 60, ("peer", "s1"): 30, ("peer", "s2"): 40, ("peer", "s3"): 50}
    table = {(lbl, "stride1", s): {"HOTA": float(v)} for (lbl, s), v in hota.items()}
    cv = cross_validate(table, ["a", "b"], ["stride1"], ["s1", "s2", "s3"])
    chosen = {f.held_out: f.chosen for f in cv.folds}
    assert chosen == {"s1": "b", "s2": "b", "s3": "a"}  # s1 fold: a (50+40)/2 = 45 < b (45+60)/2 = 52.5
    assert cv.selected["stride1"]["HOTA"] == pytest.approx((45 + 45 + 40) / 3)
    assert cv.fixed["peer"]["stride1"]["HOTA"] == pytest.approx(40.0)
    with pytest.raises(UserError, match="at least 2"):
        cross_validate(table, ["a"], ["stride1"], ["s1"])


def test_a_fold_chooses_only_among_schedules_within_the_detection_budget() -> None:
    # "every" scores best but detects every frame; with a 50% budget each fold takes the best of the others
    rows = {"every": (50, 100), "half": (48, 45), "third": (47, 35), "greedy": (49, 60)}
    table = {(lbl, "stride1", s): {"HOTA": float(h) + i, "detected": float(d)}
             for lbl, (h, d) in rows.items() for i, s in enumerate(("s1", "s2"))}
    assert {f.chosen for f in cross_validate(table, list(rows), ["stride1"], ["s1", "s2"]).folds} == {"every"}
    cv = cross_validate(table, list(rows), ["stride1"], ["s1", "s2"], max_detected=0.5)
    assert {f.chosen for f in cv.folds} == {"half"}
    assert cv.selected["stride1"]["detected"] == pytest.approx(45.0)
    # nothing within the budget: the one that detects least
    cv = cross_validate(table, ["every", "greedy"], ["stride1"], ["s1", "s2"], max_detected=0.5)
    assert {f.chosen for f in cv.folds} == {"greedy"}


def test_schedule_candidates_are_cross_validated_within_the_budget(two_seq_root: Path, tmp_path: Path) -> None:
    tight, every, both = tmp_path / "tight.yaml", tmp_path / "every.yaml", tmp_path / "both.yaml"
    tight.write_text("schedule:\n  travel: 0.1\n  lost_check: 0.05\n")
    every.write_text("detector:\n  schedule: every\n")
    both.write_text("detector:\n  schedule: interval:2\ntracker:\n  confirmation_hits: 3\n")
    out = tmp_path / "cv"
    proc = run_cli("eval", str(two_seq_root), "--out", str(out), "--schedule", "adaptive", "--tracker",
                   "trackstream", "--tracker", "ultralytics-botsort", "--cross-validate", "--max-detected", "70",
                   *[a for f in (tight, every, both) for a in ("--candidate", str(f))], timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout[proc.stdout.index("cross-validated"):]
    assert "stride1 detected" in text.splitlines()[1]
    shares = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()[2:]
              if line.startswith(("trackstream", "ultralytics-botsort")) and "(chosen" not in line}
    assert shares["trackstream-every"] == 100.0 and 40 <= shares["trackstream-both"] <= 70
    assert shares["trackstream"] < shares["trackstream-tight"] < 100.0
    assert shares["ultralytics-botsort"] == shares["trackstream"]  # the peer is fed --schedule's frames
    assert "chose trackstream-every" not in text  # over the budget: never chosen


def test_a_bad_schedule_candidate_is_one_line(two_seq_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule:\n  travle: 0.1\n")
    proc = run_cli("eval", str(two_seq_root), "--out", str(tmp_path / "o"), "--candidate", str(bad), timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "schedule.travle" in lines[0], proc.stderr


def test_path_errors_are_zero_for_a_perfect_prediction_and_vt_for_constant_position() -> None:
    rate, speed = 10.0, 20.0  # fps, px per second
    frames = np.arange(1, 41)
    gt = np.column_stack([frames, np.ones(40), 100 + speed * (frames - 1) / rate, np.full(40, 50.0),
                          np.full(40, 20.0), np.full(40, 40.0)])
    times = np.arange(1, 11) / 10.0
    centre = gt[:, 2:4] + gt[:, 4:6] / 2
    path = centre[:, None, :] + times[None, :, None] * np.array([speed, 0.0])
    errors = {e.horizon: e for e in path_errors(PathRecord(frames, gt[:, 2:6], path, times), gt, rate)}
    one = errors[1.0]
    assert one.samples == 30  # the last 10 frames have no ground truth 1 s later
    assert one.ade_px == pytest.approx(0, abs=1e-9) and one.fde_px == pytest.approx(0, abs=1e-9)
    assert one.base_fde_px == pytest.approx(speed) and one.base_fde_h == pytest.approx(speed / 40)
    assert one.base_ade_px == pytest.approx(speed * times.mean())
    assert errors[0.5].base_fde_px == pytest.approx(speed / 2)


@pytest.mark.parametrize("module", ["pipelines.evaluation.runner", "pipelines.evaluation.motio",
                                    "pipelines.evaluation.table", "pipelines.evaluation"])
def test_evaluation_modules_import_first_without_a_cycle(module: str) -> None:
    code = f"import {module}; import pipelines.evaluation as e; print(e.evaluate.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "evaluate", proc.stderr

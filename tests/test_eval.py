"""`trackstream eval` on a short real MOT17 subset, scoring with TrackEval, and its input handling."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import UserError
from pipelines.evaluation import motio
from pipelines.evaluation.interpolate import interpolate_gaps
from tests.conftest import REPO, bind, run_cli, shared_data

SEQ = "MOT17-09-FRCNN"
FRAMES = 100


def _copy_head(src: Path, dst: Path, frames: int, with_gt: bool = True) -> None:
    """Copy a MOT sequence folder keeping frames 1..frames of det.txt (and gt.txt)."""
    for sub in ("det/det.txt", "gt/gt.txt") if with_gt else ("det/det.txt",):
        kept = [line for line in (src / sub).read_text().splitlines()
                if line.strip() and int(line.split(",")[0]) <= frames]
        (dst / sub).parent.mkdir(parents=True, exist_ok=True)
        (dst / sub).write_text("\n".join(kept) + "\n")
    info = (src / "seqinfo.ini").read_text()
    (dst / "seqinfo.ini").write_text(re.sub(r"seqLength=\d+", f"seqLength={frames}", info))


@pytest.fixture(scope="module")
def mot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MOT_ROOT with the first 100 frames of MOT17-09 (det + gt) and a copy without gt."""
    src = shared_data(f"mot/MOT17/train/{SEQ}")
    root = tmp_path_factory.mktemp("mot")
    _copy_head(src, root / "MOT17" / "train" / SEQ, FRAMES)
    _copy_head(src, root / "MOT17" / "train" / "NOGT-09", FRAMES, with_gt=False)
    return root


def _table_rows(stdout: str) -> dict[tuple[str, str], dict[str, float]]:
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("tracker "))
    names = re.split(r"\s{2,}", header.strip())
    rows = {}
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == len(names) and cells[0] != "tracker" and not cells[0].startswith("-"):
            rows[(cells[0], cells[1])] = {k: float(v) for k, v in zip(names[2:], cells[2:]) if v != "-"}
    return rows


def _check_results_file(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    table = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert table.shape[1] == 10
    frames, ids = table[:, 0], table[:, 1]
    assert np.all(frames == np.round(frames)) and frames.min() >= 1 and frames.max() <= FRAMES
    assert np.all(ids == np.round(ids)) and ids.min() >= 1
    assert len({(f, i) for f, i in zip(frames, ids)}) == len(table), "an id appears twice in one frame"
    assert np.all(table[:, 4:6] > 0) and np.all(table[:, 7:] == -1)
    return table


def test_eval_scores_both_trackers_and_writes_mot_files(mot_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    proc = run_cli("eval", str(mot_root), "--benchmark", "MOT17", "--out", str(out),
                   "--tracker", "trackstream", "--tracker", "ultralytics-bytetrack", "--interpolate",
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = _table_rows(proc.stdout)
    labels = ("trackstream", "ultralytics-bytetrack", "trackstream+interp", "ultralytics-bytetrack+interp")
    for label in labels:
        for seq in (SEQ, "COMBINED"):
            scores = rows[(label, seq)]
            for metric in ("HOTA", "MOTA", "IDF1"):
                assert 0 < scores[metric] <= 100, (label, metric, scores[metric])
            assert scores["IDSW"] >= 0
    assert "NOGT-09: no gt/gt.txt, tracked but not scored" in proc.stdout
    ours = _check_results_file(out / "data" / f"{SEQ}.txt")
    _check_results_file(out / "ultralytics-bytetrack" / "data" / f"{SEQ}.txt")
    _check_results_file(out / "data" / "NOGT-09.txt")
    interpolated = _check_results_file(out / "data_interpolated" / f"{SEQ}.txt")
    assert len(interpolated) >= len(ours)


@pytest.mark.parametrize("case", ["missing root", "unknown seq", "missing det", "bad config key"])
def test_eval_bad_input_gives_one_line_and_exit_2(case: str, mot_root: Path, tmp_path: Path) -> None:
    args = [str(mot_root), "--out", str(tmp_path / "out"), "--seqs", SEQ]
    if case == "missing root":
        args[0] = str(tmp_path / "nowhere")
        expected = "not found"
    elif case == "unknown seq":
        args[-1] = "MOT17-99-FRCNN"
        expected = "unknown sequence 'MOT17-99-FRCNN'"
    elif case == "missing det":
        empty = tmp_path / "root" / "MOT17" / "train" / SEQ
        empty.mkdir(parents=True)
        args[0] = str(tmp_path / "root")
        expected = "det.txt"
    else:
        config = tmp_path / "tracker.yaml"
        config.write_text("no_such_setting: 3\n")
        args += ["--config", str(config)]
        expected = "no_such_setting"
    proc = run_cli("eval", *args, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trackstream: error:"), proc.stderr
    assert expected in lines[0]


def test_unsorted_det_rows_are_fed_in_frame_order(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("3,-1,30,0,5,5,0.9\n1,-1,10,0,5,5,0.8\n3,-1,31,0,5,5,0.7\n1,-1,11,0,5,5,0.6\n"
                   "2,-1,20,0,5,5,0.5\n")
    dets = motio.read_detections(det, length=4)
    assert dets[:, 0].tolist() == [1, 1, 2, 3, 3]
    per_frame = {frame: rows[:, 0].tolist() for frame, rows in motio.frames(dets, 4)}
    assert per_frame == {1: [10, 11], 2: [20], 3: [30, 31], 4: []}  # file order kept within a frame


def test_det_frames_beyond_seq_length_are_rejected(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,0,5,5,0.8\n7,-1,10,0,5,5,0.8\n")
    with pytest.raises(UserError, match="outside 1..5"):
        motio.read_detections(det, length=5)


@pytest.mark.parametrize("rows, max_gap, expected_added", [
    ([[1, 1, 0, 0, 10, 10, 0.9], [5, 1, 40, 0, 10, 10, 0.5]], 20, [[2, 10], [3, 20], [4, 30]]),
    ([[1, 1, 0, 0, 10, 10, 0.9], [5, 1, 40, 0, 10, 10, 0.5]], 2, []),          # gap of 3 > 2
    ([[1, 1, 0, 0, 10, 10, 0.9], [5, 2, 40, 0, 10, 10, 0.5]], 20, []),         # different ids
    ([[1, 1, 0, 0, 10, 10, 0.9], [2, 1, 40, 0, 10, 10, 0.5]], 20, []),         # no gap
])
def test_interpolation_fills_short_gaps_of_one_track(rows: list, max_gap: int, expected_added: list) -> None:
    out = interpolate_gaps(np.array(rows, float), max_gap)
    added = out[~np.isin(out[:, 0], np.array(rows)[:, 0])]
    assert added[:, [0, 2]].tolist() == expected_added
    assert len(out) == len(rows) + len(expected_added)


def test_scoring_gt_as_results_is_perfect_and_id_swaps_count(mot_root: Path, tmp_path: Path) -> None:
    from pipelines.evaluation.scoring import COMBINED, score

    gt_folder = mot_root / "MOT17" / "train"
    gt = np.loadtxt(gt_folder / SEQ / "gt" / "gt.txt", delimiter=",")
    gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]  # pedestrians that count
    perfect = tmp_path / "perfect" / "data"
    motio.write_results(perfect / f"{SEQ}.txt", gt[:, :7])
    result = score(gt_folder, perfect, {SEQ: FRAMES})
    assert result[SEQ].hota > 99 and result[SEQ].mota == pytest.approx(100)
    assert result[SEQ].idsw == 0 and result[COMBINED].idf1 == pytest.approx(100)

    swapped = gt[:, :7].copy()
    late = swapped[:, 0] > FRAMES // 2
    ids = np.unique(swapped[:, 1])
    a, b = ids[0], ids[1]
    ia, ib = late & (swapped[:, 1] == a), late & (swapped[:, 1] == b)
    swapped[ia, 1], swapped[ib, 1] = b, a
    broken = tmp_path / "swapped" / "data"
    motio.write_results(broken / f"{SEQ}.txt", swapped)
    worse = score(gt_folder, broken, {SEQ: FRAMES})
    assert worse[SEQ].idsw >= 1 and worse[SEQ].idf1 < result[SEQ].idf1


def test_bytetrack_adapter_gives_the_same_tracks_as_ultralytics_boxes() -> None:
    """Our light box container must drive BYTETracker exactly like Ultralytics' own Boxes does."""
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import IterableSimpleNamespace

    from pipelines.evaluation.peers import _Boxes, bytetrack_defaults

    src = shared_data(f"mot/MOT17/train/{SEQ}")
    dets = motio.read_detections(src / "det" / "det.txt")
    args = IterableSimpleNamespace(**bytetrack_defaults())
    ours, reference = BYTETracker(args), BYTETracker(args)
    reported = 0
    for _, rows in motio.frames(dets, 60):
        xyxy = np.column_stack([rows[:, :2], rows[:, :2] + rows[:, 2:4]]).astype(np.float32)
        conf = rows[:, 4].astype(np.float32)
        got = ours.update(_Boxes(xyxy, conf, np.zeros(len(conf))))
        want = reference.update(Boxes(np.column_stack([xyxy, conf, np.zeros(len(conf))]), (1080, 1920)))
        np.testing.assert_allclose(got, want, rtol=1e-5)
        reported += len(got)
    assert reported > 100  # tracks were actually reported, not two empty outputs


def test_trackstream_adapter_reports_the_filters_box_which_is_nearer_the_truth_than_jittery_detections() -> None:
    from pipelines.evaluation.trackers import TrackstreamTracker

    rng = np.random.default_rng(4)
    truth = np.array([[100.0 + 150 * k, 200.0, 60.0, 150.0] for k in range(6)])  # x, y, w, h: six still people
    adapter = TrackstreamTracker()
    det_err, out_err = [], []
    for frame in range(120):
        seen = truth + rng.normal(0, 0.05, truth.shape) * truth[:, [2, 3, 2, 3]]
        rows = adapter.update(seen, np.full(len(seen), 0.9), frame / 30)
        if frame >= 20:
            assert len(rows) == len(truth)
            order = np.argsort(rows[:, 1])  # left to right, as the people stand
            out_err.append(np.abs(rows[order, 1:5] - truth).mean())
            det_err.append(np.abs(seen - truth).mean())
    assert np.mean(out_err) < 0.8 * np.mean(det_err)


@pytest.mark.parametrize("extra", [(), ("--count-lines", "auto"), ("--detections", "gt")])
def test_a_malformed_gt_file_is_one_line_naming_it_before_anything_is_tracked(extra: tuple[str, ...],
                                                                              tmp_path: Path) -> None:
    # TrackEval, the counting lines, the ground truth fed as detections and the path errors all read gt.txt:
    # a line that is not numbers is refused once, naming the file and the line, before any tracker runs
    root = tmp_path / "mot"
    _copy_head(shared_data(f"mot/MOT17/train/{SEQ}"), root / "MOT17" / "train" / SEQ, 20)
    gt = root / "MOT17" / "train" / SEQ / "gt" / "gt.txt"
    lines = gt.read_text().splitlines()
    lines[4] = "1,2,oops,4,5,6,1,1,1"
    gt.write_text("\n".join(lines) + "\n")
    proc = run_cli("eval", str(root), "--out", str(tmp_path / "out"), *extra, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"trackstream: error: {gt}: line 5 is not comma-separated numbers: '1,2,oops,4,5,6,1,1,1'"]


@pytest.mark.parametrize("bad", ["1,-1,10,20,30,40,nan", "1,-1,10,20,-30,40,0.9", "1,-1,10,inf,30,40,0.9"])
def test_a_det_file_with_a_box_that_is_no_box_is_one_line_naming_it(bad: str, tmp_path: Path) -> None:
    # a NaN score, a negative width or an infinite coordinate in det.txt was a ValueError traceback from
    # the tracker's Detections at the first frame holding it
    root = tmp_path / "mot"
    _copy_head(shared_data(f"mot/MOT17/train/{SEQ}"), root / "MOT17" / "train" / SEQ, 20)
    det = root / "MOT17" / "train" / SEQ / "det" / "det.txt"
    lines = det.read_text().splitlines()
    lines[6] = bad
    det.write_text("\n".join(lines) + "\n")
    proc = run_cli("eval", str(root), "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"trackstream: error: {det}: line 7 is not a detection (a NaN or infinite number, or a negative width or "
        f"height): {bad!r}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("under", ["", "results"])
def test_an_out_folder_it_may_not_write_is_one_line_before_anything_is_tracked(under: str, mot_root: Path,
                                                                               tmp_path: Path) -> None:
    """It said 'cannot write results to ...' only once every sequence had been tracked (minutes with several
    trackers or --cross-validate). Made for real with a read-only bind mount (needs root: fails under CI,
    skipped otherwise)."""
    (tmp_path / "shared").mkdir()
    with bind(tmp_path / "shared", tmp_path / "readonly", read_only=True) as mount:
        out = mount / under / "eval" if under else mount
        proc = run_cli("eval", str(mot_root), "--seqs", SEQ, "--out", str(out), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"trackstream: error: --out {out}: cannot write results there: Read-only file system"]
    assert "tracked" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("flag", ["--config", "--candidate", "--count-lines"])
def test_a_yaml_file_that_is_not_text_is_one_line_naming_it(flag: str, mot_root: Path, tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_bytes(b"\xff\xfe\x00binary, not UTF-8 YAML\n")
    proc = run_cli("eval", str(mot_root), "--out", str(tmp_path / "out"), "--seqs", SEQ, flag, str(settings),
                   timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"trackstream: error: {settings}: cannot read YAML"), lines


# TrackEval is installed wherever the tests run, so the test hides it from this one process (importlib.metadata
# says "not installed", the import fails): the fault a user without the eval extra meets
WITHOUT_TRACKEVAL = """
import importlib.metadata as metadata, sys
real_version = metadata.version
def version(name):
    if name.lower() == "trackeval":
        raise metadata.PackageNotFoundError(name)
    return real_version(name)
metadata.version = version
sys.modules["trackeval"] = None
from pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_eval_without_trackeval_says_so_before_tracking_anything(mot_root: Path, tmp_path: Path) -> None:
    # it said so only after every sequence had been tracked and written (minutes with --cross-validate)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TRACKEVAL, "eval", str(mot_root), "--seqs", SEQ,
                           "--out", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "trackstream: error: scoring needs TrackEval: pip install 'trackstream[eval]' (or 'trackeval>=1.0')"]
    assert not out.exists() or not any(out.rglob("*.txt")), sorted(out.rglob("*"))


def _start_eval(mot_root: Path, out: Path) -> subprocess.Popen[str]:
    """A real ``trackstream eval`` of the first 100 frames of one sequence into ``out``, once it holds ``out``
    (its claim there names its PID: engine/claims.py)."""
    from pipelines.commands.evaluate import CLAIM

    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "eval", str(mot_root), "--seqs", SEQ, "--out",
                             str(out)], cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((out / CLAIM).is_file() and (out / CLAIM).read_text().startswith(f"{proc.pid}\n")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the eval did not claim its --out folder"
        time.sleep(0.005)
    return proc


def test_a_second_eval_into_the_same_out_folder_is_refused_naming_the_first(mot_root: Path, tmp_path: Path) -> None:
    """Two evals into one --out folder at once both wrote: with other trackers or options their result files and
    summary.json mixed. The first, a real eval, is held still (SIGSTOP) once it holds the folder, so the second
    surely starts while it runs; let go, it ends as if alone."""
    out = tmp_path / "eval"
    first = _start_eval(mot_root, out)
    try:
        os.kill(first.pid, signal.SIGSTOP)
        second = run_cli("eval", str(mot_root), "--seqs", SEQ, "--out", str(out), "--tracker",
                         "ultralytics-bytetrack", "--overwrite", timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=120)
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"trackstream: error: --out {out} is being written by another trackstream run (PID {first.pid}): wait for "
        "it to end or choose another path"]
    assert first.returncode == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["data", "summary.json"]   # its results alone, no claim left
    assert sorted(json.loads((out / "summary.json").read_text())["scores"]) == ["trackstream"]


def test_an_eval_killed_mid_run_does_not_hold_its_out_folder(mot_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    first = _start_eval(mot_root, out)
    first.kill()                                   # SIGKILL: its claim stays in the folder, its lock goes
    first.communicate(timeout=60)
    again = run_cli("eval", str(mot_root), "--seqs", SEQ, "--out", str(out), "--overwrite", timeout=120)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["data", "summary.json"]

"""Detection schedules with the real detector (YOLO11n-pose) on real video: a still scene gets almost no detector
calls and still finds a person who appears; every output marks what was predicted; a snapshot taken between
two detections resumes with the same schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.clips import write_clip
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

FPS = 25
APPEARS = 110  # frame at which the person appears in the still clip
SHARP = {"preset": "ultrafast", "crf": "18"}  # libx264, fast, at a quality that loses little of the picture


def _person_crop(bikes_video: Path, pose_weights: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A still background (a frame of bikes.mp4, blurred until the detector finds nobody) and the sharp crop
    of the most confident person of that frame, with where it was."""
    import av
    import cv2

    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector
    from pipelines.frames import VideoFrame

    detector = Detector(DetectorConfig(model=str(pose_weights), imgsz=320))
    with av.open(str(bikes_video)) as inp:
        for decoded in inp.decode(video=0):  # the first frame with a clearly seen person
            image = decoded.to_ndarray(format="bgr24")
            dets = detector.detect([VideoFrame(image, 0, 0.0, "still", 0.0)])[0]
            if len(dets) and dets.confidence.max() > 0.7:
                break
    best = int(np.argmax(dets.confidence))
    x1, y1, x2, y2 = (int(v) for v in dets.xyxy[best])
    background = cv2.GaussianBlur(image, (0, 0), 25)
    assert len(detector.detect([VideoFrame(background, 0, 0.0, "still", 0.0)])[0]) == 0  # nobody there
    return background, image[y1:y2, x1:x2].copy(), (x1, y1)


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory, bikes_video, pose_weights) -> Path:
    """170 frames at 25 fps: a still, empty picture, and from frame APPEARS on, a person standing still."""
    background, crop, (x, y) = _person_crop(bikes_video, pose_weights)
    with_person = background.copy()
    with_person[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    return write_clip(tmp_path_factory.mktemp("still") / "still.mp4",
                      [background if i < APPEARS else with_person for i in range(170)], fps=FPS, options=SHARP)


@pytest.mark.parametrize("motion, found_by", [(True, APPEARS + 3), (False, 150 + 3)])
def test_a_still_scene_costs_one_detection_per_two_seconds_and_a_person_who_appears_is_found(
        still_clip, pose_weights, motion, found_by):
    from pipelines.api import process

    # quiet_max = quiet_check: every quiet check detects (the rule before quiet_max, whose wait is the next test's)
    config: dict = {"schedule": {"quiet_max": 2.0} if motion else {"motion_share": 1.0, "quiet_max": 2.0}}
    results = list(process(still_clip, model=pose_weights, imgsz=320, schedule="adaptive", config=config))
    assert len(results) == 170  # every frame still comes out
    detected = [r.frame.index for r in results if r.detected]
    quiet = [i for i in detected if i < APPEARS]
    assert quiet == [0, 50, 100]  # 4.4 s of a still, empty picture: one detector call per 2 s
    first = next(r.frame.index for r in results if len(r.tracks))
    assert APPEARS <= first <= found_by  # by its motion at once, else by the next quiet check
    assert all(len(r.tracks) == 1 for r in results[found_by:])  # then followed, detected or predicted
    assert 0 < sum(r.detected for r in results[found_by:]) < 0.5 * len(results[found_by:])


def test_a_still_scene_unchanged_since_the_last_look_waits_for_quiet_max_and_a_person_who_appears_is_found_at_once(
        still_clip, pose_weights):
    from pipelines.api import process

    # no motion measure (motion_share 1.0): the quiet check alone, overdue while the picture stays the same
    results = list(process(still_clip, model=pose_weights, imgsz=320, schedule="adaptive",
                           config={"schedule": {"motion_share": 1.0}}))
    detected = [r.frame.index for r in results if r.detected]
    assert [i for i in detected if i < APPEARS] == [0]  # the same still, empty picture: nothing to look at again
    assert detected[1] == APPEARS  # the first frame that differs from the last look
    assert next(r.frame.index for r in results if len(r.tracks)) <= APPEARS + 3


@pytest.fixture(scope="module")
def standing_clip(tmp_path_factory, bikes_video, pose_weights) -> Path:
    """150 frames at 25 fps of one picture: a person standing still on the still background from the start."""
    background, crop, (x, y) = _person_crop(bikes_video, pose_weights)
    picture = background.copy()
    picture[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    return write_clip(tmp_path_factory.mktemp("standing") / "standing.mp4", [picture] * 150, fps=FPS, options=SHARP)


def test_a_person_standing_in_a_picture_where_nothing_changes_is_looked_at_once_per_max_gap(standing_clip,
                                                                                             pose_weights):
    # the same picture detected again gives the same detections: once the standing person was looked at again
    # after the confirmation, the next looks come every max_gap (1 s), whatever the young track's velocity
    # uncertainty asks for, and the person keeps one identity throughout
    from pipelines.api import process

    results = list(process(standing_clip, model=pose_weights, imgsz=320, schedule="adaptive"))
    assert len(results) == 150 and all(len(r.tracks) == 1 for r in results[1:])
    detected = [r.frame.index for r in results if r.detected]
    assert detected[:2] == [0, 1]                                  # found, then confirmed on the next frame
    settled = detected[2:]
    assert [b - a for a, b in zip(settled, settled[1:])] == [FPS] * (len(settled) - 1) and len(settled) >= 4
    assert len(detected) <= 2 + 150 // FPS                         # 6 s of video: at most 8 detector calls
    assert len({int(r.tracks.track_id[0]) for r in results[1:]}) == 1


def _not_json(constant: str) -> None:
    """``parse_constant`` of a strict JSON reader: the schedule's plan without a due time was written as
    ``Infinity``, which jq, JavaScript and Go refuse."""
    raise AssertionError(f"{constant} is not JSON")


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_args(bikes_video: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(bikes_video), "--model", str(weights), "--imgsz", "320", "--schedule", "interval:4",
            "--jsonl", str(out / "t.jsonl"), "--mot", str(out / "t.txt"), "--events", str(out / "e.jsonl"),
            "--quiet", *extra]


def test_every_output_marks_the_frames_not_detected_and_their_predicted_boxes(tmp_path, bikes_video,
                                                                                pose_weights):
    import av

    proc = run_cli(*run_args(bikes_video, pose_weights, tmp_path, "--max-frames", "40", "--out",
                             str(tmp_path / "t.mp4")))
    assert proc.returncode == 0, proc.stderr
    recs = records(tmp_path / "t.jsonl")
    assert len(recs) == 40
    detected = [r["frame_index"] for r in recs if r["detected"]]
    gaps = np.diff(detected)  # every 4th frame, and the next one after a detection that started a track
    assert detected[0] == 0 and gaps.max() == 4 and gaps.min() >= 1 and 10 <= len(detected) <= 20
    predicted_rows = [t for r in recs if not r["detected"] for t in r["tracks"]]
    assert predicted_rows and all(t["predicted"] and t["confidence"] == 0 for t in predicted_rows)
    assert all("predicted" not in t for r in recs if r["detected"] for t in r["tracks"])
    mot_frames = {int(line.split(",")[0]) for line in (tmp_path / "t.txt").read_text().splitlines()}
    assert {r["frame_index"] + 1 for r in recs if r["tracks"]} == mot_frames  # predicted frames scored too
    with av.open(str(tmp_path / "t.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 40


def test_a_snapshot_between_two_detections_resumes_with_the_same_schedule(tmp_path, bikes_video, pose_weights):
    whole = tmp_path / "whole"
    whole.mkdir()
    proc = run_cli(*run_args(bikes_video, pose_weights, whole, "--max-frames", "60"))
    assert proc.returncode == 0, proc.stderr
    parts, state = tmp_path / "parts", tmp_path / "state"
    parts.mkdir()
    for count in ("30", "30"):  # 30 is not a multiple of 4: the stop falls between two detections
        proc = run_cli(*run_args(bikes_video, pose_weights, parts, "--state", str(state), "--max-frames", count))
        assert proc.returncode == 0, proc.stderr
        snapshot = json.loads((state / "bikes.json").read_text(), parse_constant=_not_json)  # strict JSON
        assert snapshot["processor"]["schedule"]["plan"] is not None
    joined = records(parts / "t.jsonl")
    assert joined == records(whole / "t.jsonl")  # same frames detected, same predicted boxes
    assert [r["detected"] for r in joined].count(True) < 40
    assert (parts / "t.txt").read_text() == (whole / "t.txt").read_text()


def test_an_adaptive_schedule_resumed_detects_the_frames_an_unbroken_run_detects(tmp_path, bikes_video,
                                                                                 pose_weights):
    """adaptive also asks the reader's motion measure, whose background learns every frame: a resumed run
    used to start it blank at the first new frame, detect other frames and write other records."""
    def args(out: Path, *extra: str) -> list[str]:
        return ["run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "320", "--schedule", "adaptive",
                "--jsonl", str(out / "t.jsonl"), "--heatmap", str(out / "h.png"), "--quiet", *extra]

    whole, parts, state = tmp_path / "whole", tmp_path / "parts", tmp_path / "state"
    whole.mkdir()
    parts.mkdir()
    proc = run_cli(*args(whole, "--max-frames", "120"))
    assert proc.returncode == 0, proc.stderr
    for count in ("60", "60"):
        proc = run_cli(*args(parts, "--state", str(state), "--max-frames", count))
        assert proc.returncode == 0, proc.stderr
    joined = records(parts / "t.jsonl")
    assert [r["detected"] for r in joined].count(False) > 20   # the schedule skipped frames
    assert [r["detected"] for r in joined] == [r["detected"] for r in records(whole / "t.jsonl")]
    assert joined == records(whole / "t.jsonl")
    assert (parts / "h.png").read_bytes() == (whole / "h.png").read_bytes()


def test_an_adaptive_run_writes_the_same_records_decoded_on_one_thread_or_on_frame_threads(tmp_path, bikes_video,
                                                                                           pose_weights):
    """A file with a schedule is decoded on one thread by default (less CPU per frame); FFmpeg's frame threads
    give the very same pictures, so every record, the motion measure's decisions included, is the same."""
    from pipelines.api import process

    written = {}
    for threads in (1, 3):
        out = tmp_path / f"t{threads}.jsonl"
        for _ in process(bikes_video, model=pose_weights, imgsz=320, schedule="adaptive", max_frames=100,
                         overrides={"source.decode_threads": threads, "output.jsonl": str(out)}):
            pass
        written[threads] = records(out)
    assert len(written[1]) == 100 and [r["detected"] for r in written[1]].count(False) > 20
    assert written[1] == written[3]

"""`trackstream run` end to end with real parts: bikes.mp4, the YOLO11n-pose weights, a segmentation ONNX.

One full pose run of the clip is shared by most assertions (module fixture) to keep the suite short;
imgsz 320 keeps it quick on CPU while the cyclist still fills half the frame.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import pytest

from tests.conftest import run_cli, shared_data

pytestmark = pytest.mark.slow


def decode_video(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, (stream.codec_context.width, stream.codec_context.height)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def pose_run(tmp_path_factory, bikes_video, pose_weights):
    out = tmp_path_factory.mktemp("pose")
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "320",
                   "--out", str(out / "bikes.mp4"), "--jsonl", str(out / "bikes.jsonl"),
                   "--mot", str(out / "bikes.txt"), "--quiet", timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_annotated_video_has_every_input_frame_at_input_size(pose_run, bikes_video):
    out, _ = pose_run
    assert decode_video(out / "bikes.mp4") == decode_video(bikes_video) == (250, (640, 272))


def test_jsonl_has_one_record_per_frame_in_order(pose_run):
    records = read_jsonl(pose_run[0] / "bikes.jsonl")
    assert [r["frame_index"] for r in records] == list(range(250))
    assert all(r["source_id"] == "bikes" and (r["width"], r["height"]) == (640, 272) for r in records)
    pts = [r["pts"] for r in records]
    assert pts == sorted(pts) and pts[-1] == pytest.approx(9.96)


def test_pose_tracks_carry_17_keypoints(pose_run):
    tracks = [t for r in read_jsonl(pose_run[0] / "bikes.jsonl") for t in r["tracks"]]
    assert len(tracks) > 50
    assert all(t["class_name"] == "person" and len(t["keypoints"]) == 17 for t in tracks)
    assert all(len(point) == 3 for t in tracks for point in t["keypoints"])


def _runs(frames: list[int], max_gap: int = 5) -> list[list[int]]:
    """Group sorted frame indexes into runs separated by more than ``max_gap`` frames."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f - runs[-1][-1] <= max_gap:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def test_cyclist_keeps_one_id_while_clearly_visible(pose_run):
    """In the longest stretch where a tall, confident person is in view (the cyclist), one ID dominates."""
    records = read_jsonl(pose_run[0] / "bikes.jsonl")
    big: dict[int, list[int]] = {}
    for r in records:
        tall = [t for t in r["tracks"]
                if t["box"][3] - t["box"][1] > 0.5 * r["height"] and t["confidence"] > 0.5]
        if tall:
            big[r["frame_index"]] = [t["id"] for t in tall]
    stretch = max(_runs(sorted(big)), key=len)
    assert len(stretch) >= 20
    ids = Counter(i for f in stretch for i in set(big[f]))
    dominant, frames_with_it = ids.most_common(1)[0]
    assert frames_with_it >= 0.9 * len(stretch), (dominant, ids)


def test_mot_file_matches_jsonl_tracks(pose_run):
    out = pose_run[0]
    mot = [line.split(",") for line in (out / "bikes.txt").read_text().splitlines()]
    jsonl_tracks = sum(len(r["tracks"]) for r in read_jsonl(out / "bikes.jsonl"))
    assert len(mot) == jsonl_tracks > 0


def test_summary_names_frames_tracks_and_outputs(pose_run):
    out, proc = pose_run
    assert "bikes: 250 frames" in proc.stderr and " tracks" in proc.stderr and " fps" in proc.stderr
    for name in ("bikes.mp4", "bikes.jsonl", "bikes.txt"):
        assert f"wrote {out / name}" in proc.stderr


def test_second_run_gives_identical_records(pose_run, tmp_path, bikes_video, pose_weights):
    """A second run over the first 80 frames reproduces the full run's first 80 records and MOT rows."""
    full = pose_run[0]
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "320",
                   "--max-frames", "80",
                   "--jsonl", str(tmp_path / "again.jsonl"), "--mot", str(tmp_path / "again.txt"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    first = (full / "bikes.jsonl").read_text().splitlines()[:80]
    assert (tmp_path / "again.jsonl").read_text().splitlines() == first
    mot_first = [ln for ln in (full / "bikes.txt").read_text().splitlines() if int(ln.split(",")[0]) <= 80]
    assert (tmp_path / "again.txt").read_text().splitlines() == mot_first


def test_segmentation_onnx_run_writes_mask_polygons(tmp_path, bikes_video):
    weights = shared_data("weights/yolov8n-seg_int8_320.onnx")
    proc = run_cli("run", str(bikes_video), "--model", str(weights), "--imgsz", "320", "--max-frames", "60",
                   "--out", str(tmp_path / "seg.mp4"), "--jsonl", str(tmp_path / "seg.jsonl"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(tmp_path / "seg.jsonl")
    assert len(records) == 60
    tracks = [t for r in records for t in r["tracks"]]
    assert tracks and all(len(t["mask_polygon"]) >= 3 for t in tracks)
    assert decode_video(tmp_path / "seg.mp4") == (60, (640, 272))

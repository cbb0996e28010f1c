"""``trackstream run --heatmap OUT.png`` as a user runs it: the bundled clip and the bundled detector write a PNG of
the frame's size whose coloured places lie where the tracks' ground points were; an existing file and the
input video are refused before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.errors import OutputError

from tests.conftest import frames_at, run_cli

FRAMES = 60


def ground_points(jsonl: Path) -> np.ndarray:
    """(N, 2) bottom centres of every track box of every frame of a JSONL output."""
    points = []
    for line in jsonl.read_text().splitlines():
        for track in json.loads(line)["tracks"]:
            x1, y1, x2, y2 = track["box"]
            points.append(((x1 + x2) / 2, y2))
    return np.asarray(points, np.float64).reshape(-1, 2)


def test_heatmap_png_shows_heat_along_the_tracks_ground_points(tmp_path, bikes_video, pose_weights):
    png, jsonl = tmp_path / "maps" / "heat.png", tmp_path / "frames.jsonl"
    png.parent.mkdir()
    png.write_bytes(b"an older heatmap")   # replaced: --heatmap-overwrite asks for it
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "320",
                   "--max-frames", str(FRAMES), "--heatmap", str(png), "--heatmap-overwrite", "--jsonl", str(jsonl),
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {png}" in proc.stderr                       # the summary says where it went
    picture = cv2.imread(str(png), cv2.IMREAD_COLOR)
    last = frames_at(bikes_video, {FRAMES - 1})[0].image
    assert picture is not None and picture.shape == last.shape  # the frame's size and aspect
    heated = np.abs(picture.astype(int) - last.astype(int)).sum(axis=2) > 40
    points = ground_points(jsonl)
    assert heated.sum() > 200 and len(points) > 10
    ys, xs = np.nonzero(heated)
    hot = np.stack([xs, ys], axis=1).astype(np.float64)
    nearest = np.sqrt(((hot[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    assert np.percentile(nearest, 99) < 40   # coloured only around where the tracks stood (the blur: σ 8 px)
    assert not heated[: last.shape[0] // 2].any()  # the upper half, where no ground point was, is untouched
    assert not list(png.parent.glob(".*.tmp.png"))  # the temporary file was renamed into place


def test_an_existing_heatmap_file_is_kept_unless_asked(tmp_path, bikes_video):
    """The one line docs/outputs.md quotes, before any model loads."""
    from tests.test_docs_quotes import printed, quoted

    png = tmp_path / "heat.png"
    png.write_bytes(b"keep me")
    proc = run_cli("run", str(bikes_video), "--heatmap", "heat.png", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert printed(proc.stderr) == quoted("outputs.md", "--heatmap of source")
    assert png.read_bytes() == b"keep me"


def test_a_heatmap_over_the_input_or_another_output_is_refused(tmp_path, bikes_video):
    """The same checks as every output (``engine/guard.py``), even with --heatmap-overwrite."""
    from pipelines.config import build_config
    from pipelines.engine.guard import check_paths, planned_writes

    video = tmp_path / "clip"   # no suffix: a heatmap named .mp4 is refused before these checks (its suffix)
    video.write_bytes(bikes_video.read_bytes())
    for output, message in (({"heatmap": str(video), "heatmap_overwrite": True}, "is the input video"),
                            ({"heatmap": str(tmp_path / "x"), "jsonl": str(tmp_path / "x")}, "same file")):
        config = build_config({"sources": [str(video)], "output": output})
        with pytest.raises(OutputError, match=message):
            check_paths(config)
    assert video.read_bytes() == bikes_video.read_bytes()
    config = build_config({"sources": [str(video), str(bikes_video)], "output": {"heatmap": str(tmp_path / "h.png")}})
    locked = [w.path.name for w in planned_writes(config) if w.lock]
    assert locked == ["h_clip.png", "h_bikes.png"]   # one per source, each locked while the run writes it


def test_help_names_the_heatmap_flags():
    proc = run_cli("run", "--help")
    for flag in ("--heatmap OUT.png", "--heatmap-overwrite", "--heatmap-overlay", "--heatmap-half-life"):
        assert flag in proc.stdout


def test_a_run_continuing_its_saved_state_may_replace_the_heatmap_it_wrote(tmp_path, bikes_video):
    """``--state``: the saved state records the heatmap's path; resuming it replaces that file, nothing else."""
    from pipelines.config import build_config
    from pipelines.engine.guard import check_new_outputs as check_paths   # the rule for every output now

    png, state = tmp_path / "heat.png", tmp_path / "state"
    png.write_bytes(b"from the interrupted run")
    state.mkdir()
    data = {"sources": [str(bikes_video)], "output": {"heatmap": str(png)}, "state": {"dir": str(state)}}
    with pytest.raises(OutputError, match="exists; refusing"):
        check_paths(build_config(data))                      # no saved state: an unknown file
    (state / "bikes.json").write_text(json.dumps({"outputs": {"heatmap": {"path": str(png)}}}))
    check_paths(build_config(data))                          # the state's own heatmap: continued
    with pytest.raises(OutputError, match="exists; refusing"):
        check_paths(build_config({**data, "state": {"dir": str(state), "fresh": True}}))


def test_a_heatmap_named_jpg_is_a_jpeg(tmp_path, bikes_video, pose_weights):
    # heat.jpg held PNG bytes, which a picture viewer going by the name may refuse: the name picks the format
    jpg = tmp_path / "heat.jpg"
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "320", "--max-frames", "5",
                   "--heatmap", str(jpg), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff" and cv2.imread(str(jpg)) is not None


def test_a_heatmap_named_gif_is_refused_before_anything_runs(tmp_path, bikes_video):
    # heat.gif (or .tiff) held PNG bytes under a name that promises another format: one line naming the formats
    proc = run_cli("run", str(bikes_video), "--heatmap", "heat.gif", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "trackstream: error: output.heatmap: 'heat.gif': the heatmap picture is written as PNG, JPEG, WebP or BMP; "
        "name it .png, .jpg, .jpeg, .webp or .bmp")
    assert not list(tmp_path.iterdir())

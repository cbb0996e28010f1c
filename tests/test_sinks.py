"""File sinks on real bikes.mp4 frames with hand-made tracks: the files a user gets and opens."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import jsonschema
import numpy as np
import pytest

from pipelines.errors import OutputError
from pipelines.processing.overlays import OverlayConfig, id_color
from pipelines.sinks.records import frame_record, frame_schema
from pipelines.sinks.jsonl import JsonlSink
from pipelines.sinks.mot import MotSink
from pipelines.sinks.video import AnnotatedVideoSink
from tests.conftest import tiny_tmpfs
from tests.clips import decode_frames
from tests.synthetic_tracks import make_result, make_tracks, moving_results
from tracker.configutil import ConfigError

N_FRAMES = 30


@pytest.fixture(scope="module")
def frames(bikes_video) -> list[np.ndarray]:
    images = decode_frames(bikes_video, N_FRAMES)
    assert len(images) == N_FRAMES
    return images


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = frame_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "size": (stream.codec_context.width, stream.codec_context.height),
                "rate": stream.average_rate}
        decoded = [f for f in container.decode(video=0)]
    info["frames"] = len(decoded)
    info["times"] = [f.time for f in decoded]
    info["images"] = [f.to_ndarray(format="bgr24") for f in decoded[:3] + decoded[-1:]]
    return info


def _write_all(sink, results) -> None:
    try:
        for result in results:
            sink.write(result)
    finally:
        sink.close()


# ---------------------------------------------------------------- annotated video

def test_a_resumed_part_skips_only_frames_of_the_file_its_snapshot_counted(tmp_path, frames, caplog):
    """The next part skips the frames the earlier part holds beyond its snapshot, but a live file that a rotation
    replaced after the snapshot is another file: its frames say nothing of what the snapshot's file held."""
    from pipelines.sinks.video import _already_held, frames_in

    results = moving_results(frames)
    now = [0.0]
    out = tmp_path / "cam.mp4"
    sink = AnnotatedVideoSink(out, 25.0, (640, 272), keyframe_seconds=0.2, rotate_seconds=60.0,
                              clock=lambda: now[0])
    try:
        for result in results[:2]:
            sink.write(result)
        snapshot = sink.position()
        for result in results[2:15]:          # written after the snapshot: a resume skips these
            sink.write(result)
        held = frames_in(out)
        assert held is not None and held > 2
        assert _already_held(snapshot) == held - 2
        now[0] = 61.0                        # the next frame rotates the file aside and starts a new one
        for result in results[15:]:
            sink.write(result)
        assert frames_in(out) > 2             # the new live file has more frames than the snapshot counted
        assert _already_held(snapshot) == 0   # but they are not the snapshot's: nothing is skipped
        assert "is not the file its saved state counted" in caplog.text
    finally:
        sink.close()


def test_a_resumed_camera_writes_every_new_frame_into_its_next_part(tmp_path, frames):
    """A file's resumed run reads the frames after its snapshot again, so the next part skips those the earlier
    part already holds; a camera's frames after a restart are new ones: skipping them would lose them."""
    from pipelines.config import load_config
    from pipelines.sinks import build_sinks
    from pipelines.sinks.video import frames_in

    results = moving_results(frames)
    out = tmp_path / "cam.mp4"
    config = load_config(overrides={"sources": [{"url": "rtsp://cam.local/1", "id": "cam"}],
                                    "output.video": str(out), "output.video_keyframe_seconds": 0.2})
    settings, size = config.sources[0], (640, 272)
    killed = build_sinks(config, settings, 25.0, size)[0].sink
    try:
        for result in results[:3]:
            killed.write(result)
        snapshot = killed.position()
        for result in results[3:20]:        # written after the snapshot, then the process dies
            killed.write(result)
        assert (frames_in(out) or 0) > 3
        resumed = build_sinks(config, settings, 25.0, size, {"video": snapshot})[0].sink
        _write_all(resumed, results[:10])   # the camera's new frames
        assert resumed.path == tmp_path / "cam.part2.mp4"
        assert resumed.skipped == 0 and frames_in(resumed.path) == 10
    finally:
        killed.close()


@pytest.mark.parametrize("name", ["v.mkv", "v.avi", "v.mp4"])
def test_a_video_says_frames_are_stored_only_once_a_killed_run_would_keep_them(tmp_path, frames, name):
    """A snapshot waits for ``stored()``: the resumed run's next part starts after the frames it counted, so a
    frame it counts must be in the file as a ``kill -9`` leaves it (a copy taken now), in every container."""
    from pipelines.sinks.video import frames_in

    out, copy = tmp_path / name, tmp_path / f"copy{Path(name).suffix}"
    sink = AnnotatedVideoSink(out, 25.0, (640, 272), keyframe_seconds=0.2)
    counted = 0
    try:
        for result in moving_results(frames) * 2:
            sink.write(result)
            counted = max([n for n in range(counted, sink.frames_total + 1) if sink.stored(n)], default=counted)
            copy.write_bytes(out.read_bytes() if out.exists() else b"")
            assert (frames_in(copy) or 0) >= counted, f"{counted} frames said stored"
        assert counted > N_FRAMES   # the snapshots do not wait for the end
    finally:
        sink.close()


@pytest.mark.parametrize("stride, fps", [(1, 25.0), (2, 12.5)])
def test_annotated_video_plays_in_browsers_at_the_processed_rate(tmp_path, frames, stride, fps):
    results = moving_results(frames, stride=stride, keypoints=True, polygons=True)
    out = tmp_path / "annotated.mp4"
    _write_all(AnnotatedVideoSink(out, fps, (640, 272), OverlayConfig()), results)
    info = _probe(out)
    assert (info["codec"], info["pix_fmt"], info["size"]) == ("h264", "yuv420p", (640, 272))
    assert info["frames"] == N_FRAMES
    assert float(info["rate"]) == pytest.approx(fps, rel=1e-3)
    assert info["times"][-1] == pytest.approx((N_FRAMES - 1) * stride / 25.0, abs=1e-3)  # real-time duration
    data = out.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "faststart: index must precede the media data"
    # the drawn box is in the video, in the track's colour (lossy, so approximately)
    x1, y1, _, y2 = results[0].tracks.xyxy[0].astype(int)
    edge = info["images"][0][y1 + 10:y2 - 10, x1].astype(int)
    assert np.abs(edge - np.array(id_color(1))).max(axis=1).mean() < 40


@pytest.mark.parametrize("name, codec, decoded_as", [
    ("v.mkv", "mpeg4", "mpeg4"),  # an encoder that cannot take a 1/90000 time base
    ("v.mov", "libx264", "h264"),
])
def test_other_containers_and_codecs_play_with_every_frame(tmp_path, frames, name, codec, decoded_as):
    out = tmp_path / name
    _write_all(AnnotatedVideoSink(out, 25.0, (640, 272), codec=codec), moving_results(frames[:10]))
    info = _probe(out)
    assert (info["codec"], info["frames"]) == (decoded_as, 10)
    assert info["times"][-1] == pytest.approx(9 / 25.0, abs=2e-3)


def test_odd_sized_frames_are_padded_to_even_by_one_pixel(tmp_path, frames):
    odd = [np.ascontiguousarray(f[:271, :639]) for f in frames[:8]]
    out = tmp_path / "odd.mp4"
    _write_all(AnnotatedVideoSink(out, 25.0, (639, 271), OverlayConfig(boxes=False, labels=False)),
               [make_result(img, make_tracks([], []), index=i) for i, img in enumerate(odd)])
    info = _probe(out)
    assert info["size"] == (640, 272) and info["frames"] == 8
    first = info["images"][0].astype(int)
    assert np.abs(first[:271, :639] - odd[0]).mean() < 6  # picture not scaled or shifted
    assert np.abs(first[:, 639] - first[:, 638]).mean() < 6  # padding repeats the edge


def test_size_is_taken_from_the_first_frame_when_unknown(tmp_path, frames):
    out = tmp_path / "live.mp4"
    _write_all(AnnotatedVideoSink(out, None, None), moving_results(frames[:5]))
    info = _probe(out)
    assert info["size"] == (640, 272) and info["frames"] == 5
    assert float(info["rate"]) == pytest.approx(25.0, rel=1e-3)  # from the PTS steps, not the header


def test_video_timestamps_stay_increasing_when_pts_jumps_back(tmp_path, frames):
    pts = [0.0, 0.04, 0.08, 0.12, 0.0, 0.04, 0.04, 0.08]  # camera clock restarted, then a repeated PTS
    results = [make_result(frames[i], make_tracks([], []), index=i, pts=p) for i, p in enumerate(pts)]
    out = tmp_path / "jump.mp4"
    _write_all(AnnotatedVideoSink(out, 25.0, (640, 272)), results)
    times = _probe(out)["times"]
    assert len(times) == len(pts)
    assert all(b > a for a, b in zip(times, times[1:]))


def test_video_close_is_safe_twice_and_after_a_failure(tmp_path, frames):
    out = tmp_path / "crash.mp4"
    sink = AnnotatedVideoSink(out, 25.0, (640, 272))
    with pytest.raises(RuntimeError):
        try:
            for result in moving_results(frames[:6]):
                sink.write(result)
            raise RuntimeError("pipeline failed")
        finally:
            sink.close()
    sink.close()
    assert _probe(out)["frames"] == 6  # what was written before the failure plays
    with pytest.raises(OutputError, match="closed"):
        sink.write(moving_results(frames[:1])[0])


def test_video_with_no_frames_leaves_no_file(tmp_path):
    out = tmp_path / "empty.mp4"
    sink = AnnotatedVideoSink(out, 25.0, (640, 272))
    sink.close()
    sink.close()
    assert not out.exists()
    AnnotatedVideoSink(tmp_path / "abandoned.mp4", 25.0, (640, 272))  # built, then another sink failed
    assert not (tmp_path / "abandoned.mp4").exists()


# ---------------------------------------------------------------- bad outputs, all sinks

def _file_as_parent(tmp_path: Path, name: str) -> Path:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    return blocker / name


@pytest.mark.parametrize("make_sink, message", [
    (lambda p: AnnotatedVideoSink(_file_as_parent(p, "v.mp4"), 25.0, (64, 48)), "cannot create directory"),
    (lambda p: AnnotatedVideoSink(p, 25.0, (64, 48)), "is a directory"),
    (lambda p: AnnotatedVideoSink(p / "v.notavideo", 25.0, (64, 48)), "cannot write video output"),
    (lambda p: AnnotatedVideoSink(p / "v.mp4", 25.0, (64, 48), codec="nosuchcodec"), "unknown video codec"),
    (lambda p: AnnotatedVideoSink(p / "v.mp4", 25.0, (64, 48), preset="warp9"), "rejects its settings"),
    (lambda p: AnnotatedVideoSink(p / "v.mp4", 25.0, (64, 48), codec="aac"), "not a video codec"),
    (lambda p: JsonlSink(_file_as_parent(p, "f.jsonl")), "cannot create directory"),
    (lambda p: JsonlSink(p), "is a directory"),
    (lambda p: MotSink(_file_as_parent(p, "m.txt")), "cannot create directory"),
    (lambda p: MotSink(p), "is a directory"),
])
def test_unwritable_outputs_fail_at_construction_with_one_line(tmp_path, make_sink, message):
    with pytest.raises(OutputError, match=message) as info:
        make_sink(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("make_sink", [JsonlSink, MotSink], ids=["jsonl", "mot"])
def test_a_full_disk_is_reported_in_one_line(frames, make_sink):
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full (a device that is always full) is not available")
    sink = make_sink("/dev/full")
    with pytest.raises(OutputError, match="No space left") as info:
        sink.write(moving_results(frames[:1])[0])
    assert "\n" not in str(info.value)
    sink.close()


@pytest.mark.parametrize("make_sink", [JsonlSink, MotSink], ids=["jsonl", "mot"])
def test_a_full_disk_leaves_only_complete_lines(tmp_path, frames, make_sink):
    """A disk that fills in the middle of a line: the file keeps its complete lines, never a torn last one."""
    full = tmp_path / "full"
    with tiny_tmpfs(full, "8k"):
        out = full / "out.txt"
        sink = make_sink(out)
        results = moving_results(frames, keypoints=True)
        with pytest.raises(OutputError, match="No space left"):
            for _ in range(200):   # the 8 KiB fill up in the middle of some line
                for result in results:
                    sink.write(result)
        sink.close()
        data = out.read_bytes()
        assert data and data.endswith(b"\n"), data[-80:]
        for line in data.decode().splitlines():
            if make_sink is JsonlSink:
                json.loads(line)
            else:
                assert len(line.split(",")) == 10


def test_missing_output_folders_are_created(tmp_path, frames):
    nested = tmp_path / "a" / "b"
    sinks = [JsonlSink(nested / "f.jsonl"), MotSink(nested / "m.txt"),
             AnnotatedVideoSink(nested / "v.mp4", 25, None)]
    _write_all_many(sinks, moving_results(frames[:2]))
    assert sorted(p.name for p in nested.iterdir()) == ["f.jsonl", "m.txt", "v.mp4"]


def _write_all_many(sinks, results) -> None:
    for result in results:
        for sink in sinks:
            sink.write(result)
    for sink in sinks:
        sink.close()


# ---------------------------------------------------------------- JSONL

def test_every_jsonl_line_validates_against_the_schema(tmp_path, frames, validator):
    results = moving_results(frames, keypoints=True, polygons=True) + [
        make_result(frames[0], make_tracks([], []), index=N_FRAMES)]  # a frame with no tracks
    out = tmp_path / "frames.jsonl"
    _write_all(JsonlSink(out), results)
    lines = out.read_text().splitlines()
    assert len(lines) == len(results)
    for line, result in zip(lines, results):
        record = json.loads(line)
        validator.validate(record)
        assert record["frame_index"] == result.frame.index
        assert [t["id"] for t in record["tracks"]] == result.tracks.track_id.tolist()
    assert "keypoints" in json.loads(lines[0])["tracks"][0]


def test_schema_accepts_the_redis_form_and_rejects_broken_records(frames, validator):
    record = frame_record(moving_results(frames[:1], keypoints=True)[0], with_times=True)
    validator.validate({**record, "publish_time": record["capture_time"] + 0.01})
    broken = [
        {k: v for k, v in record.items() if k != "tracks"},
        {**record, "schema_version": 2},
        {**record, "frame_index": -1},
        {**record, "unexpected": 1},
        {**record, "tracks": [{**record["tracks"][0], "box": [1, 2, 3]}]},
        {**record, "tracks": [{k: v for k, v in record["tracks"][0].items() if k != "id"}]},
    ]
    for bad in broken:
        assert not validator.is_valid(bad), bad


def test_two_runs_give_byte_identical_jsonl(tmp_path, frames):
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.jsonl"
        _write_all(JsonlSink(out), moving_results(frames, keypoints=True, polygons=True))
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and len(outputs[0]) > 0


def test_size_rotation_splits_into_files_that_hold_every_line_in_order(tmp_path, frames):
    results = moving_results(frames)
    out = tmp_path / "cam.jsonl"
    line_size = len(json.dumps(frame_record(results[0]), separators=(",", ":"))) + 1
    limit = line_size * 4 + 10  # about four lines per file
    sink = JsonlSink(out, rotate_bytes=limit)
    _write_all(sink, results)
    rotated = sorted(tmp_path.glob("cam.*.jsonl"))
    assert len(rotated) >= 6 and rotated == list(sink.rotated)
    files = rotated + [out]
    assert all(f.stat().st_size <= limit for f in files)
    indices = [json.loads(line)["frame_index"] for f in files for line in f.read_text().splitlines()]
    assert indices == [r.frame.index for r in results]


def test_time_rotation_starts_a_new_file_after_rotate_seconds(tmp_path, frames):
    now = [1_800_000_000.0]
    out = tmp_path / "cam.jsonl"
    sink = JsonlSink(out, rotate_seconds=60, clock=lambda: now[0])
    for result in moving_results(frames[:10]):
        sink.write(result)
        now[0] += 25  # 25 s of wall-clock between frames: a new file every third line
    sink.close()
    files = sorted(tmp_path.glob("cam.*.jsonl")) + [out]
    assert [len(f.read_text().splitlines()) for f in files] == [3, 3, 3, 1]
    assert files[0].name == "cam.20270115-080000-000001.jsonl"  # start time of that segment, UTC


def test_a_restart_with_rotation_keeps_the_earlier_live_file(tmp_path, frames):
    out = tmp_path / "cam.jsonl"
    first, second = moving_results(frames[:4]), moving_results(frames[4:7])
    _write_all(JsonlSink(out, rotate_bytes=1_000_000), first)
    _write_all(JsonlSink(out, rotate_bytes=1_000_000), second)  # camera service restarted
    files = sorted(tmp_path.glob("cam.*.jsonl")) + [out]
    indices = [json.loads(line)["frame_index"] for f in files for line in f.read_text().splitlines()]
    assert len(files) == 2 and indices == [r.frame.index for r in first + second]


def test_a_reader_sees_each_line_as_soon_as_it_is_written(tmp_path, frames):
    out = tmp_path / "live.jsonl"
    sink = JsonlSink(out)
    with open(out, encoding="utf-8") as reader:  # like `tail -f`, opened before anything is written
        for result in moving_results(frames[:5]):
            sink.write(result)
            line = reader.readline()
            assert line.endswith("\n") and json.loads(line)["frame_index"] == result.frame.index
        assert reader.readline() == ""
    sink.close()
    sink.close()
    with pytest.raises(OutputError, match="closed"):
        sink.write(moving_results(frames[:1])[0])


@pytest.mark.parametrize("kwargs, key", [
    ({"rotate_bytes": 0}, "output.jsonl_rotate_bytes"),
    ({"rotate_seconds": -5.0}, "output.jsonl_rotate_seconds"),
])
def test_jsonl_rejects_bad_rotation_settings(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        JsonlSink(tmp_path / "x.jsonl", **kwargs)


# ---------------------------------------------------------------- MOT

def test_mot_lines_have_ten_columns_one_based_frames_and_top_left_boxes(tmp_path, frames):
    results = moving_results(frames[:10], stride=3)
    out = tmp_path / "mot.txt"
    _write_all(MotSink(out), results)
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert len(rows) == 2 * len(results) and all(len(r) == 10 for r in rows)
    table = np.array(rows, dtype=float)
    expected = []
    for result in results:
        t = result.tracks
        for tid, (x1, y1, x2, y2), conf in zip(t.track_id, t.xyxy, t.confidence):
            expected.append([result.frame.index + 1, tid, x1, y1, x2 - x1, y2 - y1, conf, -1, -1, -1])
    np.testing.assert_allclose(table, np.array(expected, float), atol=1e-3)
    assert table[0, 0] == 1 and table[2, 0] == 4  # frame.index 0 and 3 with vid_stride 3


def test_mot_lines_carry_the_trackers_estimated_box_when_it_has_one(tmp_path, frames):
    # the tracker's own Tracks carry the Kalman box (smoother than the detector's); MOT files, which are
    # scored, report that one, as `trackstream eval` does
    result = moving_results(frames[:1])[0]
    t = result.tracks
    estimated = t.xyxy + np.array([1.5, -2.0, 3.0, 0.5], np.float32)
    smoothed = dataclasses.replace(t, estimated_xyxy=estimated)
    out = tmp_path / "mot.txt"
    _write_all(MotSink(out), [dataclasses.replace(result, tracks=smoothed)])
    table = np.array([line.split(",") for line in out.read_text().splitlines()], dtype=float)
    np.testing.assert_allclose(table[:, 2:6], np.column_stack([estimated[:, :2], estimated[:, 2:] - estimated[:, :2]]),
                               atol=1e-2)


def test_mot_frames_without_tracks_write_nothing(tmp_path, frames):
    out = tmp_path / "mot.txt"
    _write_all(MotSink(out), [make_result(frames[0], make_tracks([], []), index=0),
                              moving_results(frames[:1])[0]])
    assert out.read_text().count("\n") == 2

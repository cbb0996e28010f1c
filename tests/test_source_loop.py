"""``source.loop``: a file plays again from its start, as one endless stream, until it is stopped."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import build_config
from pipelines.engine.runner import Runner
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.settings import SourceSettings
from pipelines.sources import SourceConfig, open_source
from pipelines.sources.file import FileSource
from tracker.types import Detections

BIKES_FRAMES = 250  # bikes.mp4: 25 fps, 250 frames


def read(source, frames: int | None = None) -> tuple[list[VideoFrame], list[StreamStatus]]:
    """Every item of ``source.frames()``; with ``frames``, call ``stop()`` once that many were read."""
    got, statuses = [], []
    for item in source.frames():
        if isinstance(item, VideoFrame):
            got.append(item)
            if frames is not None and len(got) == frames:
                source.stop()
        else:
            statuses.append(item)
    source.close()
    return got, statuses


@pytest.fixture(scope="module")
def looped(bikes_video):
    return read(FileSource(bikes_video, options=SourceConfig(loop=True)), frames=600)


def test_loop_keeps_index_and_pts_rising_across_the_wrap(looped):
    frames, _ = looped
    assert len(frames) == 600
    assert [f.index for f in frames] == list(range(600))
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0)
    # the second pass starts one frame step after the last frame of the first: no gap, no repeat
    assert pts[BIKES_FRAMES] == pytest.approx(pts[BIKES_FRAMES - 1] + 1 / 25, abs=1e-3)
    assert pts[599] == pytest.approx(599 / 25, abs=1e-3)


def test_frames_after_the_wrap_are_the_first_frames_again(looped):
    frames, _ = looped
    for k in (0, 1, 2, 100, 249):
        np.testing.assert_array_equal(frames[BIKES_FRAMES + k].image, frames[k].image)
    np.testing.assert_array_equal(frames[2 * BIKES_FRAMES].image, frames[0].image)


def test_stop_ends_a_looping_file_with_stream_ended(looped):
    _, statuses = looped
    assert [s.kind for s in statuses] == [StatusKind.STARTED, StatusKind.ENDED]
    ended = statuses[-1]
    assert ended.detail["stopped"] is True
    assert ended.detail["passes"] == 3
    assert ended.pts == pytest.approx(599 / 25, abs=1e-3)


def test_without_loop_the_file_ends_after_its_frames(bikes_video):
    frames, statuses = read(FileSource(bikes_video, options=SourceConfig(loop=False)))
    assert len(frames) == BIKES_FRAMES
    assert [s.kind for s in statuses] == [StatusKind.STARTED, StatusKind.ENDED]
    assert statuses[-1].detail["stopped"] is False


def test_looping_file_has_no_frame_count(bikes_video):
    source = FileSource(bikes_video, options=SourceConfig(loop=True))
    try:
        assert source.frame_count is None  # no end: the progress bar shows no total
    finally:
        source.close()


def test_loop_with_vid_stride_keeps_the_stride_across_the_wrap(bikes_video):
    frames, _ = read(FileSource(bikes_video, options=SourceConfig(loop=True, vid_stride=3)), frames=100)
    assert [f.index for f in frames] == list(range(0, 300, 3))
    assert np.all(np.diff([f.pts for f in frames]) > 0)


def zero_media(src: Path, dst: Path) -> Path:
    """Copy the MP4 ``src`` with every byte of its ``mdat`` box zeroed: it opens (the index is intact) but
    not one frame decodes."""
    data = bytearray(src.read_bytes())
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", bytes(data[pos:pos + 8]))
        if kind == b"mdat":
            data[pos + 8:pos + size] = bytes(size - 8)
        if size < 8:
            break
        pos += size
    dst.write_bytes(bytes(data))
    return dst


def test_a_file_without_decodable_frames_does_not_loop_forever(bikes_video, tmp_path: Path):
    source = FileSource(zero_media(bikes_video, tmp_path / "no_frames.mp4"), options=SourceConfig(loop=True))
    frames, statuses = read(source)
    assert frames == []
    assert [s.kind for s in statuses] == [StatusKind.STARTED, StatusKind.ENDED]
    assert statuses[-1].detail["stopped"] is False
    assert statuses[-1].detail["passes"] == 1


def test_loop_is_a_config_key_with_per_source_override(bikes_video):
    config = build_config({"source": {"loop": True},
                           "sources": [{"url": str(bikes_video), "id": "a"},
                                       {"url": str(bikes_video), "id": "b", "loop": False}]})
    assert [s.options.loop for s in config.sources] == [True, False]
    assert build_config({"sources": [str(bikes_video)]}).sources[0].options.loop is False
    source = open_source(SourceSettings(str(bikes_video), options=config.sources[0].options))
    try:
        assert source.frame_count is None
    finally:
        source.close()


class OneBoxDetector:
    """Finds the same box in every frame: one object that never moves (a stand-in for the model)."""

    workers = 1
    device = "cpu"

    def __init__(self) -> None:
        self.class_names = {0: "person"}

    def detect_counted(self, frames):
        box = np.array([[100, 50, 200, 250]], np.float32)
        return [Detections(box, np.array([0.9], np.float32), np.array([0])) for _ in frames], 0


def test_runner_sees_one_continuous_stream_across_the_wrap(bikes_video, tmp_path: Path):
    config = build_config({"source": {"loop": True}, "sources": [{"url": str(bikes_video)}],
                           "output": {"jsonl": str(tmp_path / "out.jsonl"), "mot": str(tmp_path / "out.txt")}})
    settings = config.sources[0]
    stats = Runner([(settings, open_source(settings))], OneBoxDetector(), config, max_frames=300).run()
    assert stats[0].frames_out == 300
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["frame_index"] for r in records] == list(range(300))
    assert np.all(np.diff([r["pts"] for r in records]) > 0)
    # the object keeps its track across the wrap: the tracker saw no jump back in time
    ids = {int(line.split(",")[1]) for line in (tmp_path / "out.txt").read_text().splitlines()}
    assert len(ids) == 1

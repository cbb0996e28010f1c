"""File source: every frame with index and PTS, deterministic frame selection, damaged files survive."""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import SourceError
from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.processing.schedule import Schedule
from pipelines.settings import SourceSettings
from pipelines.sources import SourceConfig, open_source
from pipelines.sources.file import FileSource, FrameSelector


def read_all(source) -> tuple[list[VideoFrame], list[StreamStatus]]:
    frames, statuses = [], []
    for item in source.frames():
        (frames if isinstance(item, VideoFrame) else statuses).append(item)
    source.close()
    return frames, statuses


def damage_middle(src: Path, dst: Path, length: int = 30000) -> Path:
    """Copy ``src`` with ``length`` random bytes written over its middle (media data, not the index)."""
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + length] = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def bikes_frames(bikes_video):
    return read_all(open_source(SourceSettings(str(bikes_video))))


def test_every_frame_with_index_pts_and_id(bikes_frames):
    frames, statuses = bikes_frames
    assert len(frames) == 250
    assert [f.index for f in frames] == list(range(250))
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0)
    assert pts[0] == 0.0 and pts[-1] == pytest.approx(249 / 25, abs=1e-3)
    assert {f.source_id for f in frames} == {"bikes"}
    assert frames[0].image.shape == (272, 640, 3) and frames[0].image.dtype == np.uint8
    assert [s.kind for s in statuses] == [StatusKind.STARTED, StatusKind.ENDED]


def test_metadata_and_configured_id(bikes_video):
    source = open_source(SourceSettings(f"file://{bikes_video}", id="cam-a"))
    try:
        assert (source.source_id, source.is_live) == ("cam-a", False)
        assert (source.size, source.frame_count) == ((640, 272), 250)
        assert source.fps == pytest.approx(25.0)
    finally:
        source.close()


def test_two_reads_give_identical_frames(bikes_video, bikes_frames):
    again, _ = read_all(FileSource(bikes_video, options=SourceConfig(vid_stride=50)))
    first = {f.index: f for f in bikes_frames[0]}
    for frame in again:
        assert frame.pts == first[frame.index].pts
        assert np.array_equal(frame.image, first[frame.index].image)


@pytest.mark.parametrize("stride", [2, 3])
def test_vid_stride_keeps_every_nth_frame(bikes_video, stride):
    frames, _ = read_all(FileSource(bikes_video, options=SourceConfig(vid_stride=stride)))
    assert [f.index for f in frames] == list(range(0, 250, stride))


def test_max_fps_selects_by_timestamp(bikes_video):
    frames, _ = read_all(FileSource(bikes_video, options=SourceConfig(max_fps=10.0)))
    pts = np.array([f.pts for f in frames])
    assert len(frames) == 100  # 10 s of video at 10 processed frames per second
    gaps = np.diff(pts)
    assert gaps.min() >= 0.08 - 1e-6 and gaps.max() <= 0.12 + 1e-6
    assert gaps.mean() == pytest.approx(0.1, abs=0.002)


@pytest.mark.parametrize("pts, max_fps, expected", [
    ([0.0, 0.5, 1.0, 1.5], 1.0, [0.0, 1.0]),                 # slower than the cap allows
    ([0.0, 0.1, 5.0, 5.1, 6.0], 1.0, [0.0, 5.0, 6.0]),       # a gap in the stream restarts the grid
    ([0.0, 0.034, 0.067, 0.1], 100.0, [0.0, 0.034, 0.067, 0.1]),  # cap above the frame rate keeps all
])
def test_frame_selector_table(pts, max_fps, expected):
    selector = FrameSelector(max_fps=max_fps)
    assert [p for i, p in enumerate(pts) if selector.keep(i, p)] == expected


def test_damaged_file_frames_before_and_after_damage(bikes_video, tmp_path):
    broken = damage_middle(bikes_video, tmp_path / "damaged.mp4")
    frames, statuses = read_all(FileSource(broken))
    pts = np.array([f.pts for f in frames])
    assert 100 < len(frames) < 250          # some frames lost, most survive
    assert pts.min() == 0.0                 # frames before the damage
    assert pts.max() == pytest.approx(249 / 25, abs=1e-3)  # ...and after it, to the end
    assert np.all(np.diff(pts) > 0)
    assert statuses[-1].kind == StatusKind.ENDED


def test_stop_ends_frames_soon(bikes_video):
    source = FileSource(bikes_video)
    frames = []
    for item in source.frames():
        if isinstance(item, VideoFrame):
            frames.append(item)
            if len(frames) == 5:
                source.stop()
        elif item.kind == StatusKind.ENDED:
            assert item.detail["stopped"] is True
    source.close()
    assert len(frames) == 5


@pytest.mark.parametrize("url, message", [
    ("gopher://example.org/x.mp4", "unsupported source"),
    ("/no/such/video.mp4", "not found"),
])
def test_open_errors_are_one_line(url, message):
    with pytest.raises(SourceError, match=message) as info:
        open_source(SourceSettings(url))
    assert "\n" not in str(info.value)


def test_copy_named_like_anything_works(bikes_video, tmp_path):
    """The container is recognised by content, not by name."""
    copy = tmp_path / "clip.bin"
    shutil.copy(bikes_video, copy)
    source = FileSource(copy)
    assert source.source_id == "clip" and source.frame_count == 250
    source.close()


def test_a_decoded_picture_is_freed_as_soon_as_its_frame_is_dropped(bikes_video):
    """A frame nobody holds any more frees its picture at once, not at the garbage collector's next pass: reading
    the display rotation through PyAV's ``side_data`` tied every decoded frame into a reference cycle, so hundreds
    of pictures (1.4 MB each at 720p) waited in memory and the decoder allocated new ones for every frame."""
    import av

    def decoded() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, av.VideoFrame))

    source = FileSource(bikes_video)
    gc.collect()
    gc.disable()  # what stays alive now stays until a collection: only cycles do
    try:
        held = decoded()  # by other tests' frames
        for item in source.frames():
            if isinstance(item, VideoFrame) and item.index == 100:
                break
        del item
        alive = decoded() - held
    finally:
        gc.enable()
        source.close()
    assert alive <= 2  # the decoder's own, at most: not the 100 frames read


def test_pictures_a_stage_holds_keep_no_threads_alive(bikes_video):
    """Converting a frame to BGR made a scaler per frame with a pool of FFmpeg threads that lived as long as the
    frame: 40 pictures held (a viewer's, a snapshot's, a batch) meant 80 more threads in the process, and a
    server's thread count that rose and fell with what its stages held. The stream's one scaler converts on one
    thread, and gives the pictures FFmpeg would have given."""
    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    source = FileSource(bikes_video)
    before, held = 0, []
    try:
        for item in source.frames():
            if isinstance(item, VideoFrame):
                assert item.image.shape[2] == 3   # converted, and held as a stage holds it: with its frame
                held.append(item)
                before = before or threads()   # the decoder's threads start with the first frame
                if len(held) == 40:
                    break
        assert threads() <= before + 1, f"{before} -> {threads()} threads with {len(held)} pictures held"
    finally:
        source.close()
    import av

    with av.open(str(bikes_video)) as container:
        for kept, frame in zip(held, container.decode(video=0)):
            assert np.array_equal(kept.image, frame.to_ndarray(format="bgr24"))


@pytest.mark.parametrize("schedule, decode_threads, threads", [
    ("every", 0, 0), ("adaptive", 0, 1), ("interval:3", 0, 1), ("adaptive", 3, 3)])
def test_a_file_whose_schedule_skips_frames_is_decoded_on_one_thread(bikes_video, schedule, decode_threads,
                                                                     threads):
    """FFmpeg's frame threads cost more CPU per frame than decoding on one thread (0.5 vs 0.3 ms for a still 720p
    frame), most of what a quiet scene with a schedule costs; ``every`` keeps them (FFmpeg chooses: 0), and a
    ``decode_threads`` set by the user is kept."""
    settings = SourceSettings(str(bikes_video), options=SourceConfig(decode_threads=decode_threads),
                              schedule=Schedule.parse(schedule))
    source = open_source(settings)
    try:
        assert isinstance(source, FileSource)
        assert source.options.decode_threads == threads
        assert settings.options.decode_threads == decode_threads  # the settings themselves are left as given
    finally:
        source.close()

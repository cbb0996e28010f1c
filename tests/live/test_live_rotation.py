"""A camera that states its display rotation is turned as a player shows it (a real HLS stream over HTTP).

The transport: MPEG-TS HLS segments whose H.264 carries a display-orientation SEI (what cameras and encoders
send; ffmpeg's ``h264_metadata`` bitstream filter inserts it), served by a real HTTP server and read through
the live source. MPEG-TS and RTSP have no place for an MP4 track's rotate tag (ffmpeg drops it when remuxing,
and its HLS demuxer does not hand on that of fMP4 segments), so the SEI is how a live stream states it. ffmpeg
puts the SEI on key frames only, as cameras do: the frames after one are turned the same (``Upright``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import pytest

from pipelines.frames import StatusKind, StreamStatus, VideoFrame
from pipelines.sources.file import FileSource
from pipelines.sources.live import LiveSource
from tests.conftest import require_binary
from tests.live.hls_producer import LoopbackServer

OPTIONS = {"read_timeout": 2.0, "open_timeout": 5.0, "reconnect": False}
SHOWN = (640, 272)   # what a player shows: bikes.mp4 upright
FRAMES = 100


@pytest.fixture(scope="module")
def rotated_stream(bikes_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(URL of the HLS playlist of the sideways stream with its SEI, the same stream as one .ts file, the
    upright frames as a lossless file to compare with)."""
    ffmpeg = require_binary("ffmpeg")
    folder = tmp_path_factory.mktemp("live-rotation")
    shown, sideways = folder / "shown.mp4", folder / "sideways.mp4"
    for target, turn in ((shown, ""), (sideways, ",transpose=clock")):   # a camera: a key frame every 10, no B
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(bikes_video), "-vf",
                        f"select=between(n\\,40\\,{39 + FRAMES}),setpts=N/25/TB{turn}", "-r", "25", "-c:v",
                        "libx264", "-qp", "0", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p", str(target)], check=True)
    sei = ["-c", "copy", "-bsf:v", "h264_metadata=display_orientation=insert:rotate=90"]
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(sideways), *sei, "-f", "hls", "-hls_time", "1",
                    "-hls_playlist_type", "vod", str(folder / "cam.m3u8")], check=True)
    subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(sideways), *sei, "-f", "mpegts",
                    str(folder / "cam.ts")], check=True)
    with av.open(str(folder / "cam.ts")) as container:   # stored portrait; key frames state it, others not
        assert (container.streams.video[0].width, container.streams.video[0].height) == (272, 640)
        assert [f.rotation for f in container.decode(video=0)][:2] == [90, 0]
    server = LoopbackServer(folder)
    yield server.url("cam.m3u8"), folder / "cam.ts", shown
    server.close()


def _upright_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _closest(image: np.ndarray, references: list[np.ndarray]) -> float:
    return min(float(np.abs(image.astype(np.int16) - ref.astype(np.int16)).mean()) for ref in references)


def test_a_live_stream_stating_its_rotation_is_turned_as_a_player_shows_it(rotated_stream):
    url, _, shown = rotated_stream
    source = LiveSource(url, OPTIONS, source_id="cam")
    frames: list[VideoFrame] = []
    started = None
    try:
        for item in source.frames():
            if isinstance(item, StreamStatus):
                if item.kind is StatusKind.STARTED:
                    started = item
                if item.kind is StatusKind.ENDED:
                    break
            else:
                frames.append(item)
    finally:
        source.close()
    assert started is not None and started.detail["size"] == list(SHOWN) and source.size == SHOWN
    assert len(frames) >= 10 and all(f.size == SHOWN for f in frames), {f.size for f in frames}
    references = _upright_frames(shown)
    assert max(_closest(f.image, references) for f in frames) < 3.0       # the picture a player shows


def test_a_file_whose_rotation_is_stated_once_stays_turned(rotated_stream):
    """The same rule for files: frames after the one stating the rotation are not left sideways."""
    _, ts, shown = rotated_stream
    source = FileSource(ts, "cam")
    try:
        frames = [f for f in source.frames() if isinstance(f, VideoFrame)]
    finally:
        source.close()
    assert source.size == SHOWN and len(frames) >= FRAMES - 1 and all(f.size == SHOWN for f in frames)
    references = _upright_frames(shown)
    assert max(_closest(f.image, references) for f in frames) < 3.0

"""A camera restarted with its saved state keeps its track IDs and counts (real RTSP server, real model).

The restart is in-process (a second Runner with the same loaded model and the same --state folder), so the
outage is about a second, as when a supervisor restarts a crashed camera process at once.
"""

from __future__ import annotations

import threading
import time

import pytest

from pipelines.config import build_config
from pipelines.detection.detector import Detector
from pipelines.engine.runner import Runner
from pipelines.engine.state import StateStore
from pipelines.sinks.base import BuiltSink, DropPolicy
from pipelines.sources import open_source

pytestmark = pytest.mark.slow


class Collect:
    """A sink that keeps every event it is given (frames are only counted)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.frames = 0
        self.ids: set[int] = set()
        self.last_ids: set[int] = set()

    def write(self, result) -> None:  # type: ignore[no-untyped-def]
        self.frames += 1
        self.last_ids = {int(i) for i in result.tracks.track_id}
        self.ids.update(self.last_ids)
        self.events.extend(dict(e) for e in result.events)

    def status(self, status) -> None:  # type: ignore[no-untyped-def]
        self.events.extend(dict(e) for e in status.events)

    def position(self) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def walkers(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The first 6 s of the pedestrian street clip at 320x180: people walk slowly, so a track visible when
    the camera restarts is still there a second later (the cyclist clip's riders cross in half a second)."""
    from fractions import Fraction

    import av

    from tests.conftest import shared_data

    src = shared_data("videos/people-walking_1280x720.mp4")
    dst = tmp_path_factory.mktemp("walk") / "walk320.mp4"
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 180:
                break
            small = frame.reformat(width=320, height=180, format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


def run_for(config, detector, store, frames: int, with_tracks: bool = False) -> Collect:  # type: ignore[no-untyped-def]
    settings = config.sources[0]
    sink = Collect()
    runner = Runner([(settings, open_source(settings))], detector, config, state=store,
                    sink_factory=lambda *_: [BuiltSink("collect", DropPolicy.BLOCK, sink)])
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while (sink.frames < frames or (with_tracks and len(sink.last_ids) < 2)) \
                and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.05)
        runner.stop()

    threading.Thread(target=watch, daemon=True).start()
    try:
        runner.run()
    finally:
        done.set()
    return sink


def test_restarted_camera_keeps_its_ids_and_announces_no_track_twice(rtsp_server, pose_weights, walkers,
                                                                      tmp_path):
    server = rtsp_server(video=walkers)
    config = build_config({
        "sources": [{"url": server.url, "id": "cam"}], "detector": {"imgsz": 320, "batch": 1},
        "tracker": {"lost_track_buffer_seconds": 5.0},
        "lines": [{"name": "mid", "points": [[160, 0], [160, 180]]}],
        "state": {"dir": str(tmp_path / "state"), "interval": 0.5}})
    detector = Detector(config.detector, str(pose_weights))
    store = StateStore(tmp_path / "state")
    first = run_for(config, detector, store, frames=30, with_tracks=True)  # stop while people are in view
    assert first.ids, "the first run saw no track"
    started_first = {e["track"]["id"] for e in first.events if e["event"] == "track_started"}
    assert not [e for e in first.events if e["event"] in ("track_ended", "stream_ended")]  # suspended, not ended
    saved = store.load("cam")
    assert saved is not None
    counts_before = saved["processor"]["events"]["lines"]["mid"]

    second = run_for(config, detector, store, frames=40)
    names = [e["event"] for e in second.events]
    assert names[0] == "stream_resumed" and "stream_started" not in names
    started_again = [e["track"]["id"] for e in second.events if e["event"] == "track_started"]
    assert not set(started_again) & started_first       # no second track_started for a known track
    assert second.ids & first.ids, "no track continued across the restart"
    assert min(started_again, default=max(first.ids) + 1) > max(first.ids)  # new tracks get new ids
    after = store.load("cam")
    assert after is not None
    counts_after = after["processor"]["events"]["lines"]["mid"]
    assert counts_after["left_to_right"] >= counts_before["left_to_right"]
    assert counts_after["right_to_left"] >= counts_before["right_to_left"]

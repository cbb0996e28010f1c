"""The real tracker feeding the Redis sink: every track id seen in the frames stream starts and ends once."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from pipelines.frames import FrameResult, StatusKind, StreamStatus, VideoFrame
from pipelines.sinks.redis_conn import RedisConfig
from pipelines.sinks.redis_sink import RedisSink
from tests.redis.conftest import WithEvents
from pipelines.subscriber import Subscriber
from tracker import Detections, Tracker, TrackerConfig


def _detections(f: int) -> Detections:
    """Three walkers: A crosses the whole time, B is hidden for frames 20-29, C leaves at frame 40."""
    boxes = [[5 + 3 * f, 20, 25 + 3 * f, 60]]
    if not 20 <= f < 30:
        boxes.append([300 - 2 * f, 100, 320 - 2 * f, 140])
    if f < 40:
        boxes.append([100, 150 + f, 120, 190 + f])
    n = len(boxes)
    return Detections(np.array(boxes, np.float32), np.full(n, 0.9, np.float32), np.zeros(n, np.int64))


def test_real_tracker_events_through_redis(redis_server, validators):  # type: ignore[no-untyped-def]
    tracker = Tracker(TrackerConfig())
    sink = WithEvents(RedisSink(RedisConfig(url=redis_server.url), "walk"), "walk")
    image = np.zeros((240, 360, 3), np.uint8)
    sink.status(StreamStatus(StatusKind.STARTED, "walk", time.time()))
    for f in range(90):
        dets = _detections(f)
        tracks = tracker.update(dets, timestamp=f / 25)
        sink.write(FrameResult(VideoFrame(image, f, f / 25, "walk", time.time()), dets, tracks, {0: "person"}))
    sink.status(StreamStatus(StatusKind.ENDED, "walk", time.time()))
    sink.close()

    with Subscriber(redis_server.url, ["walk"], frames=True, start="0", block_ms=100) as sub:
        entries = []
        while batch := sub.read():
            entries += batch
    frames = [e.data for e in entries if e.kind == "frames"]
    events = [e.data for e in entries if e.kind == "events"]
    assert [f["frame_index"] for f in frames] == list(range(90))
    ids = Counter(t["id"] for f in frames for t in f["tracks"])
    assert len(ids) >= 3
    for name in ("track_started", "track_ended"):
        assert Counter(e["track"]["id"] for e in events if e["event"] == name) == Counter(dict.fromkeys(ids, 1))
    hidden = [e for e in events if e["event"] in ("track_lost", "track_recovered")]
    assert any(e["event"] == "track_recovered" for e in hidden)        # B came back under its id
    per_id: dict[int, list[str]] = {}
    for e in events:
        if "track" in e:
            per_id.setdefault(e["track"]["id"], []).append(e["event"])
    for tid, names in per_id.items():
        assert names[0] == "track_started" and names[-1] == "track_ended", (tid, names)
    assert all(not list(validators[e.kind].iter_errors(e.data)) for e in entries)

"""The event history's fixtures: synthetic runs fed through a real EventGenerator. The private PostgreSQL server
(``postgres``, one per session) and a database per test (``pg_url``) are tests/conftest.py's (tests/pgserver.py).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

import numpy as np

from pipelines.frames import FrameResult, StatusKind, StreamStatus
from pipelines.processing.events import EventGenerator, LineConfig, ZoneConfig
from tests.redis.conftest import make_result

# -- a synthetic run through the real EventGenerator -------------------------------------------------------
GATE = LineConfig(name="gate", points=((30.0, 0.0), (30.0, 200.0)))
YARD = ZoneConfig(name="yard", polygon=((40.0, 0.0), (128.0, 0.0), (128.0, 200.0), (40.0, 200.0)))


def textured(index: int) -> np.ndarray:
    """A 72x128 picture that changes every frame (so clips show motion and crops have detail)."""
    rng = np.random.default_rng(index)
    image = np.zeros((72, 128, 3), np.uint8)
    image[:, :, 1] = (np.arange(128)[None, :] * 2 + index * 3) % 256
    image[::4, :, 2] = rng.integers(0, 255, (18, 128), dtype=np.uint8)
    return image


def synthetic_results(source: str = "cam", n_frames: int = 60, fps: float = 25.0,
                      t0: Optional[float] = None) -> list[FrameResult | StreamStatus]:
    """Tracks moving right across the gate line into the yard zone, with events from a real EventGenerator,
    ending with ``stream_ended``. Track k (1..4) appears at frame 8k-8 and is removed 30 frames later."""
    gen = EventGenerator(source, zones=[YARD], lines=[GATE])
    t0 = time.time() if t0 is None else t0
    out: list[FrameResult | StreamStatus] = []
    for f in range(n_frames):
        boxes, removed = {}, []
        for k in range(1, 5):
            first = 8 * k - 8
            if first <= f < first + 27:
                x = 3.0 * (f - first)
                boxes[k] = [x, 5.0 * k, x + 12, 5.0 * k + 24]
            elif f == first + 30:
                removed.append(k)
        base = make_result(f, boxes, source=source, fps=fps, removed=removed)
        frame = dataclasses.replace(base.frame, image=textured(f), capture_time=t0 + f / fps)
        result = dataclasses.replace(base, frame=frame, stream_time=t0 + f / fps)
        out.append(dataclasses.replace(result, events=tuple(gen.update(result))))
    end = StreamStatus(StatusKind.ENDED, source, t0 + n_frames / fps, pts=n_frames / fps)
    out.append(dataclasses.replace(end, events=tuple(gen.status(end))))
    return out


def feed(sink: Any, items: list[FrameResult | StreamStatus]) -> list[dict[str, Any]]:
    """Write every item into ``sink``; returns the event documents, in order."""
    docs: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, FrameResult):
            sink.write(item)
        else:
            sink.status(item)
        docs.extend(dict(e) for e in item.events)
    return docs

"""Synthetic frame results for the analytics tests (class filters, dwell, speed): tracks with chosen
classes walking chosen paths, fed to the real ``EventGenerator`` / ``StreamProcessor``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from pipelines.frames import FrameResult, VideoFrame
from tracker.types import Detections, Tracks

NAMES = {0: "person", 2: "car"}
_IMAGE = np.zeros((100, 200, 3), np.uint8)


def result(index: int, rows: Mapping[int, tuple[Sequence[float], int]], *, fps: float = 10.0,
           source: str = "cam", removed: Sequence[int] = (),
           velocity: Mapping[int, Sequence[float]] | None = None) -> FrameResult:
    """A result whose confirmed tracks are ``{track id: ([x1, y1, x2, y2], class id)}`` at ``index / fps`` s."""
    ids = list(rows)
    n = len(ids)
    xyxy = np.array([rows[i][0] for i in ids], np.float32).reshape(n, 4)
    vel = np.array([(velocity or {}).get(i, (0.0, 0.0)) for i in ids], np.float32).reshape(n, 2)
    path = np.repeat(((xyxy[:, :2] + xyxy[:, 2:]) / 2)[:, None, :], 3, axis=1)
    tracks = Tracks(xyxy, np.full(n, 0.9, np.float32), np.array([rows[i][1] for i in ids], np.int64),
                    np.array(ids, np.int64), np.arange(n), vel, path, np.zeros(n, np.float32),
                    np.ones(n, np.int64), removed_ids=np.array(list(removed), np.int64))
    frame = VideoFrame(_IMAGE, index, round(index / fps, 6), source, 1_000_000.0 + index / fps + 0 * time.time())
    return FrameResult(frame, Detections.empty(), tracks, NAMES)


def walk(n_frames: int, tracks: Mapping[int, tuple[int, float, float]], *, fps: float = 10.0,
         height: float = 20.0) -> list[FrameResult]:
    """Tracks ``{id: (class id, x at frame 0, pixels per frame)}`` moving right along y 20..40."""
    return [result(f, {tid: ([x0 + v * f, 20.0, x0 + v * f + 10.0, 20.0 + height], cls)
                       for tid, (cls, x0, v) in tracks.items()}, fps=fps) for f in range(n_frames)]


def validator(name: str):  # type: ignore[no-untyped-def]
    """A JSON Schema validator of ``pipelines/schemas/<name>`` (with the other schemas for its references)."""
    import json
    from pathlib import Path

    import jsonschema
    from referencing import Registry, Resource

    folder = Path(__file__).resolve().parents[1] / "pipelines" / "schemas"
    docs = [json.loads(p.read_text()) for p in folder.glob("*.schema.json")]
    registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs if "$id" in d)
    return jsonschema.Draft202012Validator(json.loads((folder / name).read_text()), registry=registry)

"""The per-frame record shared by the JSON Lines file and the Redis frames stream (schema version 1).

One record per processed frame::

    {"schema_version": 1, "source_id": "bikes", "frame_index": 12, "pts": 0.48,
     "width": 640, "height": 272, "detected": true,
     "tracks": [{"id": 3, "class_id": 0, "class_name": "person", "confidence": 0.87,
                 "box": [x1, y1, x2, y2], "velocity": [vx, vy],
                 "predicted_path": [[x, y], ...],
                 "keypoints": [[x, y, visibility], ...],      # pose models only
                 "mask_polygon": [[x, y], ...],               # segmentation models only
                 "predicted": true,                           # only on coasting rows (see below)
                 "zones": {"door": 12.4},                     # s inside each zone it is in now
                 "ground": [x, y], "speed_mps": 1.4, "speed_kmh": 5.04,
                 "heading_deg": 90.0}]}                       # only with a calibration (docs/analytics.md)

Coordinates are pixels of the source frame, velocity is pixels per second, ``pts`` is seconds.
``detected`` says whether the detector ran on this frame (``detector.schedule`` skips some). A track with
``"predicted": true`` had no detection in this frame: the tracker reports it at its predicted box
(confidence 0), because the detector skipped the frame or, with ``tracker.output_unmatched_seconds`` > 0,
because it missed the object for a moment. The key is absent on detected rows.
File records carry no wall-clock times so that two runs over one file give identical output;
the Redis sink adds ``capture_time`` and ``publish_time`` (Unix seconds).

The JSON Schema (draft 2020-12) of this record ships as ``pipelines/schemas/frame.schema.json``;
``frame_schema()`` loads it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np

from pipelines.frames import SCHEMA_VERSION, FrameResult


def _rounded(values: np.ndarray, digits: int = 2) -> np.ndarray:
    return np.round(values.astype(np.float64), digits)


def _round(values: np.ndarray, digits: int = 2) -> list[Any]:
    rows: list[Any] = _rounded(values, digits).tolist()
    return rows


def track_records(result: FrameResult, *, numpy_values: bool = False) -> list[dict[str, Any]]:
    """One dict per track of ``result``, in track order.

    JSON-safe by default. With ``numpy_values`` the numeric fields (box, velocity, path, keypoints) are
    float64 numpy rows instead of lists: the same JSON when written by ``orjson`` with
    ``OPT_SERIALIZE_NUMPY``, about twice as fast for frames with many tracks (benchmarks/redis_publish.py).
    """
    t = result.tracks
    arrays = [_rounded(t.xyxy), _rounded(t.velocity), _rounded(t.predicted_path)]
    if t.keypoints is not None:
        arrays.append(_rounded(t.keypoints))
    # Whole arrays converted at once: per-row conversion costs ~10x more.
    rows: list[Any] = arrays if numpy_values else [a.tolist() for a in arrays]
    boxes, vel, path = rows[:3]
    kpts = rows[3] if t.keypoints is not None else None
    conf = _round(t.confidence, 4)
    ids, classes, matched = t.track_id.tolist(), t.class_id.tolist(), t.matched.tolist()
    out: list[dict[str, Any]] = []
    for i, (track_id, cls) in enumerate(zip(ids, classes)):
        rec: dict[str, Any] = {
            "id": track_id,
            "class_id": cls,
            "class_name": str(result.class_names.get(cls, str(cls))),
            "confidence": conf[i],
            "box": boxes[i],
            "velocity": vel[i],
            "predicted_path": path[i],
        }
        if kpts is not None:
            rec["keypoints"] = kpts[i]
        if t.mask_polygons is not None:
            rec["mask_polygon"] = _round(t.mask_polygons[i], 1)
        if not matched[i]:
            rec["predicted"] = True  # coasting row: the tracker's predicted box, no detection this frame
        if result.measures is not None:
            rec.update(result.measures.row(track_id))   # zones (dwell s), ground speed and heading
        out.append(rec)
    return out


def frame_record(result: FrameResult, *, with_times: bool = False,
                 numpy_values: bool = False) -> dict[str, Any]:
    """The schema-v1 record of one processed frame (see module docstring and ``track_records``)."""
    frame = result.frame
    width, height = frame.size
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "source_id": frame.source_id,
        "frame_index": int(frame.index),
        "pts": round(float(frame.pts), 6),
        "width": width,
        "height": height,
        "detected": bool(result.detected),
    }
    if with_times:
        rec["capture_time"] = round(float(frame.capture_time), 6)
    rec["tracks"] = track_records(result, numpy_values=numpy_values)
    return rec


def frame_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a frame record, file and Redis forms."""
    text = resources.files("pipelines").joinpath("schemas/frame.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema

"""Typed containers that cross every seam of trackstream: ``Detections`` in, ``Tracks`` out.

Both are frozen dataclasses of parallel numpy arrays, one row per object. Constructors validate shapes
and dtypes and copy nothing they do not have to convert; they never modify the caller's arrays.

Invalid rows (NaN/inf coordinates, ``x2 < x1`` or ``y2 < y1``) are **rejected** with a ``ValueError``
naming the first bad row. A detector that may emit such rows should call ``Detections.drop_invalid``,
which returns the valid subset and how many rows it removed, so nothing is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class TrackState(IntEnum):
    """Lifecycle of a track: tentative -> confirmed -> lost -> removed."""

    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2
    REMOVED = 3


def _as(name: str, value: object, dtype: type, ndim: int) -> np.ndarray:
    try:
        arr: np.ndarray = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to {np.dtype(dtype).name}: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    return arr


def _check_rows(name: str, arr: np.ndarray | None, n: int) -> None:
    if arr is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: has {arr.shape[0]} rows but xyxy has {n}")


def _invalid_box_rows(xyxy: np.ndarray) -> np.ndarray:
    finite = np.isfinite(xyxy).all(axis=1)
    ordered = (xyxy[:, 2] >= xyxy[:, 0]) & (xyxy[:, 3] >= xyxy[:, 1])
    invalid: np.ndarray = ~(finite & ordered)
    return invalid


@dataclass(frozen=True)
class Detections:
    """Objects found in one frame.

    Attributes:
        xyxy: float32 (N, 4) boxes in pixels, corners ``x1, y1, x2, y2``.
        confidence: float32 (N,) scores in [0, 1].
        class_id: int64 (N,) class indices.
        det_index: int64 (N,) index of each row in the detector's original output; defaults to
            ``arange(N)``. Carried through the tracker so outputs map back to inputs.
        keypoints: optional float32 (N, K, 3) pose keypoints ``x, y, visibility`` in pixels.
        masks: optional bool (N, H, W) instance masks at frame resolution.
        mask_polygons: optional tuple of N float32 (M_i, 2) polygons in pixels (outer contour).
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    det_index: IntArray = field(default=None)  # type: ignore[arg-type]  # None: filled in __post_init__
    keypoints: FloatArray | None = None
    masks: npt.NDArray[np.bool_] | None = None
    mask_polygons: tuple[FloatArray, ...] | None = None

    def __post_init__(self) -> None:
        xyxy = _as("xyxy", self.xyxy, np.float32, 2)
        if xyxy.shape[1:] != (4,) and xyxy.size:
            raise ValueError(f"xyxy: expected shape (N, 4), got {xyxy.shape}")
        xyxy = xyxy.reshape(-1, 4)
        n = xyxy.shape[0]
        conf = _as("confidence", self.confidence, np.float32, 1)
        cls = _as("class_id", self.class_id, np.int64, 1)
        idx = np.arange(n, dtype=np.int64) if self.det_index is None else _as(
            "det_index", self.det_index, np.int64, 1)
        for name, arr in (("confidence", conf), ("class_id", cls), ("det_index", idx)):
            _check_rows(name, arr, n)
        bad = _invalid_box_rows(xyxy)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"xyxy: row {row} is not a valid box {xyxy[row].tolist()} (NaN/inf or negative size); "
                "use Detections.drop_invalid() to drop such rows")
        if not np.isfinite(conf).all():
            raise ValueError("confidence: contains NaN or inf")
        kpts = None if self.keypoints is None else _as("keypoints", self.keypoints, np.float32, 3)
        masks = None if self.masks is None else _as("masks", self.masks, np.bool_, 3)
        _check_rows("keypoints", kpts, n)
        _check_rows("masks", masks, n)
        polys = None
        if self.mask_polygons is not None:
            polys = tuple(np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in self.mask_polygons)
            if len(polys) != n:
                raise ValueError(f"mask_polygons: has {len(polys)} rows but xyxy has {n}")
        for name, value in (("xyxy", xyxy), ("confidence", conf), ("class_id", cls), ("det_index", idx),
                            ("keypoints", kpts), ("masks", masks), ("mask_polygons", polys)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __getitem__(self, index: slice | np.ndarray) -> Detections:
        """Select rows by boolean mask, integer indices or slice; returns a new object."""
        sel = np.arange(len(self))[index]
        return Detections(
            xyxy=self.xyxy[sel], confidence=self.confidence[sel], class_id=self.class_id[sel],
            det_index=self.det_index[sel],
            keypoints=None if self.keypoints is None else self.keypoints[sel],
            masks=None if self.masks is None else self.masks[sel],
            mask_polygons=None if self.mask_polygons is None else tuple(self.mask_polygons[i] for i in sel),
        )

    @classmethod
    def drop_invalid(cls, xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray,
                     **optional: object) -> tuple[Detections, int]:
        """Build Detections from raw arrays, dropping NaN/inf/negative-size rows.

        Returns the valid detections and the number of rows dropped. ``det_index`` of the kept rows
        still refers to the row positions of the raw input.
        """
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        bad = _invalid_box_rows(xyxy) | ~np.isfinite(conf)
        keep = np.flatnonzero(~bad)
        extra: dict[str, Any] = {}
        for key, value in optional.items():
            if value is None:
                continue
            if key == "mask_polygons":
                extra[key] = tuple(value[i] for i in keep)  # type: ignore[index]
            else:
                extra[key] = np.asarray(value)[keep]
        det_index = extra.pop("det_index", keep)
        dets = cls(xyxy[keep], conf[keep], np.asarray(class_id)[keep], det_index=det_index, **extra)
        return dets, int(bad.sum())


@dataclass(frozen=True)
class Tracks:
    """Confirmed tracks matched to a detection in the current frame, and optionally coasting tracks.

    With ``TrackerConfig.output_unmatched_seconds`` > 0, confirmed tracks that lost their detection a moment
    ago are reported too (*coasting* rows): ``state == TrackState.LOST``, ``det_index == -1``, box =
    Kalman-predicted box, confidence 0, keypoints all zero (visibility 0), masks all False, empty polygons.
    ``matched`` tells the two kinds apart. With the default 0, every row is matched.

    Attributes:
        xyxy: float32 (M, 4) box of the matched detection (coasting rows: predicted box), pixels.
        confidence: float32 (M,) confidence of the matched detection (coasting rows: 0).
        class_id: int64 (M,) the track's stable class (majority vote over its history).
        track_id: int64 (M,) ID, unique within one Tracker instance, starting at 1.
        det_index: int64 (M,) ``Detections.det_index`` of the matched detection; -1 for coasting rows.
        velocity: float32 (M, 2) centre velocity in pixels per second.
        predicted_path: float32 (M, K, 2) predicted centre positions over the configured horizon.
        age: float32 (M,) seconds since the track was first seen.
        state: int64 (M,) ``TrackState`` values.
        keypoints / masks / mask_polygons: rows of the matched detections, when the input had them
            (coasting rows: zeros / all False / empty (0, 2) arrays).
        removed_ids: int64 (R,) IDs of confirmed tracks deleted during this update (they ended).
        estimated_xyxy: float32 (M, 4) the Kalman filter's box for each row after this frame: the
            detection weighed against the track's prediction, so it jitters less than ``xyxy`` (coasting
            rows: the predicted box, as ``xyxy``). ``Tracker.update`` always fills it; None only for
            ``Tracks`` built by hand without it. MOTChallenge output reports it.
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    track_id: IntArray
    det_index: IntArray
    velocity: FloatArray
    predicted_path: FloatArray
    age: FloatArray
    state: IntArray
    keypoints: FloatArray | None = None
    masks: npt.NDArray[np.bool_] | None = None
    mask_polygons: tuple[FloatArray, ...] | None = None
    removed_ids: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    estimated_xyxy: FloatArray | None = None

    def __post_init__(self) -> None:
        xyxy = _as("xyxy", self.xyxy, np.float32, 2).reshape(-1, 4)
        n = xyxy.shape[0]
        conv = {
            "xyxy": xyxy,
            "confidence": _as("confidence", self.confidence, np.float32, 1),
            "class_id": _as("class_id", self.class_id, np.int64, 1),
            "track_id": _as("track_id", self.track_id, np.int64, 1),
            "det_index": _as("det_index", self.det_index, np.int64, 1),
            "velocity": _as("velocity", self.velocity, np.float32, 2).reshape(-1, 2),
            "predicted_path": _as("predicted_path", self.predicted_path, np.float32, 3),
            "age": _as("age", self.age, np.float32, 1),
            "state": _as("state", self.state, np.int64, 1),
            "removed_ids": _as("removed_ids", self.removed_ids, np.int64, 1),
        }
        for name, arr in conv.items():
            if name != "removed_ids":
                _check_rows(name, arr, n)
            object.__setattr__(self, name, arr)
        if self.mask_polygons is not None and len(self.mask_polygons) != n:
            raise ValueError(f"mask_polygons: has {len(self.mask_polygons)} rows but xyxy has {n}")
        if self.estimated_xyxy is not None:
            estimated = _as("estimated_xyxy", self.estimated_xyxy, np.float32, 2).reshape(-1, 4)
            _check_rows("estimated_xyxy", estimated, n)
            object.__setattr__(self, "estimated_xyxy", estimated)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @property
    def best_xyxy(self) -> FloatArray:
        """float32 (M, 4): ``estimated_xyxy`` when the tracker filled it, else ``xyxy`` (what MOT files report)."""
        return self.xyxy if self.estimated_xyxy is None else self.estimated_xyxy

    @property
    def matched(self) -> npt.NDArray[np.bool_]:
        """bool (M,): True for rows matched to a detection this frame, False for coasting rows."""
        return self.det_index >= 0

    @classmethod
    def empty(cls, horizon_points: int = 0) -> Tracks:
        z = np.zeros(0, np.float32)
        zi = np.zeros(0, np.int64)
        return cls(np.zeros((0, 4), np.float32), z, zi, zi, zi, np.zeros((0, 2), np.float32),
                   np.zeros((0, horizon_points, 2), np.float32), z, zi)

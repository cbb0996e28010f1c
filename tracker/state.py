"""``TrackArrays``: every live track's state as parallel numpy arrays (one row per track).

No per-track Python objects: the tracker selects, updates and appends rows with array operations. Rows of
removed tracks are dropped at the end of every update, so the store never holds more than the live tracks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

# field name -> (dtype, trailing shape); "L" is the observation history length, "C" the class-table size.
_SCHEMA: dict[str, tuple[type, tuple[str | int, ...]]] = {
    "track_id": (np.int64, ()),
    "state": (np.int64, ()),          # TrackState
    "hits": (np.int64, ()),           # consecutive matched updates
    "mean": (np.float64, (8,)),       # Kalman state, see tracker.kalman
    "cov": (np.float64, (8, 8)),
    "obs_mean": (np.float64, (8,)),   # Kalman state right after the last real observation (OC-SORT re-update)
    "obs_cov": (np.float64, (8, 8)),
    "last_box": (np.float64, (4,)),   # last observed xyxy box
    "history": (np.float64, ("L", 2)),  # last L observed centres, oldest first
    "history_len": (np.int64, ()),    # how many entries of ``history`` are real (<= L)
    "first_time": (np.float64, ()),   # s, first detection
    "last_time": (np.float64, ()),    # s, last matched detection
    "votes": (np.float64, ("C",)),    # class votes, columns follow ``Tracker``'s class table
    "class_id": (np.int64, ()),       # the track's class: changes only when another class has more votes
}


@dataclass
class TrackArrays:
    """Parallel arrays, one row per live track. See ``_SCHEMA`` for shapes and units."""

    track_id: np.ndarray
    state: np.ndarray
    hits: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    obs_mean: np.ndarray
    obs_cov: np.ndarray
    last_box: np.ndarray
    history: np.ndarray
    history_len: np.ndarray
    first_time: np.ndarray
    last_time: np.ndarray
    votes: np.ndarray
    class_id: np.ndarray

    @classmethod
    def empty(cls, history_length: int, classes: int) -> TrackArrays:
        return cls(**{name: np.zeros((0, *_shape(shape, history_length, classes)), dtype)
                      for name, (dtype, shape) in _SCHEMA.items()})

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    def take(self, index: np.ndarray) -> TrackArrays:
        """New store with the selected rows (boolean mask or integer indices)."""
        return TrackArrays(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def extend(self, other: TrackArrays) -> TrackArrays:
        """New store with ``other``'s rows appended."""
        if len(other) == 0:
            return self
        return TrackArrays(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                              for f in dataclasses.fields(self)})

    def remap_class_columns(self, positions: np.ndarray, size: int) -> None:
        """Widen the vote table to ``size`` classes; existing column ``k`` moves to ``positions[k]``."""
        votes = np.zeros((len(self), size))
        votes[:, positions] = self.votes
        self.votes = votes

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict of nested lists (float64 values round-trip exactly through json)."""
        return {f.name: getattr(self, f.name).tolist() for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], history_length: int, classes: int) -> TrackArrays:
        """Inverse of ``to_json``; raises ValueError naming a missing or mis-shaped field."""
        if not isinstance(data, dict):
            raise ValueError("tracker state: 'tracks' must be a mapping")  # noqa: TRY004 - one error type for bad snapshots
        missing = [name for name in _SCHEMA if name not in data]
        if missing:
            raise ValueError(f"tracker state: tracks lack field {missing[0]!r}")
        arrays = {}
        n = len(data["track_id"])
        for name, (dtype, shape) in _SCHEMA.items():
            arr: np.ndarray = np.asarray(data[name], dtype=dtype)
            want = (n, *_shape(shape, history_length, classes))
            if n == 0:
                arr = arr.reshape(want)
            if arr.shape != want:
                raise ValueError(f"tracker state: tracks.{name} has shape {arr.shape}, expected {want} "
                                 "(was it saved with a different direction_lookback_observations?)")
            arrays[name] = arr
        return cls(**arrays)


def _shape(shape: tuple[str | int, ...], history_length: int, classes: int) -> tuple[int, ...]:
    sizes = {"L": history_length, "C": classes}
    return tuple(sizes[s] if isinstance(s, str) else s for s in shape)

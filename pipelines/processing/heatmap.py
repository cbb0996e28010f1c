"""Heatmaps: where tracks' ground points were, per source, in total and per class (``heatmap:`` section).

A track's ground point is its anchor (``events.anchor``: the bottom centre of its Kalman-filtered box by
default, where feet and wheels touch the ground; the point zones, lines and the calibration use). Each
frame, every track reported in the frame (``FrameResult.tracks``, coasting and predicted rows included)
adds 1 to the grid cell its ground point falls in: a track counts once per cell per frame, so a person
standing still heats their spot in proportion to the time they stand there (at the source's frame rate), and
a crowd heats a spot in proportion to its size.

Memory is bounded whatever the run's length: one float32 grid of at most ``max_side`` cells on the long
side of the frame (the frame's aspect), plus one per class seen (at most the model's classes).
``half_life_seconds`` makes old presence fade (the heat of a frame halves every that many seconds of video
time); unset, every frame of the run counts the same. Decay costs nothing per frame: the grids hold heat
divided by a running scale, renormalised once the scale gets small.

``state_dict`` / ``load_state_dict`` keep the grids (their non-zero cells, base64 of the float32 values: exact,
and small for the sparse heat of a real scene), the decay's scale and the sinks' latest copy in a ``--state``
snapshot, so a resumed run's heatmap goes on from where the interrupted one stopped and ends equal to an
uninterrupted run's.

``Heatmap.add`` runs on the processing thread (well under a millisecond at 50 tracks: ``benchmarks/heatmap.py``);
``HeatSnapshot`` values (``pipelines.frames``) carry copies of the grids to the sinks, renewed every
``SNAPSHOT_SECONDS`` of video, which draw them with ``layer`` / ``apply`` / ``blend`` here.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
import numpy.typing as npt

from pipelines.frames import HeatSnapshot
from tracker.configutil import check_bounds
from tracker.types import Tracks

__all__ = ["PICTURE_ALPHA", "PICTURE_SUFFIXES", "Heatmap", "HeatmapConfig", "apply", "blend", "grid_shape", "layer",
           "render"]

Grid = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # heatmap pictures: written in the format named
PICTURE_ALPHA = 0.6   # opacity of the hottest places in a heatmap picture (the PNG, the web view's image)
SNAPSHOT_SECONDS = 0.2  # the sinks' copy of the heat is renewed this often (video time): copying every frame
                        # would cost the processing thread several times what adding does
_RENORMALISE_BELOW = 1e-6   # the running scale is folded into the grids below this (float32 stays exact enough)


@dataclass(frozen=True)
class HeatmapConfig:
    """How a source's heatmap accumulates (section ``heatmap``, or a ``sources[]`` entry's own).

    Attributes:
        enabled: accumulate this source's heatmap (also switched on by ``output.heatmap`` / ``--heatmap FILE``
            and ``overlay.heatmap``).
        half_life_seconds: heat fades by half every this many seconds of video time (a recent picture of
            where people go); None: every frame of the run counts the same.
        max_side: grid cells on the long side of the frame (the short side follows the frame's aspect);
            fewer cells are coarser and cheaper.
    """

    enabled: bool = False
    half_life_seconds: Optional[float] = field(default=None, metadata={"gt": 0.0})
    max_side: int = field(default=256, metadata={"min": 8, "max": 256})

    def __post_init__(self) -> None:
        check_bounds(self)


def grid_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(rows, cols) of the grid of a ``width`` x ``height`` frame: the frame's aspect, ``max_side`` on its
    long side (never more cells than pixels)."""
    long_side = max(width, height, 1)
    cells = min(max_side, long_side)
    return max(1, round(height * cells / long_side)), max(1, round(width * cells / long_side))


class Heatmap:
    """One source's accumulation (see the module docstring). Single-threaded: the processing thread.

    Args:
        config: the source's ``heatmap`` settings.
        class_names: class id -> name (per-class grids are keyed by name).
        anchor: ``bottom_center`` or ``center`` (``events.anchor``).
    """

    def __init__(self, config: HeatmapConfig, class_names: Mapping[int, str], anchor: str = "bottom_center") -> None:
        self.config = config
        self._names = dict(class_names)
        self._bottom = anchor == "bottom_center"
        self._shape: Optional[tuple[int, int]] = None
        self._total: Optional[Grid] = None
        self._classes: dict[int, Grid] = {}
        self._scale = 1.0            # true heat = grid * scale
        self._last_pts: Optional[float] = None
        self._held: Optional[tuple[float, HeatSnapshot]] = None   # (pts, the sinks' latest copy)
        self.frames = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the grids (bounded: (1 + classes seen) x rows x cols x 4)."""
        grids = ([] if self._total is None else [self._total]) + list(self._classes.values())
        return sum(g.nbytes for g in grids)

    def add(self, tracks: Tracks, pts: float, width: int, height: int) -> None:
        """Count the ground point of every track of a ``width`` x ``height`` frame at ``pts`` seconds."""
        if self._shape is None:
            self._shape = grid_shape(width, height, self.config.max_side)
            self._total = np.zeros(self._shape, np.float32)
        assert self._total is not None
        self._decay(pts)
        self.frames += 1
        if not len(tracks):
            return
        box = tracks.best_xyxy
        x = (box[:, 0] + box[:, 2]) * 0.5
        y = box[:, 3] if self._bottom else (box[:, 1] + box[:, 3]) * 0.5
        rows, cols = self._shape
        inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)   # on the frame (its edges too); off it: none
        col = np.minimum(np.floor(x[inside] * (cols / max(width, 1))).astype(np.int64), cols - 1)
        row = np.minimum(np.floor(y[inside] * (rows / max(height, 1))).astype(np.int64), rows - 1)
        cell = row * cols + col
        weight = np.float32(1.0 / self._scale)
        np.add.at(self._total.reshape(-1), cell, weight)
        classes = tracks.class_id[inside]
        for cls in np.unique(classes).tolist():
            grid = self._classes.get(cls)
            if grid is None:
                grid = self._classes[cls] = np.zeros(self._shape, np.float32)
            np.add.at(grid.reshape(-1), cell[classes == cls], weight)

    def _decay(self, pts: float) -> None:
        half_life = self.config.half_life_seconds
        if half_life is not None and self._last_pts is not None and pts > self._last_pts:
            self._scale *= 0.5 ** ((pts - self._last_pts) / half_life)
            if self._scale < _RENORMALISE_BELOW:
                for grid in (self._total, *self._classes.values()):
                    if grid is not None:
                        grid *= np.float32(self._scale)
                self._scale = 1.0
        self._last_pts = pts if self._last_pts is None else max(pts, self._last_pts)

    def latest(self, pts: float) -> HeatSnapshot:
        """The sinks' copy at ``pts`` s: a new ``snapshot`` when ``SNAPSHOT_SECONDS`` of video passed since the
        last one (or time went back), else that one again (the same value: a picture of the heat at most
        ``SNAPSHOT_SECONDS`` old)."""
        held = self._held
        if held is None or not 0.0 <= pts - held[0] < SNAPSHOT_SECONDS:
            held = self._held = (pts, self.snapshot())
        return held[1]

    def snapshot(self) -> HeatSnapshot:
        """The heat now, as new arrays (the sinks keep them while this goes on adding)."""
        if self._total is None:
            return HeatSnapshot(np.zeros((1, 1), np.float32), {}, 0)
        scale = np.float32(self._scale)
        by_class = {self._names.get(cls, str(cls)): grid * scale for cls, grid in sorted(self._classes.items())}
        return HeatSnapshot(self._total * scale, by_class, self.frames)


    # -- the --state snapshot ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-safe accumulation: grids as their non-zero cells, scale, last time, frames and the sinks' copy."""
        held = None
        if self._held is not None:
            pts, shot = self._held
            held = {"pts": pts, "frames": shot.frames, "shape": list(shot.total.shape), "total": _cells(shot.total),
                    "by_class": {name: _cells(grid) for name, grid in shot.by_class.items()}}
        return {"max_side": self.config.max_side, "shape": None if self._shape is None else list(self._shape),
                "total": None if self._total is None else _cells(self._total),
                "classes": [[cls, _cells(grid)] for cls, grid in sorted(self._classes.items())],
                "scale": self._scale, "last_pts": self._last_pts, "frames": self.frames, "held": held}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()`` output. A snapshot of another ``max_side`` (another grid) is not
        continued: the heatmap starts anew. Raises KeyError/TypeError/ValueError when malformed."""
        if int(state["max_side"]) != self.config.max_side:
            return
        shape = None if state["shape"] is None else (int(state["shape"][0]), int(state["shape"][1]))
        total = None if shape is None or state["total"] is None else _grid(state["total"], shape)
        classes = {} if shape is None else {int(cls): _grid(cells, shape) for cls, cells in state["classes"]}
        held = None
        if state["held"] is not None:
            doc = state["held"]
            size = (int(doc["shape"][0]), int(doc["shape"][1]))
            shot = HeatSnapshot(_grid(doc["total"], size),
                                {str(name): _grid(cells, size) for name, cells in doc["by_class"].items()},
                                int(doc["frames"]))
            held = (float(doc["pts"]), shot)
        last = state["last_pts"]
        self._shape, self._total, self._classes, self._held = shape, total, classes, held
        self._scale, self._last_pts = float(state["scale"]), None if last is None else float(last)
        self.frames = int(state["frames"])


def _cells(grid: Grid) -> list[str]:
    """A grid's non-zero cells, ``[flat indexes, values]``, each the base64 of its little-endian int32 /
    float32 array: exact, and about 11 characters per heated cell."""
    flat = grid.reshape(-1)
    index = np.flatnonzero(flat)
    return [base64.b64encode(index.astype("<i4").tobytes()).decode("ascii"),
            base64.b64encode(flat[index].astype("<f4").tobytes()).decode("ascii")]


def _grid(cells: Any, shape: tuple[int, int]) -> Grid:
    """The grid ``_cells`` describes. ValueError when the cells do not fit it."""
    try:
        index = np.frombuffer(base64.b64decode(cells[0], validate=True), "<i4").astype(np.int64)
        values = np.frombuffer(base64.b64decode(cells[1], validate=True), "<f4").astype(np.float32)
    except binascii.Error as exc:
        raise ValueError(f"heatmap cells: {exc}") from None
    if index.shape != values.shape or (index.size and not 0 <= index.min() <= index.max() < shape[0] * shape[1]):
        raise ValueError("heatmap cells do not fit its grid")
    grid = np.zeros(shape[0] * shape[1], np.float32)
    grid[index] = values
    return grid.reshape(shape)


def render(heat: Grid) -> tuple[Image, npt.NDArray[np.float32]]:
    """Colour-map a heat grid, at the grid's size: (BGR uint8 image, float32 opacity 0..1).

    The grid is blurred by an 80th of its long side (a point becomes a spot), scaled so its hottest cell
    is 1 and square-rooted (a path walked once still shows beside a spot someone stood on for minutes), then
    coloured blue (little) to red (most) with OpenCV's JET map. Opacity follows the heat, so cold places
    keep the picture under them unchanged."""
    import cv2

    grid = np.asarray(heat, np.float32)
    smooth = cv2.GaussianBlur(grid, (0, 0), sigmaX=max(1.0, max(grid.shape) / 80.0))
    peak = float(smooth.max()) if smooth.size else 0.0
    level = np.sqrt(np.clip(smooth / peak, 0.0, 1.0)) if peak > 0 else np.zeros_like(smooth)
    colour = cv2.applyColorMap(np.round(level * 255.0).astype(np.uint8), cv2.COLORMAP_JET)
    opacity = np.clip((level - 0.05) * 4.0, 0.0, 1.0).astype(np.float32)
    return np.asarray(colour, np.uint8), opacity


Layer = tuple[Image, Image]


def layer(heat: Grid, size: tuple[int, int], alpha: float) -> Layer:
    """The colour-mapped ``heat`` at ``size`` (width, height) ready to lay over pictures of that size at most
    ``alpha`` opaque: (what is kept of the picture, 0..255 per channel; the colour premultiplied). Coloured
    at the grid's size, then enlarged (a few ms at 1080p)."""
    import cv2

    colour, opacity = render(heat)
    a = opacity * np.float32(alpha)
    keep = np.round((1.0 - a) * 255.0).astype(np.uint8)
    pre = np.round(colour.astype(np.float32) * a[:, :, None]).astype(np.uint8)
    keep3 = cv2.resize(cv2.merge([keep, keep, keep]), size, interpolation=cv2.INTER_LINEAR)
    return np.asarray(keep3, np.uint8), np.asarray(cv2.resize(pre, size, interpolation=cv2.INTER_LINEAR), np.uint8)


def apply(image: Image, heat_layer: Layer) -> Image:
    """A new image: ``image`` (BGR, the layer's size) under ``heat_layer`` (a few ms at 1080p, in OpenCV)."""
    import cv2

    keep, pre = heat_layer
    return np.asarray(cv2.add(cv2.multiply(image, keep, scale=1.0 / 255.0), pre), np.uint8)


def blend(image: Image, heat: Grid, alpha: float) -> Image:
    """``image`` (BGR, not modified) with the colour-mapped ``heat`` laid over it at most ``alpha`` opaque."""
    height, width = image.shape[:2]
    return apply(np.ascontiguousarray(image), layer(heat, (width, height), alpha))

"""Letterboxing on the detector's device: the whole batch is resized, padded and normalised there.

Ultralytics letterboxes every frame on the CPU (an OpenCV resize of the full picture, then padding) and
copies the small result to the device. On a GPU at 1080p those per-frame CPU resizes are the work that
limits how many streams one machine runs, so ``detector.preprocess: device`` (the ``auto`` choice on CUDA)
copies each frame to the device once, as it was decoded (uint8, BGR), and does the rest there for the
whole batch at once: BGR -> RGB, to float (half when the model runs in half precision), bilinear resize,
padding with Ultralytics' grey (114) and scaling to 0..1.

The geometry is Ultralytics' own: the padded size is asked of its ``LetterBox`` once per set of frame
shapes (so a model with a fixed input size, an exported one, gets exactly its size) and the picture is
placed as ``LetterBox`` places it, centred with the same rounding. Ultralytics then maps boxes, masks and
keypoints back to frame pixels from that geometry, unchanged. The bilinear resize is the one OpenCV's
``INTER_LINEAR`` does (pixel centres aligned, no anti-aliasing) computed in floating point, so pixel values
differ from OpenCV's by its rounding to whole numbers, below one grey level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np


PAD_VALUE = 114  # Ultralytics' letterbox grey


@dataclass(frozen=True)
class Placement:
    """Where one frame goes in the padded model input: ``size`` (h, w) of the resized picture, at
    ``top``/``left`` in an input of ``shape`` (h, w)."""

    shape: tuple[int, int]
    size: tuple[int, int]
    top: int
    left: int


def place(frame_hw: tuple[int, int], imgsz_hw: tuple[int, int], input_hw: tuple[int, int]) -> Placement:
    """The placement of a ``frame_hw`` frame in an ``input_hw`` model input letterboxed for ``imgsz_hw``:
    scaled by the largest factor that fits ``imgsz_hw`` (sides rounded, at least 1 pixel), centred with
    Ultralytics' rounding (``round(pad / 2 - 0.1)`` before, the rest after)."""
    h, w = frame_hw
    r = min(imgsz_hw[0] / h, imgsz_hw[1] / w)
    size = (max(round(h * r), 1), max(round(w * r), 1))
    top = round((input_hw[0] - size[0]) / 2 - 0.1)
    left = round((input_hw[1] - size[1]) / 2 - 0.1)
    return Placement(input_hw, size, top, left)


def letterbox(images: Sequence[np.ndarray], placements: Sequence[Placement], device: Any,
              half: bool) -> Any:
    """The (N, 3, H, W) model input of ``images`` (BGR uint8 (h, w, 3) each) on ``device``, RGB, 0..1.

    Frames of one shape are copied into one device buffer and resized in one call.
    """
    import torch
    import torch.nn.functional as F

    dtype = torch.float16 if half else torch.float32
    out_h, out_w = placements[0].shape
    batch = torch.full((len(images), 3, out_h, out_w), PAD_VALUE, dtype=dtype, device=device)
    groups: dict[tuple[tuple[int, ...], Placement], list[int]] = {}
    for index, (image, where) in enumerate(zip(images, placements)):
        groups.setdefault((image.shape, where), []).append(index)
    for (shape, where), indices in groups.items():
        frames = torch.empty((len(indices), *shape), dtype=torch.uint8, device=device)
        for slot, index in enumerate(indices):
            frames[slot].copy_(torch.from_numpy(np.ascontiguousarray(images[index])))  # the one copy over
        x = frames.permute(0, 3, 1, 2).flip(1).to(dtype)                          # BGR -> RGB, (n, 3, h, w)
        if tuple(x.shape[2:]) != where.size:
            x = F.interpolate(x, size=where.size, mode="bilinear", align_corners=False, antialias=False)
        h, w = where.size
        batch[indices, :, where.top:where.top + h, where.left:where.left + w] = x
    return batch.div_(255)  # as Ultralytics scales: the padding is bit for bit its grey


class DeviceLetterbox:
    """A mixin for an Ultralytics predictor class: ``preprocess`` letterboxes on the predictor's device
    (module docstring). Tensors given as the source go through Ultralytics' own preprocessing."""

    imgsz: Any
    device: Any
    model: Any
    pre_transform: Callable[[list[np.ndarray]], list[np.ndarray]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._input_shapes: dict[tuple[Any, ...], tuple[int, int]] = {}

    def preprocess(self, im: Any) -> Any:
        if not isinstance(im, list):
            return super().preprocess(im)  # type: ignore[misc]
        imgsz = (int(self.imgsz[0]), int(self.imgsz[1]))
        shapes = tuple(sorted({(int(x.shape[0]), int(x.shape[1])) for x in im}))
        key = (imgsz, shapes)
        if key not in self._input_shapes:  # Ultralytics' LetterBox says which input size these get (once)
            out = self.pre_transform([np.zeros((h, w, 3), np.uint8) for h, w in shapes])[0]
            self._input_shapes[key] = (int(out.shape[0]), int(out.shape[1]))
        input_hw = self._input_shapes[key]
        placements = [place((int(x.shape[0]), int(x.shape[1])), imgsz, input_hw) for x in im]
        return letterbox(im, placements, self.device, bool(self.model.fp16))


def predictor_class(model: Any) -> type:
    """The task's Ultralytics predictor class of ``model`` with ``DeviceLetterbox`` mixed in."""
    base = model.task_map[model.task]["predictor"]
    return type(f"DeviceLetterbox{base.__name__}", (DeviceLetterbox, base), {})


def resolve_preprocess(setting: str, device: str) -> str:
    """``cpu`` or ``device`` for the ``detector.preprocess`` setting on ``device``: ``auto`` letterboxes on
    CUDA devices (where the CPU is the bottleneck) and on the CPU otherwise (OpenCV's integer resize is
    cheaper there than a float one)."""
    if setting == "auto":
        return "device" if device.startswith("cuda") else "cpu"
    return setting

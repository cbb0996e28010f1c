"""Ultralytics and OpenVINO as trackstream runs them: offline, installing nothing, reporting nothing, quiet.

Importing this module sets ``YOLO_AUTOINSTALL=false`` (Ultralytics must never pip-install a package at run time,
e.g. ``onnxslim`` or ``openvino`` during an export) and ``YOLO_OFFLINE=true`` (no download, and Ultralytics'
usage events stay off because they need it online), unless the environment already says otherwise.
``telemetry_off`` also switches off Ultralytics' events explicitly and keeps OpenVINO's model-conversion
telemetry (``openvino_telemetry``, on by default for ``ov.convert_model``) from loading.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")


_hushed = False  # ``hush`` was called: Ultralytics' INFO lines stay off once it is imported


def hush() -> None:
    """Ultralytics' INFO lines off for the rest of the process (``--quiet``), without importing it now (its
    import costs seconds a run that never loads it should not pay)."""
    global _hushed
    _hushed = True
    if "ultralytics.utils" in sys.modules:
        ultralytics_logger()


def hushed() -> bool:
    """Whether model-loading lines are off (``hush``): Ultralytics' and the native runtimes' alike."""
    return _hushed


def ultralytics_logger() -> logging.Logger:
    """Ultralytics' logger, after its import (which sets the logger's level, so setting it earlier is lost)."""
    import ultralytics.utils  # noqa: F401 - configures the "ultralytics" logger

    logger = logging.getLogger("ultralytics")
    if _hushed:
        logger.setLevel(max(logger.level, logging.WARNING))
    return logger


@contextlib.contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """Ultralytics' INFO lines (model loading, backend setup, export steps) off while inside; warnings show."""
    logger = ultralytics_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def telemetry_off() -> None:
    """No usage reports from Ultralytics or OpenVINO in this process (idempotent, changes no file).

    OpenVINO's converter imports ``openvino_telemetry`` and falls back to a no-op stub when that import fails;
    a ``None`` entry in ``sys.modules`` makes it fail. Ultralytics' settings file (``sync``) is left as the user
    has it: its event sender is switched off for this process only.
    """
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import raises ImportError
    from ultralytics.utils.events import events

    events.enabled = False

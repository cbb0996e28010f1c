"""Peer trackers scored in the same run as ours, on the same detections.

* Ultralytics' BYTETracker (``ultralytics-bytetrack``) and TrackTrack (``ultralytics-tracktrack``, the default
  tracker of ``model.track`` since Ultralytics 8.4), as ``model.track`` builds them from their shipped
  settings, and BoT-SORT (``ultralytics-botsort``); TrackTrack's and BoT-SORT's camera-motion compensation
  needs the pictures, which the MOT detections do not have, so they run with ``gmc_method: none`` here (and
  BoT-SORT without re-identification, its shipped ``with_reid: False``);
* roboflow ``trackers`` ByteTrack and OC-SORT (``roboflow-bytetrack``, ``roboflow-ocsort``; pip package
  ``trackers``, Apache-2.0, numpy/scipy/supervision only), with their defaults, the sequence's frame rate and
  the frame timestamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import UserError
from pipelines.evaluation.base import BOTSORT, BYTETRACK, RF_OCSORT, TRACKTRACK, xyxy_rows


class _Boxes:
    """The slice of ``ultralytics.engine.results.Boxes`` that BYTETracker reads, from plain arrays.

    Attributes: ``xyxy``/``xywh`` float32 (N, 4) in pixels (``xywh`` is centre x/y, width, height),
    ``conf`` float32 (N,), ``cls`` float32 (N,). Boolean or integer indexing returns a new ``_Boxes``.
    """

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, dtype=np.float32).reshape(-1)
        self.cls = np.asarray(cls, dtype=np.float32).reshape(-1)
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        self.xywh = np.concatenate([self.xyxy[:, :2] + wh / 2, wh], axis=1)

    def __len__(self) -> int:
        return int(self.conf.shape[0])

    def __getitem__(self, index: Any) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def ultralytics_defaults(name: str = "bytetrack") -> dict[str, Any]:
    """Ultralytics' shipped defaults from ``ultralytics/cfg/trackers/<name>.yaml``."""
    import ultralytics
    import yaml

    path = Path(ultralytics.__file__).parent / "cfg" / "trackers" / f"{name}.yaml"
    return dict(yaml.safe_load(path.read_text()))


def bytetrack_defaults() -> dict[str, Any]:
    """Ultralytics' shipped defaults from ``ultralytics/cfg/trackers/bytetrack.yaml``."""
    return ultralytics_defaults("bytetrack")


class UltralyticsTracker:
    """Ultralytics' ``BYTETracker``, ``TRACKTRACK`` or ``BOTSORT`` with its shipped settings.

    Reports what the tracker returns for the tracks it shows this frame: its Kalman-updated box, the
    detection score and the track id (as ``model.track`` shows them to Ultralytics users). Both count
    frames, not seconds, so ``timestamp`` is unused.
    """

    def __init__(self, name: str = BYTETRACK) -> None:
        from ultralytics.utils import IterableSimpleNamespace

        self.name = name
        self._tracker: Any
        if name == TRACKTRACK:
            from ultralytics.trackers.track_tracker import TRACKTRACK as TrackTrack

            settings = {**ultralytics_defaults("tracktrack"), "gmc_method": "none", "with_reid": False}
            make: Any = TrackTrack  # Ultralytics' trackers are untyped
            self._tracker = make(IterableSimpleNamespace(**settings))
        elif name == BOTSORT:
            from ultralytics.trackers.bot_sort import BOTSORT as BotSort

            settings = {**ultralytics_defaults("botsort"), "gmc_method": "none", "with_reid": False}
            make_botsort: Any = BotSort
            self._tracker = make_botsort(IterableSimpleNamespace(**settings))
        else:
            from ultralytics.trackers.byte_tracker import BYTETracker

            make_bytetrack: Any = BYTETracker
            self._tracker = make_bytetrack(IterableSimpleNamespace(**bytetrack_defaults()))

    def update(self, tlwh: np.ndarray, conf: np.ndarray, timestamp: float) -> np.ndarray:
        tlwh = np.asarray(tlwh, dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1)
        out = self._tracker.update(_Boxes(xyxy, conf, np.zeros(len(conf))))
        if len(out) == 0:
            return np.zeros((0, 6))
        return xyxy_rows(out[:, 4], out[:, :4], out[:, 5])


class RoboflowTracker:
    """roboflow ``trackers``' ``ByteTrackTracker`` or ``OCSORTTracker`` with its default settings.

    Reports the rows it gives a tracker id (``tracker_id >= 0``): the detection box, score and id.
    """

    def __init__(self, name: str, frame_rate: float) -> None:
        try:
            import supervision as sv
            from trackers import ByteTrackTracker, OCSORTTracker
        except ImportError:
            raise UserError(f"{name} needs roboflow's trackers: pip install 'trackers>=2.6'") from None
        self.name = name
        self._sv = sv
        cls = OCSORTTracker if name == RF_OCSORT else ByteTrackTracker
        self._tracker = cls(frame_rate=frame_rate)

    def update(self, tlwh: np.ndarray, conf: np.ndarray, timestamp: float) -> np.ndarray:
        tlwh = np.asarray(tlwh, dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate([tlwh[:, :2], tlwh[:, :2] + tlwh[:, 2:]], axis=1)
        dets = self._sv.Detections(xyxy=xyxy, confidence=np.asarray(conf, np.float32).reshape(-1),
                                   class_id=np.zeros(len(xyxy), int))
        out = self._tracker.update(dets, timestamp=timestamp)
        if len(out) == 0 or out.tracker_id is None:
            return np.zeros((0, 6))
        ok = np.asarray(out.tracker_id) >= 0
        if not ok.any():
            return np.zeros((0, 6))
        confidence = out.confidence[ok] if out.confidence is not None else np.ones(int(ok.sum()))
        # its ids start at 0; MOTChallenge files conventionally start at 1
        return xyxy_rows(np.asarray(out.tracker_id)[ok] + 1, out.xyxy[ok], confidence)


UltralyticsByteTrack = UltralyticsTracker  # the name before TrackTrack joined (its default is BYTETracker)

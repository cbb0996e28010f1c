"""The trackers ``trackstream eval`` can score, behind one small interface.

Every adapter takes one frame of detections as top-left boxes and returns the boxes it reports for that
frame; the runner writes them to the MOT results file. Adapters are built by name with ``make_tracker``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import UserError
from pipelines.evaluation.base import (BOTSORT, BYTETRACK, RF_BYTETRACK, RF_OCSORT, TRACKER_NAMES, TRACKSTREAM,
                                       TRACKTRACK, FrameTracker, tlwh_to_xyxy, xyxy_rows)

__all__ = ["BOTSORT", "BYTETRACK", "RF_BYTETRACK", "RF_OCSORT", "TRACKER_NAMES", "TRACKSTREAM", "TRACKTRACK",
           "FrameTracker", "TrackstreamTracker", "load_candidate", "load_tracker_config", "make_tracker",
           "tlwh_to_xyxy", "xyxy_rows"]


class TrackstreamTracker:
    """trackstream's own ``tracker.Tracker``; reports each confirmed track's ``Tracks.estimated_xyxy``.

    That is the Kalman filter's box after the frame's detection, as the MOT sink of ``trackstream run`` writes
    it (and as the peers report theirs); ``Tracks.xyxy``, the detector's own box, jitters more.

    After each ``update``, ``last_path`` (M, K, 2) holds the predicted centre path of each reported row at
    ``path_times`` (K,) seconds ahead.
    """

    name = TRACKSTREAM

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        from tracker import Tracker, TrackerConfig, Tracks

        cfg = TrackerConfig.from_dict(dict(config or {}))
        self._tracker = Tracker(cfg)
        k = cfg.path_points
        self.path_times = cfg.path_horizon_seconds * np.arange(1, k + 1) / max(k, 1)
        self.last_path: np.ndarray = np.zeros((0, k, 2))
        self._last = Tracks.empty(k)  # the tracks of the last update (what the schedule plans from)
        self._removed = self._last.removed_ids

    @property
    def core(self) -> Any:
        """The ``tracker.Tracker`` behind this adapter (its Kalman state: ``forecast``)."""
        return self._tracker

    def update(self, tlwh: np.ndarray, conf: np.ndarray, timestamp: float) -> np.ndarray:
        from tracker import Detections

        n = len(conf)
        dets = Detections(tlwh_to_xyxy(tlwh).astype(np.float32), np.asarray(conf, np.float32),
                          np.zeros(n, np.int64))
        tracks = self._tracker.update(dets, timestamp=timestamp)
        self._last = tracks
        self._removed = tracks.removed_ids
        self.last_path = tracks.predicted_path
        return xyxy_rows(tracks.track_id, tracks.best_xyxy, tracks.confidence)

    def counted(self) -> np.ndarray:
        """The rows ``trackstream run`` counts crossings on after the last ``update``: the tracks matched to a
        detection, at the detector's box (``EventGenerator.update``: a coasting row is absent, and the Kalman
        box is what the MOT file reports, not what is counted)."""
        t, m = self._last, self._last.matched
        return xyxy_rows(t.track_id[m], t.xyxy[m], t.confidence[m])

    def removed(self) -> list[int]:
        """The ids of the confirmed tracks the last ``update`` or ``predict`` removed (they ended: ``run``
        cancels their standing warnings, ``track_ended``)."""
        return [int(i) for i in self._removed.tolist()]

    def predict(self, timestamp: float) -> np.ndarray:
        """A frame the detection schedule skipped: every confirmed track at its predicted box."""
        tracks = self._tracker.predict(timestamp)
        self._removed = tracks.removed_ids
        self.last_path = tracks.predicted_path
        return xyxy_rows(tracks.track_id, tracks.best_xyxy, tracks.confidence)

    def plan(self, timestamp: float, schedule: Any, lines: Sequence[Any] = ()) -> Any:
        """The detection schedule's plan after the last ``update`` (``pipelines.processing.schedule``; no
        pixels here, so no motion measure: the tracker's state, and the counting ``lines`` (``LineConfig``)
        with the default ``events:`` dead band and anchor, as ``trackstream run``'s schedule sees them)."""
        from pipelines.processing.schedule import confirm_plan, plan_after
        from pipelines.processing.zones import EventsConfig

        pending = self._tracker.pending()
        if schedule.mode == "interval":
            return confirm_plan(timestamp, pending)
        events = EventsConfig()
        return plan_after(timestamp, self._last, pending, schedule.tuning, lines, (), events.line_dead_band,
                          events.anchor, spread=self._tracker.velocity_spread())


def make_tracker(name: str, config: Mapping[str, Any] | None = None,
                 frame_rate: float = 30.0) -> FrameTracker:
    """A fresh tracker by name (one per sequence); ``config`` (TrackerConfig keys) is for trackstream only.

    ``frame_rate`` (the sequence's, from seqinfo.ini) goes to the peers that take one (roboflow ``trackers``);
    Ultralytics' BYTETracker is built as ``model.track`` builds it, at its fixed 30 fps.
    """
    if name == TRACKSTREAM:
        return TrackstreamTracker(config)
    if name in (BYTETRACK, TRACKTRACK, BOTSORT):
        from pipelines.evaluation.peers import UltralyticsTracker

        return UltralyticsTracker(name)
    if name in (RF_BYTETRACK, RF_OCSORT):
        from pipelines.evaluation.peers import RoboflowTracker

        return RoboflowTracker(name, frame_rate)
    raise UserError(f"unknown tracker {name!r} (choose from {', '.join(TRACKER_NAMES)})")


def load_candidate(path: Path, default: Any) -> tuple[dict[str, Any], Any]:
    """A ``--candidate`` file: (TrackerConfig keys, its detection schedule or None for ``default``).

    A file with a ``schedule:`` section (``ScheduleTuning`` keys) or ``detector: {schedule: S}`` is read like a
    trackstream config holding only those sections and ``tracker:``; the candidate runs with that schedule
    (``S``, else ``default``'s mode, with those settings). Any other file is ``load_tracker_config``'s.
    Bad keys raise ``UserError`` naming the file and the key.
    """
    from pipelines.processing.schedule import Schedule, ScheduleTuning
    from tracker.configutil import ConfigError, from_mapping

    data = _read_yaml(path)
    if "schedule" not in data and "detector" not in data:
        return load_tracker_config(path), None
    try:
        extra = sorted(set(data) - {"tracker", "schedule", "detector"})
        if extra:
            raise ConfigError(str(extra[0]), "unknown key in a candidate with a schedule "
                                             "(known keys: detector, schedule, tracker)")
        detector = data.get("detector") or {}
        if not isinstance(detector, dict) or set(detector) - {"schedule"}:
            raise ConfigError("detector", "a candidate's detector: section holds only schedule")
        tuning = from_mapping(ScheduleTuning, data.get("schedule"), "schedule")
        spec = detector.get("schedule", default.spec if default is not None else "adaptive")
        schedule = Schedule.parse(spec, tuning, "detector.schedule")
        tracker = data.get("tracker") or {}
        if not isinstance(tracker, dict):
            raise ConfigError("tracker", f"must be a mapping of tracker settings, got {type(tracker).__name__}")
    except ConfigError as exc:
        raise UserError(f"{path}: {exc}") from None
    return dict(tracker), schedule


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists() or path.is_dir():
        raise UserError(f"tracker config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:   # not UTF-8 text: one line too
        raise UserError(f"{path}: cannot read YAML ({str(exc).splitlines()[0]})") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of tracker settings, got {type(data).__name__}")
    return data


def load_tracker_config(path: Path) -> dict[str, Any]:
    """Read TrackerConfig keys from a YAML file.

    The file is either a flat mapping of TrackerConfig keys (``configs/tracker/*.yaml``) or a full trackstream
    config whose ``tracker:`` section holds them. The keys are checked when the tracker is built.
    """
    data = _read_yaml(path)
    section = data.get("tracker")
    if isinstance(section, dict):
        return dict(section)
    return data

"""``TrackerConfig``: every knob of the tracker, typed, frozen and validated.

Load it from a mapping (``TrackerConfig.from_dict``) or a YAML file (``TrackerConfig.from_yaml``); unknown
keys and out-of-range values raise ``ConfigError`` naming the key. Time limits are in **seconds** and are
measured with the timestamps given to ``Tracker.update``; ``frame_rate`` is only used to invent timestamps
when the caller passes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.configutil import ConfigError, from_mapping, load_yaml, to_mapping


def _unit(default: float) -> Any:
    return field(default=default, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of ``tracker.Tracker``. All defaults are sensible for pedestrians and vehicles at 10-60 fps.

    Detection confidence:
        high_confidence_threshold: detections at or above this score take part in the first association
            stage and may start tracks. Lower finds more objects but starts more false tracks.
        low_confidence_threshold: detections below this score are ignored entirely. Scores between the two
            thresholds are only used to *continue* tracks that were matched in the previous frame (ByteTrack's
            second pass), which keeps partly occluded objects without creating tracks from clutter.
        new_track_confidence_threshold: an unmatched detection must reach this score to start a track.
            Higher suppresses ghost tracks from one-frame false positives, at the price of a later start.

    Association:
        minimum_iou: gate of the first stage; a track and a detection whose overlap (predicted box vs
            detection) is below it are never matched there. Lower keeps fast movers, higher avoids swaps.
        low_confidence_minimum_iou: the stricter gate of the second (low-confidence) stage.
        tentative_minimum_iou: gate for matching not-yet-confirmed tracks.
        recovery_minimum_giou: base gate of the recovery stage, which gives tracks seen in the previous
            frame a second chance at the remaining detections by generalised IoU with their predicted box.
            GIoU stays informative when boxes no longer overlap (it goes negative with the gap), and the
            gate is lowered per track by how far the track moves per frame (in box sizes, at most 0.5), so
            a fast or low-frame-rate object that jumps past its own box is still followed, while slow ones
            are not matched across gaps. Lower follows more jumps, but swaps more in crowds. Lost tracks
            are not recovered this way: matching them without overlap merged different people in tests.
        minimum_height_ratio: gate of every stage on the ratio of the shorter to the taller of a track's
            predicted box and a detection: a pair whose heights differ more is never matched. A person
            walking out of the picture close to the camera leaves a box cut by the edge; without the gate the
            shorter box of someone behind, lying inside it, took over its track. 0 turns it off.
        lost_track_score_weight: factor on a *lost* track's first-stage score: when a lost track and a track
            seen in the previous frame compete for one detection, the one seen recently usually wins.
            1 treats them alike (ByteTrack); lower trusts an occluded track's extrapolation less. Too low
            (0.5) weakens the lost track's own preference so much that, where two objects overlap, the
            other track takes its detection for a frame or two.
        direction_consistency_weight: weight of the OC-SORT velocity-direction term added to the IoU score:
            a detection lying in the direction the track was moving is preferred over one behind it. 0 turns
            it off. Large values let direction beat overlap, which hurts with jittery boxes.
        direction_lookback_observations: how many observations back the track's direction is measured from;
            longer is steadier but reacts later to turns.
        fuse_confidence: multiply IoU by the detection score in the first stage, so confident detections win
            close calls (helps with duplicate detections of one object).
        per_class_matching: only match a detection to a track of the same (majority-vote) class.
        ego_motion_significance: camera-motion compensation from the detections alone: when the tracks
            seen in the previous frame moved alike by more than this many standard errors of their median
            displacement, every predicted position is shifted by it and matching runs again
            (``tracker.egomotion``; 0 = off). Lower follows a moving camera sooner; too low lets a crowd
            that walks together pass for camera motion. The default 5 was chosen by cross-validation over
            frame rates, detector noise and a panning camera (docs/tracker.md); a still camera is left
            alone unless the whole scene moves.

    Lifecycle:
        confirmation_hits: consecutive matched frames a new track needs before it is reported. 1 reports at
            once (more false tracks), 3 is robust but hides the first frames of every object.
        tentative_max_gap_seconds: a tentative track not matched for longer than this is dropped.
        lost_track_buffer_seconds: how long a confirmed track that lost its detection is kept for recovery
            (its ID survives an occlusion this long). Longer bridges longer occlusions but risks giving an old
            ID to a new object.
        output_unmatched_seconds: a confirmed track that lost its detection is still *reported* for up to
            this long (and for at most half the time it had been observed), at its Kalman-predicted box,
            with ``state == TrackState.LOST``, ``det_index == -1`` and confidence 0 (``Tracks.matched`` is
            False for such rows). Boxes then do not flicker through one-frame misses or brief occlusions,
            at the price of some boxes where the object may no longer be. 0 (default) reports only tracks
            matched to a detection in the current frame.
        frame_rate: frames per second assumed when ``update`` gets no timestamp (timestamp = frames / rate).

    Motion model (constant velocity on box centre and size, per-second units, scaled by box height):
        position_noise: process noise of position and size, fraction of box height per sqrt(second).
        velocity_noise: process noise of velocity, fraction of box height per second per sqrt(second).
            Larger values follow manoeuvres faster but predict less steadily through occlusions.
        measurement_noise: detector box noise, fraction of box height.
        observation_centric_reupdate: when a lost track is recovered, re-run its filter from its last
            observation along a straight virtual path to the new one (OC-SORT), so the velocity is learnt
            from the real displacement instead of the drift accumulated while lost.

    Path prediction:
        path_horizon_seconds: how far ahead the predicted centre path reaches.
        path_points: number of predicted points, evenly spaced over the horizon (0 disables).
    """

    high_confidence_threshold: float = _unit(0.5)
    low_confidence_threshold: float = _unit(0.1)
    new_track_confidence_threshold: float = _unit(0.6)
    minimum_iou: float = _unit(0.3)
    low_confidence_minimum_iou: float = _unit(0.5)
    tentative_minimum_iou: float = _unit(0.3)
    recovery_minimum_giou: float = field(default=0.0, metadata={"min": -0.9, "max": 1.0})
    minimum_height_ratio: float = _unit(0.6)
    lost_track_score_weight: float = _unit(0.75)
    direction_consistency_weight: float = field(default=0.2, metadata={"min": 0.0, "max": 10.0})
    direction_lookback_observations: int = field(default=3, metadata={"min": 1, "max": 100})
    fuse_confidence: bool = True
    per_class_matching: bool = False
    ego_motion_significance: float = field(default=5.0, metadata={"min": 0.0, "max": 100.0})
    confirmation_hits: int = field(default=2, metadata={"min": 1, "max": 1000})
    tentative_max_gap_seconds: float = field(default=0.1, metadata={"min": 0.0, "max": 3600.0})
    lost_track_buffer_seconds: float = field(default=2.0, metadata={"min": 0.0, "max": 3600.0})
    output_unmatched_seconds: float = field(default=0.0, metadata={"min": 0.0, "max": 3600.0})
    frame_rate: float = field(default=30.0, metadata={"gt": 0.0, "max": 10000.0})
    position_noise: float = field(default=0.27, metadata={"gt": 0.0, "max": 100.0})
    velocity_noise: float = field(default=0.5, metadata={"gt": 0.0, "max": 100.0})
    measurement_noise: float = field(default=0.05, metadata={"gt": 0.0, "max": 100.0})
    observation_centric_reupdate: bool = True
    path_horizon_seconds: float = field(default=1.0, metadata={"min": 0.0, "max": 60.0})
    path_points: int = field(default=10, metadata={"min": 0, "max": 1000})

    def __post_init__(self) -> None:
        if self.low_confidence_threshold > self.high_confidence_threshold:
            raise ConfigError("low_confidence_threshold",
                              f"must be <= high_confidence_threshold ({self.high_confidence_threshold}), "
                              f"got {self.low_confidence_threshold}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, prefix: str = "tracker") -> TrackerConfig:
        """Build from a plain mapping; unknown keys / bad values raise ConfigError naming ``prefix.key``."""
        return from_mapping(cls, data, prefix)

    @classmethod
    def from_yaml(cls, path: str | Path, prefix: str = "tracker") -> TrackerConfig:
        """Load from a YAML file whose top level holds TrackerConfig keys."""
        import yaml

        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(prefix, f"cannot read tracker config {path}: {exc.strerror}") from None
        try:
            data = load_yaml(text, f"tracker config {path}")
        except yaml.YAMLError as exc:
            raise ConfigError(prefix, f"{path} is not valid YAML: {exc}") from None
        return cls.from_dict(data, prefix)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML safe)."""
        return to_mapping(self)

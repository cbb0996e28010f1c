"""trackstream's tracker: Kalman + Hungarian multi-object tracking in pure numpy."""

from tracker.types import Detections, Tracks, TrackState

__all__ = ["Detections", "Tracks", "TrackState"]

"""trackstream's tracker: Kalman + Hungarian multi-object tracking in pure numpy."""

from tracker.config import TrackerConfig
from tracker.configutil import ConfigError
from tracker.tracker import Tracker
from tracker.types import Detections, Tracks, TrackState

__all__ = ["ConfigError", "Detections", "TrackState", "Tracker", "TrackerConfig", "Tracks"]

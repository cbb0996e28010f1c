"""What the history keeps about each track, gathered from a source's frames and events (no I/O).

``TrackBook.observe(result)`` follows the confirmed rows of every frame (last seen, frames seen, best
confidence, a downsampled path); ``TrackBook.event(doc)`` follows the events (zones entered and left with
the video time spent inside, lines crossed with direction); both return the track rows (``tracks`` table
columns) that changed enough to be written: a track is written when it starts, when it enters or leaves a
zone or crosses a line, and when it ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from pipelines.frames import FrameResult

PATH_STEP_S = 0.2   # first spacing of path points (video time); doubles each time the path is halved


@dataclass
class TrackLog:
    """One track's history so far."""

    source_id: str
    track_id: int
    class_id: int
    class_name: str
    first: tuple[float, Optional[float], Optional[float]]   # (wall time, pts, stream time)
    last: tuple[float, Optional[float], Optional[float]]
    frames_seen: int = 0
    best_confidence: float = 0.0
    zones: dict[str, dict[str, float]] = field(default_factory=dict)    # zone -> entries, seconds
    inside: dict[str, float] = field(default_factory=dict)              # zone -> pts when entered
    lines: list[dict[str, Any]] = field(default_factory=list)
    path: list[list[float]] = field(default_factory=list)               # [pts, x, y]
    path_step: float = PATH_STEP_S
    snapshot: Optional[str] = None
    snapshot_frame: Optional[str] = None
    ended: bool = False
    end_reason: Optional[str] = None

    def add_point(self, pts: float, x: float, y: float, most: int) -> None:
        if self.path and pts - self.path[-1][0] < self.path_step:
            return
        self.path.append([round(pts, 3), round(x, 1), round(y, 1)])
        if len(self.path) > most:      # keep every other point: evenly spread over the whole track
            self.path = self.path[::2]
            self.path_step *= 2

    def row(self) -> dict[str, Any]:
        """The ``tracks`` row (zone seconds include the time inside up to the last frame seen)."""
        zones = {}
        for name, tally in self.zones.items():
            seconds = tally["seconds"]
            if name in self.inside and self.last[1] is not None:
                seconds += max(0.0, self.last[1] - self.inside[name])
            zones[name] = {"entries": int(tally["entries"]), "seconds": round(seconds, 3)}
        return {"source_id": self.source_id, "track_id": self.track_id, "class_id": self.class_id,
                "class_name": self.class_name, "first_time": self.first[0], "first_pts": self.first[1],
                "first_stream_time": self.first[2], "last_time": self.last[0], "last_pts": self.last[1],
                "last_stream_time": self.last[2], "frames_seen": self.frames_seen,
                "best_confidence": round(self.best_confidence, 4), "zones": json.dumps(zones),
                "lines": json.dumps(self.lines), "path": json.dumps(self.path), "snapshot": self.snapshot,
                "snapshot_frame": self.snapshot_frame, "ended": self.ended, "end_reason": self.end_reason}


class TrackBook:
    """The ``TrackLog`` of every live track of one source."""

    def __init__(self, source_id: str, path_points: int = 64) -> None:
        self.source_id = source_id
        self.path_points = path_points
        self.live: dict[int, TrackLog] = {}

    def observe(self, result: FrameResult) -> None:
        """Follow one frame's confirmed, matched rows (a track must have started: its event made its log)."""
        t = result.tracks
        if not len(t):
            return
        frame = result.frame
        pts, wall = float(frame.pts), float(frame.capture_time)
        rows = np.flatnonzero(t.matched)
        if not rows.size:
            return
        centres = ((t.xyxy[rows, :2] + t.xyxy[rows, 2:]) / 2).tolist()
        for (cx, cy), tid, conf in zip(centres, t.track_id[rows].tolist(), t.confidence[rows].tolist()):
            log = self.live.get(int(tid))
            if log is None:
                continue
            log.last = (wall, pts, result.stream_time)
            log.frames_seen += 1
            log.best_confidence = max(log.best_confidence, float(conf))
            log.add_point(pts, cx, cy, self.path_points)

    def event(self, doc: Mapping[str, Any], stream_time: Optional[float]) -> Optional[TrackLog]:
        """Follow one event; returns the track whose row should be written now (None: nothing to write)."""
        track = doc.get("track")
        if not isinstance(track, Mapping):
            return None
        tid = int(track["id"])
        kind = doc["event"]
        pts = doc.get("pts")
        seen = (float(doc["time"]), None if pts is None else float(pts), stream_time)
        log = self.live.get(tid)
        if log is None:
            if kind == "track_ended":
                return None
            log = self.live[tid] = TrackLog(self.source_id, tid, int(track["class_id"]), str(track["class_name"]),
                                            seen, seen, frames_seen=0,
                                            best_confidence=float(track.get("confidence", 0.0)))
            box = track.get("box")
            if box and pts is not None:
                log.add_point(float(pts), (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, self.path_points)
            return log
        if kind == "zone_entered":
            tally = log.zones.setdefault(str(doc["zone"]), {"entries": 0, "seconds": 0.0})
            tally["entries"] += 1
            if pts is not None:
                log.inside[str(doc["zone"])] = float(pts)
            return log
        if kind == "zone_exited":
            self._leave(log, str(doc["zone"]), pts)
            return log
        if kind == "line_crossed":
            log.lines.append({"line": doc["line"], "direction": doc["direction"], "time": doc["time"], "pts": pts})
            return log
        if kind == "track_ended":
            for zone in list(log.inside):
                self._leave(log, zone, log.last[1])
            summary = doc.get("summary") or {}
            log.frames_seen = max(log.frames_seen, int(summary.get("frames_seen", 0)))
            log.ended, log.end_reason = True, str(doc.get("reason") or "")
            del self.live[tid]
            return log
        return None

    @staticmethod
    def _leave(log: TrackLog, zone: str, pts: Optional[float]) -> None:
        since = log.inside.pop(zone, None)
        if since is not None and pts is not None:
            tally = log.zones.setdefault(zone, {"entries": 0, "seconds": 0.0})
            tally["seconds"] += max(0.0, float(pts) - since)

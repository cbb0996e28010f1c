"""Track lifecycle, zone, line and stream events derived from successive results (pure, no I/O).

``EventGenerator`` turns the ``FrameResult``s and ``StreamStatus`` values of one source into event
documents (JSON-safe dicts, schema version 1, see ``docs/redis.md`` and
``pipelines/schemas/event.schema.json``). Any sink can use it; the Redis sink publishes them.

Lifecycle rules, from the confirmed tracks of each frame (``Tracks``):

- ``track_started``: an id appears for the first time;
- ``track_lost``: an id present in the previous frame is absent now and not in ``Tracks.removed_ids``
  (a row the tracker only predicted, ``Tracks.matched`` False, counts as absent);
- ``track_recovered``: a lost id appears again;
- ``track_ended``: an id is in ``Tracks.removed_ids`` (``reason: removed``), or is still known when the
  stream ends (``stream_ended`` status or ``close()``; ``reason: stream_ended``). It carries a summary.

A frame the detector skipped (``FrameResult.detected`` False, ``detector.schedule``) decides nothing: its
boxes are predictions, so no track is lost, recovered or started there and no zone or line event is made
(they wait for the next detected frame); only a track the tracker removed ends.
Every started track ends exactly once; ids the generator never saw are ignored when removed.
Within a frame, events come in this order: started, recovered, zone/line (per zone: entered, exited,
``zone_dwell``, ``speed_exceeded``, entry predictions and their cancellations; then per line: crossed,
``speed_exceeded``, crossing predictions and their cancellations), lost, zone exits and cancelled predictions of
ending tracks, ended.

A zone or line with ``predict_seconds`` warns before a predicted entry or crossing (``forecast.py``); the
``AnchorForecast`` of the tracker's confirmed tracks comes with each detected frame (``update(result,
forecast)``).

Zone exits carry ``dwell_seconds`` (how long the visit lasted); a zone with ``dwell_seconds`` set gives one
``zone_dwell`` event per visit when a track has been inside that long (``dwell.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pipelines.frames import (SCHEMA_VERSION, Counts, FrameResult, GroundMotion, LineCount, PendingWarning,
                              StreamStatus, ZoneCount)
from pipelines.secrets import redact_text
from pipelines.processing.classes import ClassFilter, class_label
from pipelines.processing.dwell import DwellClock
from pipelines.processing.forecast import AnchorForecast, LineForecaster, Predicted, ZoneForecaster
from pipelines.processing.speeding import ZoneSpeedWatch, too_fast
from pipelines.processing.zones import (EventsConfig, LineConfig, LineCounter, ZoneConfig, ZoneMembership,
                             anchor_points, direction_name)

__all__ = ["Counts", "EventGenerator", "EventsConfig", "LineConfig", "LineCount", "ZoneConfig", "ZoneCount",
           "EVENT_TYPES"]

EVENT_TYPES = ("track_started", "track_lost", "track_recovered", "track_ended",
               "zone_entered", "zone_exited", "zone_dwell", "speed_exceeded", "line_crossed",
               "crossing_predicted", "crossing_prediction_cancelled", "zone_entry_predicted",
               "zone_entry_prediction_cancelled",
               "stream_started", "stream_gap", "stream_resumed", "stream_ended")

Event = dict[str, Any]


class ClassTally:
    """Zone and line counts per class name, kept from the events as they are made (bounded: one entry per
    zone/line and class, plus the tracks inside a zone now)."""

    def __init__(self) -> None:
        self.zone_totals: dict[str, dict[str, list[int]]] = {}   # zone -> class -> [entries, exits]
        self.inside: dict[str, dict[int, str]] = {}              # zone -> track id -> class at entry
        self.line_totals: dict[str, dict[str, list[int]]] = {}   # line -> class -> [left_to_right, right_to_left]

    def zone(self, zone: str, tid: int, cls: str, entered: bool) -> None:
        members = self.inside.setdefault(zone, {})
        if entered:
            members[tid] = cls
        else:
            cls = members.pop(tid, cls)
        self.zone_totals.setdefault(zone, {}).setdefault(cls, [0, 0])[0 if entered else 1] += 1

    def line(self, line: str, cls: str, sign: int) -> None:
        self.line_totals.setdefault(line, {}).setdefault(cls, [0, 0])[0 if sign > 0 else 1] += 1

    def zone_counts(self, zone: str) -> dict[str, ZoneCount]:
        inside = list(self.inside.get(zone, {}).values())
        totals = self.zone_totals.get(zone, {})
        return {cls: ZoneCount(inside.count(cls), t[0], t[1]) for cls, t in sorted(totals.items())}

    def line_counts(self, line: str) -> dict[str, LineCount]:
        return {cls: LineCount(t[0], t[1]) for cls, t in sorted(self.line_totals.get(line, {}).items())}

    def state_dict(self) -> dict[str, Any]:
        return {"zones": self.zone_totals, "lines": self.line_totals,
                "inside": {z: [[tid, cls] for tid, cls in m.items()] for z, m in self.inside.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        def totals(doc: Mapping[str, Any]) -> dict[str, dict[str, list[int]]]:
            return {str(k): {str(c): [int(n[0]), int(n[1])] for c, n in v.items()} for k, v in doc.items()}
        self.zone_totals, self.line_totals = totals(state["zones"]), totals(state["lines"])
        self.inside = {str(z): {int(t): str(c) for t, c in m} for z, m in state["inside"].items()}


@dataclass
class _Seen:
    """Where and when: a frame's index, PTS (s) and wall-clock capture time (Unix s)."""

    frame_index: Optional[int]
    pts: Optional[float]
    time: float

    def doc(self) -> dict[str, Any]:
        return {"frame_index": self.frame_index, "pts": self.pts, "time": self.time}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> "_Seen":
        index, pts = doc["frame_index"], doc["pts"]
        return cls(None if index is None else int(index), None if pts is None else float(pts), float(doc["time"]))


@dataclass
class _Memo:
    """What the generator remembers about one known track."""

    first: _Seen
    last: _Seen
    class_id: int
    class_name: str
    box: list[float]
    confidence: float
    center: tuple[float, float]
    frames_seen: int = 1
    conf_sum: float = 0.0
    distance: float = 0.0
    lost: bool = False

    def track_doc(self, tid: int) -> dict[str, Any]:
        return {"id": tid, "class_id": self.class_id, "class_name": self.class_name,
                "confidence": self.confidence, "box": self.box}

    def state_doc(self) -> dict[str, Any]:
        return {"first": self.first.doc(), "last": self.last.doc(), "class_id": self.class_id,
                "class_name": self.class_name, "box": self.box, "confidence": self.confidence,
                "center": list(self.center), "frames_seen": self.frames_seen, "conf_sum": self.conf_sum,
                "distance": self.distance, "lost": self.lost}

    @classmethod
    def from_state_doc(cls, doc: Mapping[str, Any]) -> "_Memo":
        cx, cy = doc["center"]
        return cls(first=_Seen.from_doc(doc["first"]), last=_Seen.from_doc(doc["last"]),
                   class_id=int(doc["class_id"]), class_name=str(doc["class_name"]),
                   box=[float(v) for v in doc["box"]], confidence=float(doc["confidence"]),
                   center=(float(cx), float(cy)), frames_seen=int(doc["frames_seen"]),
                   conf_sum=float(doc["conf_sum"]), distance=float(doc["distance"]), lost=bool(doc["lost"]))


@dataclass
class _Rows:
    """One frame's track rows as plain Python values (boxes rounded to 0.01 px, confidence to 1e-4)."""

    boxes: list[list[float]]
    confidence: list[float]
    class_id: list[int]
    names: Mapping[int, str]


def _json_safe(detail: Mapping[str, object]) -> dict[str, Any]:
    """A status detail mapping as plain JSON values, with any URL password masked."""
    text = redact_text(json.dumps(dict(detail), default=str))
    doc: dict[str, Any] = json.loads(text)
    return doc


class EventGenerator:
    """Events of one source. Feed it every result and status in order; call ``close()`` at the end.

    Args:
        source_id: id written into every event.
        zones / lines: this source's zones and counting lines (pixels).
        config: hysteresis settings and the anchor point.
    """

    def __init__(self, source_id: str, zones: Sequence[ZoneConfig] = (), lines: Sequence[LineConfig] = (),
                 config: EventsConfig = EventsConfig()) -> None:
        self.source_id = source_id
        self._cfg = config
        self._zones = [ZoneMembership(z, config.min_frames_in_zone) for z in zones]
        self._lines = [LineCounter(ln, config.min_frames_on_side, config.line_dead_band) for ln in lines]
        self._zone_cfgs, self._line_cfgs = tuple(zones), tuple(lines)
        self._zone_classes = [ClassFilter(z.classes) for z in zones]    # classes: per zone and line
        self._line_classes = [ClassFilter(ln.classes) for ln in lines]
        self._class_names: Mapping[int, str] = {}                       # the model's, from the latest frame
        self._dwell = [DwellClock(z.dwell_seconds) for z in zones]      # visits per zone (dwell.py)
        self._zone_speed = [ZoneSpeedWatch(z.speed_limit_kmh) for z in zones]   # speed_exceeded (speeding.py)
        self._zone_forecast = [ZoneForecaster(z, config.line_dead_band, config.min_frames_in_zone)
                               if z.predict_seconds else None for z in zones]   # predictions (forecast.py)
        self._line_forecast = [LineForecaster(ln, config.line_dead_band, config.min_frames_on_side)
                               if ln.predict_seconds else None for ln in lines]
        self._known: dict[int, _Memo] = {}
        self._present: set[int] = set()
        self._last: Optional[_Seen] = None
        self.tracks_started = 0  # distinct tracks announced since the start (restored with the state)
        self._tally = ClassTally()

    # -- public verbs ---------------------------------------------------------------------------------
    @property
    def horizons(self) -> tuple[float, ...]:
        """The ``predict_seconds`` of this source's zones and lines (empty: no predictions wanted)."""
        return tuple(sorted({float(f.horizon) for f in [*self._zone_forecast, *self._line_forecast]
                             if f is not None}))

    def update(self, result: FrameResult, forecast: Optional[AnchorForecast] = None) -> list[Event]:
        """Events caused by one processed frame, in the order documented in the module docstring.

        ``forecast``: the tracks' anchors and spread at ``horizons`` (``forecast.anchor_forecast``), for the
        zones and lines that predict; None: no predictions this frame."""
        frame, t = result.frame, result.tracks
        self._class_names = result.class_names
        now = _Seen(int(frame.index), round(float(frame.pts), 6), round(float(frame.capture_time), 6))
        self._last = now
        if not result.detected:  # predicted boxes decide nothing (module docstring); removals still end
            gone = sorted(int(i) for i in t.removed_ids.tolist())
            self._present -= set(gone)
            return [event for tid in gone for event in self._end(tid, now, "removed")]
        seen = np.flatnonzero(t.matched)  # coasting rows (predicted, no detection) count as absent
        ids = [int(i) for i in t.track_id[seen].tolist()]
        boxes = np.round(t.xyxy[seen].astype(np.float64), 2)
        rows = _Rows(boxes.tolist(), np.round(t.confidence[seen].astype(np.float64), 4).tolist(),
                     [int(c) for c in t.class_id[seen].tolist()], result.class_names)
        events: list[Event] = []
        for row, tid in enumerate(ids):
            events.extend(self._observe(tid, row, rows, now))
        motion = result.measures.motion if result.measures is not None else {}   # ground speed (calibrated)
        events.extend(self._zone_line_events(ids, boxes, rows, now, motion, forecast, frame.size))
        removed = {int(i) for i in t.removed_ids.tolist()}
        for tid in sorted(self._present - set(ids) - removed):
            memo = self._known.get(tid)
            if memo is not None and not memo.lost:
                memo.lost = True
                events.append(self._event("track_lost", now, track=memo.track_doc(tid),
                                          last_seen=memo.last.doc()))
        for tid in sorted(removed):
            events.extend(self._end(tid, now, "removed"))
        self._present = set(ids) - removed
        return events

    def status(self, status: StreamStatus) -> list[Event]:
        """Events for a source status change; ``stream_ended`` first ends every known track."""
        when = _Seen(self._last.frame_index if self._last else None,
                     status.pts if status.pts is None else round(float(status.pts), 6),
                     round(float(status.wall_time), 6))
        events: list[Event] = []
        if status.kind.value == "stream_ended":
            events.extend(self.close())
        events.append(self._event(status.kind.value, when, detail=_json_safe(status.detail)))
        return events

    def close(self) -> list[Event]:
        """``track_ended`` (reason ``stream_ended``) for every track still known; the generator is reset."""
        if self._last is None:
            return []
        events: list[Event] = []
        for tid in sorted(self._known):
            events.extend(self._end(tid, self._last, "stream_ended"))
        self._present.clear()
        return events

    def counts(self) -> "Counts":
        """Zone occupancy and totals, line crossings per direction, tracks started, the warnings standing: now."""
        per_class, names = self._cfg.count_by_class, self._class_names
        pts = None if self._last is None else self._last.pts
        lost = self._lost_since()
        warnings: list[PendingWarning] = []

        def pending(ahead: "ZoneForecaster | LineForecaster | None", **where: str) -> Optional[int]:
            if ahead is None:
                return None
            items = ahead.pending(pts)
            for p in items:
                memo = self._known.get(p.track)
                detail = {"direction": direction_name(p.sign)} if "line" in where else {}
                warnings.append(PendingWarning(p.track, memo.class_name if memo is not None else "", p.seconds,
                                               p.probability, **where, **detail))
            return len(items)

        zones = {z.name: ZoneCount(z.occupancy, z.entries, z.exits,
                                   self._tally.zone_counts(z.name) if per_class else None,
                                   tuple(class_label(cfg.classes, names)), clock.summary(pts, lost),
                                   pending(ahead, zone=z.name))
                 for z, cfg, clock, ahead in zip(self._zones, self._zone_cfgs, self._dwell, self._zone_forecast)}
        lines = {ln.name: LineCount(ln.left_to_right, ln.right_to_left,
                                    self._tally.line_counts(ln.name) if per_class else None,
                                    tuple(class_label(cfg.classes, names)), pending(ahead, line=ln.name))
                 for ln, cfg, ahead in zip(self._lines, self._line_cfgs, self._line_forecast)}
        warnings.sort(key=lambda w: (w.seconds, w.track_id))
        return Counts(zones, lines, self.tracks_started, tuple(warnings))

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe: which tracks were announced (and their summaries so far), zone membership, line
        sides, every count and the standing predictions; ``load_state_dict`` continues from it without
        announcing them again."""
        return {
            "known": [[tid, memo.state_doc()] for tid, memo in self._known.items()],
            "present": sorted(self._present),
            "last": None if self._last is None else self._last.doc(),
            "tracks_started": self.tracks_started,
            "zones": {z.name: z.state_dict() for z in self._zones},
            "lines": {ln.name: ln.state_dict() for ln in self._lines},
            "by_class": self._tally.state_dict(),
            "dwell": {z.name: clock.state_dict() for z, clock in zip(self._zones, self._dwell)},
            "predictions": {"zones": {f.name: f.state_dict() for f in self._zone_forecast if f is not None},
                            "lines": {f.name: f.state_dict() for f in self._line_forecast if f is not None}},
        }

    def dwell_now(self) -> dict[int, dict[str, float]]:
        """Track id -> zone name -> seconds inside so far, for every track inside a zone now."""
        pts = None if self._last is None else self._last.pts
        out: dict[int, dict[str, float]] = {}
        lost = self._lost_since()
        for zone, clock in zip(self._zones, self._dwell):
            for tid, seconds in clock.inside(pts, lost).items():
                out.setdefault(tid, {})[zone.name] = seconds
        return out

    def _lost_since(self) -> dict[int, float]:
        """Track id -> PTS of the last frame it was seen, for the tracks not seen now (lost)."""
        return {tid: memo.last.pts for tid, memo in self._known.items() if memo.lost and memo.last.pts is not None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output. Zones and lines are matched by name; one that is new in the
        config starts empty, one that is gone is ignored. Raises KeyError/TypeError/ValueError when
        malformed (the caller turns that into one clear line)."""
        known = {int(tid): _Memo.from_state_doc(doc) for tid, doc in state["known"]}
        present = {int(tid) for tid in state["present"]}
        last = None if state["last"] is None else _Seen.from_doc(state["last"])
        started = int(state["tracks_started"])
        zones, lines = dict(state["zones"]), dict(state["lines"])
        tally = ClassTally()
        if state.get("by_class") is not None:   # absent in snapshots of the first release: starts empty
            tally.load_state_dict(state["by_class"])
        for zone in self._zones:
            if zone.name in zones:
                zone.load_state_dict(zones[zone.name])
        for line in self._lines:
            if line.name in lines:
                line.load_state_dict(lines[line.name])
        dwell = dict(state.get("dwell") or {})   # absent in snapshots of earlier releases: visits start anew
        for zone, clock in zip(self._zones, self._dwell):
            if zone.name in dwell:
                clock.load_state_dict(dwell[zone.name])
        ahead = dict(state.get("predictions") or {})   # absent in snapshots of earlier releases: none standing
        for kind, forecasters in (("zones", self._zone_forecast), ("lines", self._line_forecast)):
            saved = dict(ahead.get(kind) or {})
            for forecaster in forecasters:
                if forecaster is not None and forecaster.name in saved:
                    forecaster.load_state_dict(saved[forecaster.name])
        self._known, self._present, self._last, self.tracks_started = known, present, last, started
        self._tally = tally

    # -- internals ------------------------------------------------------------------------------------
    def _event(self, name: str, when: _Seen, **payload: Any) -> Event:
        return {"schema_version": SCHEMA_VERSION, "event": name, "source_id": self.source_id,
                **when.doc(), **payload}

    def _observe(self, tid: int, row: int, rows: "_Rows", now: _Seen) -> list[Event]:
        box, conf, cls = rows.boxes[row], rows.confidence[row], rows.class_id[row]
        name = str(rows.names.get(cls, str(cls)))
        center = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        memo = self._known.get(tid)
        if memo is None:
            memo = _Memo(first=now, last=now, class_id=cls, class_name=name, box=box,
                         confidence=conf, center=center, conf_sum=conf)
            self._known[tid] = memo
            self.tracks_started += 1
            return [self._event("track_started", now, track=memo.track_doc(tid))]
        events: list[Event] = []
        if memo.lost:
            memo.lost = False
            lost_seconds = None if memo.last.pts is None else round(float(now.pts or 0.0) - memo.last.pts, 6)
            events.append(self._event("track_recovered", now, lost_since=memo.last.doc(),
                                      lost_seconds=lost_seconds))
        memo.distance += math.hypot(center[0] - memo.center[0], center[1] - memo.center[1])
        memo.center, memo.box, memo.confidence, memo.last = center, box, conf, now
        memo.class_id, memo.class_name = cls, name
        memo.frames_seen += 1
        memo.conf_sum += conf
        for event in events:
            event["track"] = memo.track_doc(tid)
        return events

    def _zone_line_events(self, ids: list[int], boxes: np.ndarray, rows: "_Rows", now: _Seen,
                          motion: Mapping[int, GroundMotion], forecast: Optional[AnchorForecast],
                          size: tuple[int, int]) -> list[Event]:
        if not (self._zones or self._lines):
            return []
        anchors = anchor_points(boxes, self._cfg.anchor)
        point = {tid: [round(float(x), 2), round(float(y), 2)] for tid, (x, y) in zip(ids, anchors)}
        events: list[Event] = []

        def counted(classes: ClassFilter) -> tuple[list[int], np.ndarray]:   # the rows a zone or line sees
            if classes.everything:
                return ids, anchors
            keep = classes.allows(rows.class_id, rows.names)
            return [tid for tid, k in zip(ids, keep.tolist()) if k], anchors[keep]

        for zone, classes, clock, watch, ahead in zip(self._zones, self._zone_classes, self._dwell, self._zone_speed,
                                                      self._zone_forecast):
            seen_here = counted(classes)
            entered, exited = zone.update(*seen_here)
            if ahead is not None:
                for tid in entered:
                    ahead.entered(tid)
            for name, group in (("zone_entered", entered), ("zone_exited", exited)):
                for tid in group:
                    extra: dict[str, Any] = {}
                    if name == "zone_exited":
                        extra = {"reason": "moved_out", "dwell_seconds": clock.leave(tid, now.pts)}
                    else:
                        clock.enter(tid, float(now.pts or 0.0))
                    self._tally.zone(zone.name, tid, self._known[tid].class_name, name == "zone_entered")
                    events.append(self._event(name, now, zone=zone.name, point=point[tid],
                                              track=self._known[tid].track_doc(tid), **extra))
            for tid, seconds in clock.due(float(now.pts or 0.0), set(seen_here[0])):  # loitering: once per visit
                memo = self._known.get(tid)
                if memo is not None:
                    events.append(self._event("zone_dwell", now, zone=zone.name, point=point.get(tid),
                                              dwell_seconds=seconds, threshold_seconds=clock.threshold,
                                              track=memo.track_doc(tid)))
            for tid, kmh in watch.check(zone.members(), seen_here[0], motion):
                events.append(self._event("speed_exceeded", now, zone=zone.name, point=point[tid], speed_kmh=kmh,
                                          limit_kmh=watch.limit_kmh, track=self._known[tid].track_doc(tid)))
            if ahead is not None and forecast is not None:
                made, cancelled = ahead.update(seen_here[0], zone.members(), forecast, float(now.pts or 0.0))
                cancelled += ahead.left(ids, float(now.pts or 0.0), size)
                events.extend(self._predicted("zone_entry_predicted", now, p, ahead.horizon, point, zone=zone.name)
                              for p in made)
                events.extend(self._cancelled("zone_entry_prediction_cancelled", now, tid, reason, point.get(tid),
                                              zone=zone.name) for tid, _, reason in cancelled)
        for line, classes, cfg, ahead_line in zip(self._lines, self._line_classes, self._line_cfgs,
                                                  self._line_forecast):
            seen_line = counted(classes)
            for tid, sign, pt in line.update(*seen_line):
                if ahead_line is not None:
                    ahead_line.crossed(tid, sign)
                self._tally.line(line.name, self._known[tid].class_name, sign)
                events.append(self._event("line_crossed", now, line=line.name, direction=direction_name(sign),
                                          sign=sign, point=pt, track=self._known[tid].track_doc(tid)))
                fast = too_fast(motion.get(tid), cfg.speed_limit_kmh)
                if fast is not None:
                    events.append(self._event("speed_exceeded", now, line=line.name, direction=direction_name(sign),
                                              point=pt, speed_kmh=fast, limit_kmh=cfg.speed_limit_kmh,
                                              track=self._known[tid].track_doc(tid)))
            if ahead_line is not None and forecast is not None:
                made_l, cancelled_l = ahead_line.update(seen_line[0], forecast, float(now.pts or 0.0))
                cancelled_l += ahead_line.left(ids, float(now.pts or 0.0), size)
                events.extend(self._predicted("crossing_predicted", now, p, ahead_line.horizon, point, line=line.name,
                                              direction=direction_name(p.sign), sign=p.sign) for p in made_l)
                events.extend(self._cancelled("crossing_prediction_cancelled", now, tid, reason, point.get(tid),
                                              line=line.name, direction=direction_name(sign), sign=sign)
                              for tid, sign, reason in cancelled_l)
        return events

    def _predicted(self, name: str, now: _Seen, p: Predicted, horizon: float, point: Mapping[int, list[float]],
                   **where: Any) -> Event:
        return self._event(name, now, **where, point=point[p.track], **p.doc(), horizon_seconds=horizon,
                           track=self._known[p.track].track_doc(p.track))

    def _cancelled(self, name: str, now: _Seen, tid: int, reason: str, point: Optional[list[float]],
                   **where: Any) -> Event:
        memo = self._known[tid]
        return self._event(name, now, **where, point=point, reason=reason, track=memo.track_doc(tid))

    def _end(self, tid: int, now: _Seen, reason: str) -> list[Event]:
        memo = self._known.pop(tid, None)
        if memo is None:
            return []
        events: list[Event] = []
        for zone, clock in zip(self._zones, self._dwell):
            if zone.forget(tid):
                self._tally.zone(zone.name, tid, memo.class_name, entered=False)
                events.append(self._event("zone_exited", now, zone=zone.name, point=None,
                                          track=memo.track_doc(tid), reason="track_ended",
                                          dwell_seconds=clock.leave(tid, memo.last.pts)))   # until last seen
        for line in self._lines:
            line.forget(tid)
        for zone_ahead in self._zone_forecast:
            if zone_ahead is not None:
                events.extend(self._event("zone_entry_prediction_cancelled", now, zone=zone_ahead.name, point=None,
                                          reason=reason_, track=memo.track_doc(tid))
                              for _, _, reason_ in zone_ahead.forget(tid))
        for line_ahead in self._line_forecast:
            if line_ahead is not None:
                events.extend(self._event("crossing_prediction_cancelled", now, line=line_ahead.name,
                                          direction=direction_name(sign), sign=sign, point=None, reason=reason_,
                                          track=memo.track_doc(tid))
                              for _, sign, reason_ in line_ahead.forget(tid))
        summary = {
            "first_seen": memo.first.doc(),
            "last_seen": memo.last.doc(),
            "duration": None if memo.first.pts is None or memo.last.pts is None
            else round(memo.last.pts - memo.first.pts, 6),
            "frames_seen": memo.frames_seen,
            "class_id": memo.class_id,
            "class_name": memo.class_name,
            "distance": round(memo.distance, 2),
            "mean_confidence": round(memo.conf_sum / memo.frames_seen, 4),
            "last_box": memo.box,
        }
        events.append(self._event("track_ended", now, track=memo.track_doc(tid), reason=reason,
                                  summary=summary))
        return events

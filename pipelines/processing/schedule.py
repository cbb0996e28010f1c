"""The detection schedule of one source: which frames the detector runs on (``detector.schedule``).

Every frame still becomes a ``FrameResult``; a frame the detector skips is tracked by the tracker's prediction
(``Tracker.predict``: motion model; the camera shift is measured again at the next detection).

- ``every``: every frame is detected (the behaviour before schedules existed).
- ``interval:K`` / ``interval:Ss``: every K-th frame, or a frame every S seconds of video time; and the
  frame right after a detection that started a track, so the new track is confirmed (a new track has no
  velocity yet: K frames later its predicted box no longer meets the object, and it would start again and
  again, never reported).
- ``adaptive``: after each detected frame the source's processor makes a ``Plan`` from the tracker's state: when
  the next detection is due at the latest, and where the tracked objects can be until then. Due within
  ``confirm_check`` while a new track waits for confirmation (0: on the next frame; it must come before the
  tracker's ``tentative_max_gap_seconds``, or the new track is dropped); within ``lost_check`` while one is
  lost; otherwise when the prediction of some track may be off by ``travel`` of its box height (its speed plus
  twice the uncertainty of its velocity estimate, ``Tracker.velocity_spread``, large for a young track, times
  the time), at most ``max_gap`` seconds; and before any track may reach a counting line or zone edge (within
  ``events.line_dead_band`` plus ``boundary_margin`` box heights) at that speed, then at least twice as often as
  elsewhere while it is there, so a crossing is seen on detected boxes close to where ``every`` sees it; with no
  track at all, after ``quiet_check`` seconds. Between, a frame is detected when the cheap motion measure
  (``motion.py``) sees the share of the picture that changes outside the places the tracks can be grow by more
  than ``motion_share`` over what it was right after the last detection (motion the detector already looked at
  and found nothing in, such as leaves, far-away specks or a panning camera, calls it no more); a picture that
  keeps changing outside the tracks is looked at at least every ``moving_check`` seconds. A still object that
  appears without motion is found by the quiet check. Tracks that stand still by their own velocity (none would
  move ``travel`` of its box height in ``max_gap``) where nothing changes within their reach (no cell of the
  motion measure there differs from the background: parked cars, people standing), once looked at again so, are
  detected only every ``max_gap`` seconds, whatever their velocity uncertainty or a lost track asks for, since
  detecting the same picture finds the same; a new track's confirmation is never postponed. For the same reason
  the quiet check of a scene without any track (none new or lost either) waits while the picture is the one the
  last detection found nothing in (its small grey picture differs from that one in no cell by
  ``motion_threshold``), up to ``quiet_max`` seconds after that detection: a still, empty scene costs one
  detection per ``quiet_max``, and anything that changed it, moving or not, is looked at by the next check.

Counts stay exact with every schedule: zone and line events are decided on detected boxes only
(``EventGenerator.update`` ignores predicted frames), so a crossing between two detections is counted once,
at the detection that sees the track on its new side.

``DetectionSchedule.decide(pts, motion)`` is called for each frame in order by the engine before the
detector; ``observe(plan)`` by the processing thread after a detected frame (until then a file's next frame
waits, so its decisions never depend on timing, and a camera's frames are predicted). ``ScheduleState`` is
the schedule after one decision; it travels with the frame, and the processor's snapshot holds the one of
its last frame, so a resumed source continues the same schedule.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Mapping, Optional, Sequence

import numpy as np
import numpy.typing as npt

from pipelines.processing.motion import MotionMask
from pipelines.processing.zones import LineConfig, ZoneConfig, anchor_points
from tracker.configutil import ConfigError, bounds_text, broken_bound, check_bounds
from tracker.types import Tracks

Mode = Literal["every", "interval", "adaptive"]
_SPEC = re.compile(r"^(every|adaptive|interval:(\d+)|interval:(\d+(?:\.\d*)?|\.\d+)s)$")
_EPS = 1e-6
SPEC_HELP = "every, interval:K (every K-th frame), interval:Ss (every S seconds of video) or adaptive"


@dataclass(frozen=True)
class ScheduleTuning:
    """The ``schedule:`` section: how ``adaptive`` decides (seconds of video time; see the module docstring)."""

    max_gap: float = field(default=1.0, metadata={"gt": 0.0, "max": 3600.0})
    quiet_check: float = field(default=2.0, metadata={"gt": 0.0, "max": 3600.0})
    quiet_max: float = field(default=10.0, metadata={"gt": 0.0, "max": 3600.0})
    travel: float = field(default=0.15, metadata={"gt": 0.0, "max": 100.0})
    lost_check: float = field(default=0.1, metadata={"min": 0.0, "max": 3600.0})
    confirm_check: float = field(default=0.04, metadata={"min": 0.0, "max": 3600.0})
    boundary_margin: float = field(default=0.25, metadata={"min": 0.0, "max": 100.0})
    motion_share: float = field(default=0.002, metadata={"gt": 0.0, "max": 1.0})
    moving_check: float = field(default=0.12, metadata={"gt": 0.0, "max": 3600.0})
    motion_width: int = field(default=96, metadata={"min": 8, "max": 4096})
    motion_threshold: float = field(default=20.0, metadata={"gt": 0.0, "max": 255.0})

    def __post_init__(self) -> None:
        check_bounds(self, "schedule")  # also when built directly (the API), not only through from_mapping


@dataclass(frozen=True)
class Schedule:
    """One source's schedule: ``mode`` and, for ``interval``, ``frames`` or ``seconds``; ``tuning`` for adaptive."""

    mode: Mode = "every"
    frames: Optional[int] = field(default=None, metadata={"min": 1})
    seconds: Optional[float] = field(default=None, metadata={"gt": 0.0, "max": 3600.0})
    tuning: ScheduleTuning = field(default_factory=ScheduleTuning)

    @classmethod
    def parse(cls, spec: object, tuning: ScheduleTuning = ScheduleTuning(), key: str = "schedule") -> Schedule:
        """``every`` | ``interval:K`` | ``interval:Ss`` | ``adaptive``; anything else raises ``ConfigError``."""
        match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
        if match is None:
            raise ConfigError(key, f"must be {SPEC_HELP}; got {spec!r}")
        if match.group(2) is not None:
            frames = int(match.group(2))
            _check_interval(key, spec, "frames", frames)
            return cls("interval", frames=frames, tuning=tuning)
        if match.group(3) is not None:
            seconds = float(match.group(3))
            _check_interval(key, spec, "seconds", seconds)
            return cls("interval", seconds=seconds, tuning=tuning)
        return cls("adaptive" if match.group(1) == "adaptive" else "every", tuning=tuning)

    @property
    def every_frame(self) -> bool:
        """Whether every frame is detected: ``every``, and ``interval:1``, which is the same schedule and runs as
        fast (batched, on every detector copy)."""
        return self.mode == "every" or (self.mode == "interval" and self.frames == 1)

    @property
    def waits_for_plans(self) -> bool:
        """Whether a source with this schedule decides its next frame only after its last detected frame's
        plan came back (every schedule that skips frames): it never has two detector calls under way."""
        return not self.every_frame

    @property
    def spec(self) -> str:
        """The schedule as written in the config (``interval:5``, ``interval:0.5s``, ``adaptive``)."""
        if self.mode != "interval":
            return self.mode
        return f"interval:{self.frames}" if self.frames is not None else f"interval:{self.seconds:g}s"


def _check_interval(key: str, spec: object, name: str, value: float) -> None:
    """``ConfigError`` naming the form (``interval:K needs K >= 1, got ...``) when ``value`` breaks the bounds
    of the ``Schedule`` field ``name`` (``frames``, ``seconds``)."""
    bounds = next(f.metadata for f in fields(Schedule) if f.name == name)
    if broken_bound(value, bounds) is not None:
        form, letter = ("interval:K", "K") if name == "frames" else ("interval:Ss", "S")
        raise ConfigError(key, f"{form} needs {bounds_text(bounds, letter)}, got {spec!r}")


@dataclass(frozen=True)
class Plan:
    """What a detected frame tells the adaptive schedule about the frames after it.

    Attributes:
        due: stream time (s, the source's own timestamps) at which the next detection is due at the latest.
        boxes: float64 (N, 4) the places the tracked objects can be until then (pixels); motion inside
            them is explained, motion outside them asks for a detection.
        settle: the tracks stand still by their own velocity (none would move ``travel`` of its box height
            in ``max_gap``) and none waits for confirmation: in a picture where nothing changes, looking
            again may wait until ``max_gap``.
        quiet: no track at all, none new or lost: the next look is the quiet check, which waits (up to
            ``quiet_max``) while the picture is the one this detection saw.
    """

    due: float
    boxes: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 4)))
    settle: bool = False
    quiet: bool = False

    def shifted(self, offset: float) -> Plan:
        """The same plan on a clock ``offset`` seconds behind (the processor's clock vs the source's)."""
        return self if offset == 0.0 else replace(self, due=self.due - offset)


@dataclass(frozen=True)
class ScheduleState:
    """The schedule after one decision (JSON form: ``doc``)."""

    since: Optional[int] = None        # frames decided since the last detected one (None: none detected yet)
    last_pts: Optional[float] = None   # timestamp of the last detected frame
    plan: Optional[Plan] = None        # adaptive: the plan of the last detected frame, once it came back
    waiting: bool = False              # adaptive: a detected frame whose plan has not come back yet
    base: Optional[float] = None       # adaptive: unexplained motion share on the first frame of the plan
    settled: int = 0                   # adaptive: still tracks looked again at, nothing changed near them since
    seen: Optional[npt.NDArray[np.float32]] = None   # adaptive: the small grey picture of the last detected frame

    def doc(self) -> dict[str, Any]:
        plan = None if self.plan is None else {  # an infinite due (never) as null: a state file is strict JSON
            "due": None if math.isinf(self.plan.due) else self.plan.due,
            "boxes": np.round(self.plan.boxes, 2).tolist(), "settle": self.plan.settle, "quiet": self.plan.quiet}
        return {"since": self.since, "last_pts": self.last_pts, "plan": plan, "base": self.base,
                "settled": self.settled, "seen": _picture_doc(self.seen)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ScheduleState:
        """Raises KeyError/TypeError/ValueError when malformed (the processor makes that one line)."""
        raw = doc["plan"]
        plan = None if raw is None else Plan(math.inf if raw["due"] is None else float(raw["due"]),
                                             np.asarray(raw["boxes"], np.float64).reshape(-1, 4),
                                             bool(raw.get("settle", False)),  # absent before they existed
                                             bool(raw.get("quiet", False)))
        since, last, base = doc["since"], doc["last_pts"], doc.get("base")
        return cls(None if since is None else int(since), None if last is None else float(last), plan,
                   base=None if base is None else float(base), settled=int(doc.get("settled", 0)),
                   seen=_picture_from_doc(doc.get("seen")))


def _picture_doc(picture: Optional[npt.NDArray[np.float32]]) -> Optional[dict[str, Any]]:
    """A small grey picture (whole grey levels: a blurred 8-bit picture) as JSON: its shape and base64 bytes."""
    if picture is None:
        return None
    return {"shape": list(picture.shape), "grey": base64.b64encode(picture.astype(np.uint8).tobytes()).decode()}


def _picture_from_doc(doc: Optional[Mapping[str, Any]]) -> Optional[npt.NDArray[np.float32]]:
    if doc is None:
        return None
    raw = np.frombuffer(base64.b64decode(doc["grey"], validate=True), np.uint8)
    return raw.reshape([int(n) for n in doc["shape"]]).astype(np.float32)


class DetectionSchedule:
    """Decides, frame by frame, whether the detector runs (see module docstring). Not thread-safe: the
    engine calls it under its own lock."""

    def __init__(self, schedule: Schedule, state: Optional[ScheduleState] = None) -> None:
        self.schedule = schedule
        self.state = state if state is not None else ScheduleState()

    @property
    def feedback(self) -> bool:
        """Whether decisions wait for the plan of the last detected frame (``interval``, ``adaptive``)."""
        return self.schedule.waits_for_plans

    @property
    def waiting(self) -> bool:
        """A detected frame's plan has not come back: the next decision must wait for it."""
        return self.state.waiting

    def decide(self, pts: float, motion: Optional[MotionMask] = None) -> bool:
        """Whether the next frame of this source (its timestamp ``pts``, s, and its motion measure, if any)
        is detected; the state moves on either way."""
        st, sch = self.state, self.schedule
        if sch.every_frame:
            detect = True
        elif st.waiting:
            detect = False  # a camera's frame while the last detection's plan is on its way: predicted
        elif st.since is None or st.last_pts is None:
            detect = True
        elif sch.mode == "interval":
            if st.plan is not None and pts >= st.plan.due - _EPS:
                detect = True  # confirm the track the last detection started
            elif sch.frames is not None:
                detect = st.since + 1 >= sch.frames
            else:
                detect = pts - st.last_pts >= (sch.seconds or 0.0) - _EPS
        else:
            detect, st = self._adaptive(pts, motion, st)
        if detect:
            self.state = ScheduleState(0, float(pts), st.plan, waiting=self.feedback, settled=st.settled,
                                       seen=motion.grey if motion is not None else None)
        else:
            self.state = replace(st, since=st.since + 1 if st.since is not None else None)
        return detect

    def _adaptive(self, pts: float, motion: Optional[MotionMask],
                  st: ScheduleState) -> tuple[bool, ScheduleState]:
        plan = st.plan
        if plan is None:
            return True, st
        # still tracks (Plan.settle) where nothing changes within their reach (no cell there differs from the
        # background; changes elsewhere, a camera's clock, leaves, call the detector as motion does): once
        # they were looked at again so, detecting the same picture finds the same: the next look waits
        # until max_gap
        due = pts >= plan.due - _EPS
        tuning = self.schedule.tuning
        if due and plan.quiet and motion is not None and motion.same_picture(st.seen) \
                and st.last_pts is not None and pts - st.last_pts < tuning.quiet_max - _EPS:
            return False, st  # a still, empty picture unchanged since the detector last found nothing in it
        # measured only where it decides something (not on every frame between detections)
        moved = bool(st.settled or (due and plan.settle)) and (motion is None or motion.changed_within(plan.boxes))
        if moved and st.settled:
            st = replace(st, settled=0)  # something changed near them: looked at as usual again
        if due:
            still = plan.settle and not moved
            waited = st.last_pts is None or pts - st.last_pts >= self.schedule.tuning.max_gap - _EPS
            if still and st.settled and not waited:
                return False, st
            return True, replace(st, settled=st.settled + 1) if still else st
        if motion is None:
            return False, st
        share = motion.share_outside(plan.boxes)
        if st.base is None:  # the first frame after a detection: what the detector already saw
            return False, replace(st, base=share)
        if share - st.base >= tuning.motion_share:
            return True, st
        # a picture that keeps changing (a panning camera, a crowd too small to detect) brings new things into
        # view: looked at every moving_check, rather than every quiet_check
        moving = share >= tuning.motion_share and st.last_pts is not None
        return moving and pts - (st.last_pts or 0.0) >= tuning.moving_check - _EPS, st

    def observe(self, plan: Plan) -> None:
        """The plan of the last detected frame (adaptive), on the source's own clock."""
        self.state = replace(self.state, plan=plan, waiting=False, base=None)


def _segment_distance(points: npt.NDArray[np.float64], a: npt.NDArray[np.float64],
                      b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Distance (N,) of points (N, 2) to the segment a-b (pixels)."""
    d = b - a
    length2 = float(d @ d)
    t = np.zeros(len(points)) if length2 == 0.0 else np.clip((points - a) @ d / length2, 0.0, 1.0)
    nearest = a + t[:, None] * d
    dist: npt.NDArray[np.float64] = np.hypot(*(points - nearest).T)
    return dist


def boundary_distance(points: npt.NDArray[np.float64], lines: Sequence[LineConfig],
                      zones: Sequence[ZoneConfig]) -> npt.NDArray[np.float64]:
    """Distance (N,) of each point to the nearest counting line or zone edge (inf without any)."""
    out = np.full(len(points), math.inf)
    segments = [(ln.points[0], ln.points[1]) for ln in lines]
    for zone in zones:
        poly = zone.polygon
        segments += [(poly[i - 1], poly[i]) for i in range(len(poly))]
    for a, b in segments:
        out = np.minimum(out, _segment_distance(points, np.asarray(a, np.float64), np.asarray(b, np.float64)))
    return out


def confirm_plan(pts: float, pending: tuple[int, int]) -> Plan:
    """The plan of an ``interval`` schedule after a detected frame at ``pts``: the next frame when it left a
    new track waiting for confirmation, else none (``due`` infinite)."""
    return Plan(float(pts) if pending[0] else math.inf)


def plan_after(pts: float, tracks: Tracks, pending: tuple[int, int], tuning: ScheduleTuning,
               lines: Sequence[LineConfig] = (), zones: Sequence[ZoneConfig] = (), dead_band: float = 0.0,
               anchor: str = "bottom_center",
               spread: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None = None) -> Plan:
    """The plan after the detected frame at ``pts`` (see module docstring) from its ``tracks``: ``pending``
    is the tracker's
    (tentative, lost) track counts, ``lines``/``zones`` the source's boundaries, ``dead_band`` the lines',
    ``spread`` the tracker's ``velocity_spread()`` (track ids, px/s)."""
    now = float(pts)
    tentative, lost = pending
    if tentative and tuning.confirm_check <= 0.0:
        return Plan(now, np.zeros((0, 4)))  # confirm (or drop) the new track on the next frame
    if len(tracks) == 0:
        gap = tuning.lost_check if lost else tuning.quiet_check
        return Plan(now + (min(gap, tuning.confirm_check) if tentative else gap), np.zeros((0, 4)),
                    quiet=not tentative and not lost)
    boxes = tracks.xyxy.astype(np.float64)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    speed = np.hypot(*tracks.velocity.astype(np.float64).T)
    settle = not tentative and bool(np.all(speed * tuning.max_gap <= tuning.travel * height))
    if spread is not None and len(spread[0]):
        order = np.argsort(spread[0])
        at = np.clip(np.searchsorted(spread[0], tracks.track_id, sorter=order), 0, len(order) - 1)
        known = spread[0][order[at]] == tracks.track_id
        speed = speed + np.where(known, 2.0 * spread[1][order[at]], 0.0)
    speed = np.maximum(speed, 1e-6)
    gap = min(tuning.max_gap, float(np.min(tuning.travel * height / speed)))
    if lost:
        gap = min(gap, tuning.lost_check)
    if tentative:
        gap = min(gap, tuning.confirm_check)
    if lines or zones:
        distance = boundary_distance(anchor_points(boxes, anchor), lines, zones)
        margin = dead_band + tuning.boundary_margin * height
        reach = np.maximum(distance - margin, 0.0) / speed  # until it may be at the boundary
        gap = min(gap, float(np.min(np.maximum(reach, 0.5 * tuning.travel * height / speed))))
    reach = speed * gap + tuning.travel * height  # how far each object can get before the next detection
    area = boxes + np.stack([-reach, -reach, reach, reach], axis=1)
    return Plan(now + gap, area, settle)

"""The detection and tracking settings a snapshot was saved with, and what a resume with other ones means.

A snapshot records ``settings`` (``run_settings``): the model, ``imgsz``, ``conf``, ``iou``, ``max_det``,
``classes``, the source's ``vid_stride``/``max_fps``, its detection schedule, its tracker and event settings,
its zones and lines. ``compare`` sorts what differs at a resume:

- **moved**: a zone or line kept under its name with another polygon or other points. The saved counts, the
  tracks inside each zone and the side of each line every track is on belong to the old place
  (``EventGenerator.load_state_dict`` matches them by name): resumed as they are, the old line's counts would
  carry on, and the tracks that the move alone put on the other side would be counted as crossing. So the
  resume goes on, but a moved zone or line starts as a new one does (``forget_places`` drops its saved state:
  counts from 0, tracks inside and sides taken afresh), and the warning says so. A camera whose zone an operator
  adjusts is restarted with its other zones, lines and tracks kept.
- **changed**: everything else, as ``key old -> new``. The saved state stays meaningful (a zone or line added
  counts from the resume on, one removed stops; frames are indexed by their decode index whatever the stride,
  and the tracker runs on timestamps, not frame counts), but the outputs the resume appends to mix both
  settings: the runner warns in one line per source.

The model is compared by what it is, not where it is read from: ``model_content`` holds its size and SHA-256
(``model_identity``; an exported model folder's over its files), ``model`` its real path for the message (None:
the bundled demo model). The same weights moved, copied under another name or read on another machine (a Ray
node resuming a camera) are the same model; other weights under the same name are not. A snapshot of a release
that recorded the path alone is compared by the file's name: the same name on another path says nothing.

A model that is a URL is kept without its user-info and with credential-like query values masked: no secret
reaches the snapshot or a message. A snapshot without ``settings`` (an earlier trackstream) is not compared.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from pipelines.detection.model_identity import model_fingerprint
from pipelines.errors import UserError
from pipelines.processing.schedule import Schedule
from pipelines.secrets import redact_url, strip_credentials
from pipelines.settings import SourceSettings

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig

DEMO_MODEL = "the bundled demo model"
SCALARS = ("imgsz", "conf", "iou", "max_det", "classes", "vid_stride", "max_fps", "schedule")
GROUPS = ("schedule_tuning", "tracker", "events")   # compared key by key
PLACES = (("zones", "zone", "polygon"), ("lines", "line", "points"))   # section, noun, the geometry's key


def _model(model: Optional[str]) -> Optional[str]:
    """The model as named in messages: a local file or folder by its real path, a URL without credentials, None
    for the bundled demo model."""
    if model is None:
        return None
    if os.path.exists(os.path.expanduser(model)):
        return os.path.realpath(os.path.expanduser(model))
    return redact_url(strip_credentials(model))


def _model_content(model: Optional[str]) -> Optional[dict[str, object]]:
    """The model's size and SHA-256 (``model_fingerprint``); None for a URL or a name that is no local file."""
    if model is None:
        from pipelines.assets import demo_pose_model

        try:
            return model_fingerprint(demo_pose_model())
        except UserError:   # not installed: the run says so when it loads the model
            return None
    return model_fingerprint(Path(model).expanduser())


def _schedule(schedule: Schedule) -> str:
    if schedule.mode != "interval":
        return schedule.mode
    return f"interval:{schedule.frames}" if schedule.frames is not None else f"interval:{schedule.seconds:g}s"


def run_settings(config: "PipelineConfig", settings: SourceSettings) -> dict[str, Any]:
    """The settings of ``settings``' source in a run of ``config`` that a snapshot records (JSON-safe)."""
    detector = config.detector
    doc: dict[str, Any] = {
        "model": _model(detector.model), "model_content": _model_content(detector.model),
        "imgsz": detector.imgsz, "conf": detector.conf, "iou": detector.iou,
        "max_det": detector.max_det, "classes": None if detector.classes is None else list(detector.classes),
        "vid_stride": settings.options.vid_stride, "max_fps": settings.options.max_fps,
        "schedule": _schedule(settings.schedule),
        "tracker": dataclasses.asdict(settings.tracker), "events": dataclasses.asdict(settings.events),
        "zones": {z.name: dataclasses.asdict(z) for z in settings.zones},
        "lines": {ln.name: dataclasses.asdict(ln) for ln in settings.lines},
    }
    if settings.schedule.mode == "adaptive":   # its tuning decides nothing for the other modes
        doc["schedule_tuning"] = dataclasses.asdict(settings.schedule.tuning)
    normal: dict[str, Any] = json.loads(json.dumps(doc, default=str))   # tuples as lists, as a saved one reads
    return normal


def _shown(key: str, value: Any, other: Any) -> str:
    if key == "model":
        if value is None:
            return DEMO_MODEL
        name = os.path.basename(str(value))
        return name if other is None or name != os.path.basename(str(other)) else str(value)
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _change(key: str, old: Any, new: Any) -> str:
    return f"{key} {_shown(key, old, new)} -> {_shown(key, new, old)}"


def _model_change(saved: Mapping[str, Any], current: Mapping[str, Any]) -> Optional[str]:
    """How the model differs from the saved run's, None when it is the same model: by content where both runs
    recorded it, by the file's name where the snapshot holds the path alone (an earlier release: a path of
    another machine or folder says nothing), else by name or URL."""
    if "model" not in saved:
        return None
    old, new = saved["model"], current.get("model")
    if "model_content" not in saved:
        same = old == new or (isinstance(old, str) and isinstance(new, str)
                              and os.path.basename(old) == os.path.basename(new))
    elif saved["model_content"] is not None and current.get("model_content") is not None:
        same = saved["model_content"] == current.get("model_content")
    else:
        same = old == new
    if same:
        return None
    if old == new:   # the file at that path was replaced
        return f"model {_shown('model', new, None)} (its content changed)"
    return _change("model", old, new)


Place = tuple[str, str]
"""A zone or line: (``zone`` or ``line``, its name)."""


def compare(saved: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[list[Place], list[str]]:
    """``(moved, changed)`` between the settings a snapshot recorded and this run's: ``moved`` holds each zone
    or line whose geometry changed (``("zone", "door")``); ``changed`` says each difference (``imgsz 640 ->
    320``, ``zone door moved ...``). A key the snapshot does not hold (saved by a release that did not record it) is
    not compared."""
    moved: list[Place] = []
    model = _model_change(saved, current)
    changed = [] if model is None else [model]
    changed += [_change(k, saved[k], current.get(k)) for k in SCALARS if k in saved and saved[k] != current.get(k)]
    for group in GROUPS:
        old, new = saved.get(group), current.get(group)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [_change(f"{group}.{k}", old[k], new.get(k)) for k in old if k in new and old[k] != new[k]]
    for section, noun, geometry in PLACES:
        old, new = saved.get(section), current.get(section)
        if not isinstance(old, dict) or not isinstance(new, dict):
            continue
        for name in old:
            if name not in new:
                changed.append(f"{noun} {name} removed")
            elif not isinstance(old[name], dict):   # not as this release records it: nothing to compare
                continue
            elif old[name].get(geometry) != new[name].get(geometry):
                moved.append((noun, name))
                changed.append(f"{noun} {name} moved (it counts from 0 at the resume)")
            else:
                changed += [_change(f"{noun} {name} {k}", v, new[name].get(k)) for k, v in old[name].items()
                            if k != geometry and k in new[name] and v != new[name][k]]
        changed += [f"{noun} {name} added (counts from the resume on)" for name in new if name not in old]
    return moved, changed


def forget_places(processor_state: Mapping[str, Any], moved: Sequence[Place]) -> dict[str, Any]:
    """``processor_state`` (a snapshot's ``processor``) without the saved state of the zones and lines in
    ``moved`` (``compare``'s): each then starts as a zone or line new in the config does."""
    def without(doc: Any, gone: set[str]) -> dict[str, Any]:
        return {k: v for k, v in dict(doc or {}).items() if k not in gone}

    state = dict(processor_state)
    events = dict(state.get("events") or {})
    for section, noun, _ in PLACES:
        gone = {name for kind, name in moved if kind == noun}
        if not gone:
            continue
        events[section] = without(events.get(section), gone)
        if section == "zones" and events.get("dwell") is not None:
            events["dwell"] = without(events["dwell"], gone)
        ahead = events.get("predictions")
        if isinstance(ahead, dict) and isinstance(ahead.get(section), dict):
            events["predictions"] = {**ahead, section: without(ahead[section], gone)}
        tally = events.get("by_class")   # the counts per class
        if isinstance(tally, dict):
            tally = {**tally, section: without(tally.get(section), gone)}
            if section == "zones":
                tally["inside"] = without(tally.get("inside"), gone)
            events["by_class"] = tally
    state["events"] = events
    return state

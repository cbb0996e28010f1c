"""The MQTT topic layout of one source, the payloads of its retained topics, and Home Assistant discovery.

Topics (``<prefix>`` is ``mqtt.topic_prefix`` or the URL's path; ``<source>``, ``<zone>`` and ``<line>`` are
the ids and names with characters outside ``A-Za-z0-9_-`` replaced by ``_``, the characters Home Assistant
accepts in a discovery topic; see ``docs/mqtt.md``):

- ``<prefix>/<source>/events``: every event document, not retained;
- ``<prefix>/<source>/zones/<zone>``, ``<prefix>/<source>/lines/<line>``: retained counts (and the predicted
  entries / crossings standing, where ``predict_seconds`` is set), on change;
- ``<prefix>/<source>/state``: retained ``online`` / ``reconnecting`` / ``offline`` (also the last will);
- ``<prefix>/<source>/tracks``: optional summary of the tracks of a frame, not retained;
- ``<discovery_prefix>/sensor/<node>/<object>/config``: retained Home Assistant discovery configs.

Payload schemas: ``pipelines/schemas/mqtt_*.schema.json`` (version 1, like the Redis ones).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from pipelines.errors import UserError
from pipelines.frames import SCHEMA_VERSION, FrameResult, LineCount, ZoneCount
from pipelines.sinks.mqtt_conn import topic_clash, topic_part  # the config section checks topics with them too

__all__ = ["Topics", "When", "discovery_configs", "line_doc", "topic_part", "tracks_doc", "when_of", "zone_doc"]

STATES = ("online", "reconnecting", "offline")


def _unique_parts(names: Sequence[str], what: str) -> dict[str, str]:
    """name -> topic level; UserError when two names map to the same level."""
    clash = topic_clash(names)
    if clash is not None:
        other, name, part = clash
        raise UserError(f"MQTT: {what} {other!r} and {name!r} would share the topic level {part!r}; rename one")
    return {name: topic_part(name) for name in names}


@dataclass(frozen=True)
class Topics:
    """The topics of one source."""

    prefix: str
    source: str                  # topic level of the source id
    zones: Mapping[str, str]     # zone name -> topic
    lines: Mapping[str, str]     # line name -> topic

    @classmethod
    def of(cls, prefix: str, source_id: str, zones: Sequence[str], lines: Sequence[str]) -> "Topics":
        base = f"{prefix}/{topic_part(source_id)}"
        return cls(prefix, topic_part(source_id),
                   {n: f"{base}/zones/{p}" for n, p in _unique_parts(zones, "zones").items()},
                   {n: f"{base}/lines/{p}" for n, p in _unique_parts(lines, "lines").items()})

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.source}"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def tracks(self) -> str:
        return f"{self.base}/tracks"


When = Mapping[str, Any]
"""When a count changed: ``{"frame_index", "pts", "time"}`` of the frame (or of the event) that changed it."""


def when_of(result: FrameResult) -> When:
    """The ``When`` of a processed frame."""
    f = result.frame
    return {"frame_index": f.index, "pts": round(f.pts, 6), "time": round(f.capture_time, 6)}


def _when(when: "FrameResult | When") -> dict[str, Any]:
    doc = when_of(when) if isinstance(when, FrameResult) else when
    return {"frame_index": doc["frame_index"], "pts": doc["pts"], "time": doc["time"]}


def zone_doc(source_id: str, name: str, count: ZoneCount, result: "FrameResult | When") -> dict[str, Any]:
    """Retained payload of a zone: tracks inside now, entries and exits since the start, dwell times, and (a
    zone with ``predict_seconds``) the predicted entries standing."""
    doc = {"schema_version": SCHEMA_VERSION, "source_id": source_id, "zone": name, "occupancy": count.occupancy,
           "entries": count.entries, "exits": count.exits, **_when(result)}
    if count.by_class is not None:     # count_by_class: {} until the zone counts someone
        doc["by_class"] = {cls: {"occupancy": c.occupancy, "entries": c.entries, "exits": c.exits}
                           for cls, c in count.by_class.items()}
    if count.classes:
        doc["classes"] = list(count.classes)
    if count.dwell is not None:
        doc["dwell"] = count.dwell.doc()
    if count.predicted is not None:
        doc["predicted_pending"] = count.predicted
    return doc


def line_doc(source_id: str, name: str, count: LineCount, result: "FrameResult | When") -> dict[str, Any]:
    """Retained payload of a counting line: crossings per direction since the start, their sum, and (a line with
    ``predict_seconds``) the predicted crossings standing."""
    doc = {"schema_version": SCHEMA_VERSION, "source_id": source_id, "line": name,
           "left_to_right": count.left_to_right, "right_to_left": count.right_to_left,
           "total": count.left_to_right + count.right_to_left, **_when(result)}
    if count.by_class is not None:     # count_by_class: {} until the line counts a crossing
        doc["by_class"] = {cls: {"left_to_right": c.left_to_right, "right_to_left": c.right_to_left,
                                 "total": c.left_to_right + c.right_to_left} for cls, c in count.by_class.items()}
    if count.classes:
        doc["classes"] = list(count.classes)
    if count.predicted is not None:
        doc["predicted_pending"] = count.predicted
    return doc


def tracks_doc(source_id: str, result: FrameResult) -> dict[str, Any]:
    """Summary of a frame's confirmed tracks: how many (in all and per class), and each one's id and box
    (``predicted`` on a box the tracker predicted); ``detected``: whether the detector ran on the frame."""
    t = result.tracks
    names = [str(result.class_names.get(int(c), int(c))) for c in t.class_id.tolist()]
    by_class: dict[str, int] = {}
    for name in names:
        by_class[name] = by_class.get(name, 0) + 1
    tracks = [{"id": int(tid), "class_name": name, "confidence": round(float(conf), 4),
               "box": [round(float(v), 1) for v in box], **({} if seen else {"predicted": True})}
              for tid, name, conf, box, seen in zip(t.track_id.tolist(), names, t.confidence.tolist(),
                                                    t.xyxy.tolist(), t.matched.tolist())]
    return {"schema_version": SCHEMA_VERSION, "source_id": source_id, **_when(result),
            "detected": bool(result.detected), "count": len(tracks),
            "by_class": by_class, "tracks": tracks}


# -- Home Assistant discovery -------------------------------------------------------------------------------
_AVAILABLE = "{{ 'online' if value == 'online' else 'offline' }}"   # reconnecting: unavailable too

_ZONE_SENSORS = (("occupancy", "occupancy", "measurement", "mdi:account-group"),
                 ("entries", "entries", "total_increasing", "mdi:login"),
                 ("exits", "exits", "total_increasing", "mdi:logout"))
_LINE_SENSORS = (("left_to_right", "left to right", "total_increasing", "mdi:arrow-right-bold"),
                 ("right_to_left", "right to left", "total_increasing", "mdi:arrow-left-bold"),
                 ("total", "crossings", "total_increasing", "mdi:swap-horizontal-bold"))
# zones and lines with predict_seconds: the warnings standing now
_ZONE_PREDICTED = ("predicted_pending", "predicted entries pending", "measurement", "mdi:clock-alert-outline")
_LINE_PREDICTED = ("predicted_pending", "predicted crossings pending", "measurement", "mdi:clock-alert-outline")


def discovery_configs(topics: Topics, source_id: str, discovery_prefix: str, version: str,
                      with_tracks: bool, classes: Optional[Mapping[str, Sequence[str]]] = None,
                      predicting: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """Retained discovery topic -> config of every sensor of one source (one Home Assistant device).

    Zone sensors: occupancy (``measurement``), entries and exits (``total_increasing``); line sensors: each
    direction and their total; with the tracks topic, the number of tracks in view. Each has a unique id
    built from the prefix, source and object, and its availability follows the state topic (``online``
    available; ``reconnecting`` and ``offline`` not). ``classes``: zone or line name -> the classes it counts
    (its ``classes:``), named in the sensor's name (``road crossings (car, truck)``). ``predicting``: the zones
    and lines with ``predict_seconds``; each gets one more sensor, the warnings standing now (``gate predicted
    crossings pending``, ``shop predicted entries pending``)."""
    node = topic_part(f"{topics.prefix}_{topics.source}")
    device = {"identifiers": [node], "name": f"trackstream {source_id}", "manufacturer": "trackstream",
              "model": "video tracking source", "sw_version": version}
    origin = {"name": "trackstream", "sw_version": version}
    configs: dict[str, dict[str, Any]] = {}

    def add(obj: str, name: str, state_topic: str, key: Optional[str], state_class: str, icon: str) -> None:
        object_id = topic_part(obj)
        config: dict[str, Any] = {
            "unique_id": f"{node}_{object_id}", "name": name, "state_topic": state_topic,
            "availability_topic": topics.state, "availability_template": _AVAILABLE,
            "state_class": state_class, "icon": icon, "device": device, "origin": origin}
        if key is not None:
            config["value_template"] = f"{{{{ value_json.{key} }}}}"
        configs[f"{discovery_prefix}/sensor/{node}/{object_id}/config"] = config

    def only(name: str) -> str:
        some = (classes or {}).get(name)
        return f" ({', '.join(some)})" if some else ""

    for zone, topic in topics.zones.items():
        for key, label, state_class, icon in (*_ZONE_SENSORS, *([_ZONE_PREDICTED] if zone in predicting else [])):
            add(f"zone_{topic.rsplit('/', 1)[1]}_{key}", f"{zone} {label}{only(zone)}", topic, key, state_class, icon)
    for line, topic in topics.lines.items():
        for key, label, state_class, icon in (*_LINE_SENSORS, *([_LINE_PREDICTED] if line in predicting else [])):
            add(f"line_{topic.rsplit('/', 1)[1]}_{key}", f"{line} {label}{only(line)}", topic, key, state_class, icon)
    if with_tracks:
        add("tracks", "tracks in view", topics.tracks, "count", "measurement", "mdi:motion-sensor")
    return configs

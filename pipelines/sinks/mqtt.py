"""The MQTT sink: one source's events, zone and line counts, state and (optionally) tracks on an MQTT broker,
with Home Assistant discovery.

Topics and payloads: ``pipelines/sinks/mqtt_topics.py`` and ``docs/mqtt.md``. Each source has its own
connection (``MqttPublisher``) so its retained last will marks exactly that source ``offline`` when the
process vanishes. ``write``/``status`` only build messages and queue them; a background thread does all
network I/O, so a slow or dead broker never blocks the pipeline.

The state topic follows the source: ``online`` on ``stream_started``/``stream_resumed`` (and at the first
frame), ``reconnecting`` on ``stream_gap``, ``offline`` on ``stream_ended``, when the source's lane closes,
and as the last will.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Optional

from pipelines.errors import UserError
from pipelines.frames import Counts, Event, FrameResult, StatusKind, StreamStatus
from pipelines.sinks.publisher import PublisherCounters
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry
from pipelines.sinks.jsonl import encode_record
from pipelines.sinks.mqtt_conn import MqttConfig, check_reachable, describe
from pipelines.sinks.mqtt_publisher import Message, MqttPublisher
from pipelines.sinks.mqtt_topics import Topics, When, discovery_configs, line_doc, tracks_doc, when_of, zone_doc
from pipelines.version import __version__

__all__ = ["ENTRY", "MqttConfig", "MqttSink", "check_reachable"]

log = logging.getLogger("trackstream.mqtt")

_STATE_OF = {StatusKind.STARTED: "online", StatusKind.RESUMED: "online", StatusKind.GAP: "reconnecting",
             StatusKind.ENDED: "offline", StatusKind.CLOSED: "offline"}


try:  # orjson: the same JSON values as the --events file (json.dumps), written several times faster
    import orjson

    def _json(doc: dict[str, Any]) -> bytes:
        return orjson.dumps(doc)
except ImportError:  # pragma: no cover - orjson is a declared dependency; stay usable without it
    def _json(doc: dict[str, Any]) -> bytes:
        return encode_record(doc).encode()


class MqttSink(PublisherCounters):
    """Publish one source's events, counts and state to an MQTT broker.

    Args:
        config: the ``mqtt:`` section; ``config.url`` must be set.
        source_id: the source's id (in topics and payloads).
        zones / lines: names of the source's zones and counting lines (their retained topics and sensors).
        classes: zone or line name -> the classes it counts (``classes:``; named in the sensors' names).
        predicting: the zones and lines with ``predict_seconds``: their retained counts carry the warnings
            standing (``predicted_pending``) and discovery adds a sensor for it.

    Raises:
        UserError: two zone (or line) names would share a topic level.
    """

    _publisher: MqttPublisher

    def __init__(self, config: MqttConfig, source_id: str, zones: Sequence[str] = (),
                 lines: Sequence[str] = (), classes: Optional[Mapping[str, Sequence[str]]] = None,
                 predicting: Collection[str] = ()) -> None:
        if not config.url:
            raise UserError("the MQTT sink needs a URL (--mqtt URL or mqtt.url in the config)")
        self.source_id = source_id
        self.topics = Topics.of(config.prefix, source_id, zones, lines)
        self._cfg = config
        self._qos = config.qos
        self._state: Optional[str] = None
        self._counts: dict[str, tuple[int, ...]] = {}   # topic -> the counts last published there
        self._next_tracks: Optional[float] = None       # pts of the next tracks summary
        self._closed = False
        self._publisher = MqttPublisher(config, (self.topics.state, b"offline"), client_name=self.topics.source)
        if config.discovery:
            for topic, doc in discovery_configs(self.topics, source_id, config.discovery_prefix, __version__,
                                                config.tracks_interval is not None, classes, predicting).items():
                self._publisher.publish(Message(topic, _json(doc), self._qos, True))
        log.info("publishing %s to the MQTT broker at %s under %s/%s", source_id, describe(config.url),
                 self.topics.base, "#" if not config.discovery else "# (with Home Assistant discovery)")

    def write(self, result: FrameResult) -> None:
        """Queue the frame's events, changed counts and (when due) the tracks summary; never waits."""
        if self._state is None:
            self._set_state("online")
        self._put_events(result.events)
        if result.counts is not None:
            self._put_counts(result.counts, when_of(result))
        if self._cfg.tracks_interval is not None:
            self._put_tracks(result)

    def status(self, status: StreamStatus) -> None:
        """Queue the events of a stream status change, the counts they changed (tracks ended by the end of
        the stream leave their zones) and the source's new state."""
        self._put_events(status.events)
        if status.counts is not None and status.events:
            last = status.events[-1]     # every event of a status carries the source's last frame and pts
            self._put_counts(status.counts, {"frame_index": last.get("frame_index"), "pts": last.get("pts"),
                                             "time": last.get("time", status.wall_time)})
        state = _STATE_OF.get(status.kind)
        if state is not None:
            self._set_state(state)

    def position(self) -> None:
        """Messages are not continued from a saved state (retained counts are simply published again)."""
        return None

    def close(self) -> None:
        """Mark the source ``offline``, deliver what is buffered (up to ``flush_timeout`` s), disconnect."""
        if self._closed:
            return
        self._set_state("offline")
        self._closed = True
        self._publisher.close(self._cfg.flush_timeout)   # it says in one line what could not be delivered

    # -- messages -------------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self._state and not self._closed:
            self._state = state
            self._publisher.publish(Message(self.topics.state, state.encode(), self._qos, True))

    def _put_events(self, events: "Sequence[Event]") -> None:
        for event in events:
            doc = dict(event)
            if doc.get("source_id") != self.source_id:
                doc["source_id"] = self.source_id
            self._publisher.publish(Message(self.topics.events, _json(doc), self._qos, False))

    def _put_counts(self, counts: "Counts", when: When) -> None:
        """Retain the zone and line counts that changed since they were last published."""
        for name, zone in counts.zones.items():
            topic = self.topics.zones.get(name)     # None: a name not in the settings (skipped)
            if topic is not None and self._changed(topic, (zone.occupancy, zone.entries, zone.exits,
                                                           zone.predicted or 0)):
                self._retain(topic, zone_doc(self.source_id, name, zone, when))
        for name, line in counts.lines.items():
            topic = self.topics.lines.get(name)
            if topic is not None and self._changed(topic, (line.left_to_right, line.right_to_left,
                                                           line.predicted or 0)):
                self._retain(topic, line_doc(self.source_id, name, line, when))

    def _changed(self, topic: str, values: tuple[int, ...]) -> bool:
        """Whether ``values`` differ from the counts last published on ``topic`` (remembered if so)."""
        if self._counts.get(topic) == values:
            return False
        self._counts[topic] = values
        return True

    def _retain(self, topic: str, doc: dict[str, Any]) -> None:
        self._publisher.publish(Message(topic, _json(doc), self._qos, True))

    def _put_tracks(self, result: FrameResult) -> None:
        pts, interval = result.frame.pts, self._cfg.tracks_interval or 0.0
        due = self._next_tracks
        if due is not None and due - interval <= pts < due - 1e-6:
            return                                        # not due yet (a pts that went back resets the clock)
        self._next_tracks = pts + interval
        self._publisher.publish(Message(self.topics.tracks, _json(tracks_doc(self.source_id, result)), 0, False))


def _build(ctx: SinkContext) -> MqttSink:
    zones, lines = ctx.settings.zones, ctx.settings.lines
    classes = {z.name: [str(c) for c in z.classes] for z in zones if z.classes}
    classes.update({ln.name: [str(c) for c in ln.classes] for ln in lines if ln.classes})
    predicting = [z.name for z in zones if z.predict_seconds] + [ln.name for ln in lines if ln.predict_seconds]
    return MqttSink(ctx.config.mqtt, ctx.settings.id, [z.name for z in zones], [ln.name for ln in lines], classes,
                    predicting)


ENTRY = SinkEntry("mqtt", DropPolicy.DROP_OLDEST, lambda config: bool(config.mqtt.url), _build)

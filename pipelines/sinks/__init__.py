"""Sinks: where output values go. Each is registered here by name with its drop policy.

Adding a sink is one module (a class with ``write``/``status``/``position``/``close`` and an ``ENTRY``), one
line in ``REGISTRY`` and its config section. ``build_sinks`` makes the sinks a run wants for one source.

Drop policies (what happens when a sink falls behind; see ``pipelines/engine/sinkqueue.py``):

- ``block``: files. The engine waits for the sink: nothing is ever lost.
- ``drop_oldest``: network sinks and live viewers. The oldest waiting frame is dropped and counted, so a
  slow server never holds back the camera or the other sinks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

from pipelines.sinks.base import BuiltSink, DropPolicy, SinkContext, SinkEntry, output_path
from pipelines.sinks.events_file import ENTRY as EVENTS_FILE
from pipelines.sinks.heatmap_file import ENTRY as HEATMAP
from pipelines.sinks.jsonl import ENTRY as JSONL
from pipelines.sinks.mot import ENTRY as MOT
from pipelines.sinks.mqtt import ENTRY as MQTT
from pipelines.sinks.redis_sink import ENTRY as REDIS
from pipelines.sinks.store import ENTRY as STORE
from pipelines.sinks.video import ENTRY as VIDEO
from pipelines.sinks.viewer import ENTRY as VIEWER

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig
    from pipelines.settings import SourceSettings

__all__ = ["BuiltSink", "DropPolicy", "REGISTRY", "SinkContext", "SinkEntry", "build_sinks", "output_path",
           "wanted_sinks"]

REGISTRY: tuple[SinkEntry, ...] = (VIDEO, JSONL, MOT, EVENTS_FILE, HEATMAP, REDIS, MQTT, VIEWER, STORE)


def wanted_sinks(config: "PipelineConfig") -> list[SinkEntry]:
    """The registered sinks this config switches on, in registry order."""
    return [entry for entry in REGISTRY if entry.wanted(config)]


def build_sinks(config: "PipelineConfig", settings: "SourceSettings", fps: Optional[float],
                size: tuple[int, int], resume: Optional[Mapping[str, Mapping[str, object]]] = None) -> list[BuiltSink]:
    """The sinks of one source, in registry order (annotated video, JSONL, MOT, events, heatmap, Redis, MQTT,
    viewer, store).

    Args:
        config: the pipeline config (``output``, ``overlay``, ``redis`` sections).
        settings: the source's settings (its id names the outputs).
        fps: frame rate of the processed frames (None: unknown; the video sink picks a default).
        size: (width, height) of the frames in pixels.
        resume: saved output positions by sink name (``--state``), to continue earlier outputs.

    Raises OutputError (one line) when a file cannot be created, UserError when Redis is unreachable and
    ``redis.on_unreachable`` is ``fail``. Sinks already made are closed first.
    """
    built: list[BuiltSink] = []
    try:
        for entry in wanted_sinks(config):
            context = SinkContext(config, settings, fps, size, len(config.sources) > 1,
                                  (resume or {}).get(entry.name))
            built.append(BuiltSink(entry.name, entry.policy, entry.build(context), entry.drops_lose_data))
    except BaseException:
        for made in built:
            made.sink.close()
        raise
    return built

"""Sinks: where results go. ``build_sinks`` makes the sinks of one source from the ``output`` config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from pipelines.frames import Sink

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig

__all__ = ["build_sinks", "output_path", "zones_and_lines"]




def output_path(template: str, source_id: str, several_sources: bool) -> str:
    """The output path of one source: ``{source}`` in ``template`` becomes the source id.

    With several sources and no ``{source}`` in the template, ``_<id>`` is added before the suffix
    (``out.mp4`` -> ``out_cam1.mp4``) so sources never overwrite each other's files. Characters of the id
    that do not belong in a file name (``/``, ``:`` of an id derived from a camera URL) become ``_``.
    """
    source_id = re.sub(r"[^A-Za-z0-9._-]+", "_", source_id).strip("._") or "source"
    if "{source}" in template:
        return template.replace("{source}", source_id)
    if not several_sources:
        return template
    path = Path(template)
    return str(path.with_name(f"{path.stem}_{source_id}{path.suffix}"))


def build_sinks(config: PipelineConfig, source_id: str, fps: Optional[float],
                size: tuple[int, int]) -> list[Sink]:
    """The sinks of one source, in the order: annotated video, JSONL, MOT, Redis.

    Args:
        config: pipeline config (``output``, ``overlay``, ``redis``, ``zones``/``lines``/``events`` are used).
        source_id: id of the source (used in paths with several sources).
        fps: frame rate of the processed frames (None: unknown; the video sink picks a default).
        size: (width, height) of the frames in pixels.

    Raises OutputError (one line) when a file cannot be created, UserError when Redis is unreachable and
    ``redis.on_unreachable`` is ``fail``.
    """
    out = config.output
    several = len(config.sources) > 1
    sinks: list[Sink] = []
    if out.video:
        from pipelines.sinks.video import AnnotatedVideoSink

        sinks.append(AnnotatedVideoSink(output_path(out.video, source_id, several), fps, size,
                                        config.overlay, codec=out.video_codec, crf=out.video_crf,
                                        preset=out.video_preset))
    if out.jsonl:
        from pipelines.sinks.jsonl import JsonlSink

        sinks.append(JsonlSink(output_path(out.jsonl, source_id, several),
                               rotate_bytes=out.jsonl_rotate_bytes, rotate_seconds=out.jsonl_rotate_seconds))
    if out.mot:
        from pipelines.sinks.mot import MotSink

        sinks.append(MotSink(output_path(out.mot, source_id, several)))
    if config.redis.url:
        from pipelines.sinks.redis_sink import RedisSink

        zones, lines = zones_and_lines(config, source_id)
        sinks.append(RedisSink(config.redis, source_id, zones=zones, lines=lines, events=config.events))
    return sinks


def zones_and_lines(config: PipelineConfig, source_id: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The zones and lines of one source: its ``sources[]`` entry's (matched by id, or by the id the
    source derives from its URL), plus the top-level ``zones``/``lines`` of a single-source run."""
    entries = config.sources
    entry = next((e for e in entries if e.id == source_id), None)
    if entry is None and len(entries) == 1:
        entry = entries[0]
    if entry is None:
        entry = next((e for e in entries if e.id is None and source_id in _derived_ids(e.url)), None)
    zones, lines = (entry.zones, entry.lines) if entry is not None else ((), ())
    if len(entries) <= 1:
        zones, lines = tuple(config.zones) + tuple(zones), tuple(config.lines) + tuple(lines)
    return zones, lines


def _derived_ids(url: str) -> tuple[str, ...]:
    from pipelines.secrets import source_name

    path = url[len("file://"):] if url.startswith("file://") else url
    return Path(path).stem, source_name(url)

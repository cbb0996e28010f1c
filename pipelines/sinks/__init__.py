"""Sinks: where results go. ``build_sinks`` makes the sinks of one source from the ``output`` config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pipelines.config import PipelineConfig
from pipelines.frames import Sink

__all__ = ["build_sinks", "output_path"]




def output_path(template: str, source_id: str, several_sources: bool) -> str:
    """The output path of one source: ``{source}`` in ``template`` becomes the source id.

    With several sources and no ``{source}`` in the template, ``_<id>`` is added before the suffix
    (``out.mp4`` -> ``out_cam1.mp4``) so sources never overwrite each other's files.
    """
    if "{source}" in template:
        return template.replace("{source}", source_id)
    if not several_sources:
        return template
    path = Path(template)
    return str(path.with_name(f"{path.stem}_{source_id}{path.suffix}"))


def build_sinks(config: PipelineConfig, source_id: str, fps: Optional[float],
                size: tuple[int, int]) -> list[Sink]:
    """The sinks of one source, in the order: annotated video, JSONL, MOT.

    Args:
        config: pipeline config (``output`` and ``overlay`` sections are used).
        source_id: id of the source (used in paths with several sources).
        fps: frame rate of the processed frames (None: unknown; the video sink picks a default).
        size: (width, height) of the frames in pixels.

    Raises OutputError (one line) when a file cannot be created.
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
    return sinks

"""What every sink shares: its registry entry, the context it is built from, and output file names."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Optional, Protocol, runtime_checkable

from pipelines.frames import Sink

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig
    from pipelines.settings import SourceSettings


@runtime_checkable
class Lossy(Protocol):
    """A sink that can fail to deliver what it was given (the network sinks)."""

    def undelivered(self) -> int:
        """Entries dropped or never delivered so far."""
        ...


@runtime_checkable
class Buffered(Protocol):
    """A sink that keeps entries in memory until a server takes them (the network sinks)."""

    def buffered(self) -> int:
        """Entries waiting to be delivered now."""
        ...


class DropPolicy(str, Enum):
    """What the engine does when a sink's queue is full."""

    BLOCK = "block"              # wait: nothing is lost (files)
    DROP_OLDEST = "drop_oldest"  # drop the oldest waiting frame and count it (network sinks, viewers)


@dataclass(frozen=True)
class SinkContext:
    """What a sink of one source is built from.

    Attributes:
        config: the whole pipeline config (each sink reads its own section).
        settings: the source's settings (``settings.id`` names its outputs and streams).
        fps: processed frame rate, None when unknown.
        size: (width, height) of the source's frames.
        several_sources: the run has more than one source (file names then get the source id).
        resume: this sink's position saved with the source's state, to continue its output; None: start anew.
    """

    config: "PipelineConfig"
    settings: "SourceSettings"
    fps: Optional[float]
    size: tuple[int, int]
    several_sources: bool
    resume: Optional[Mapping[str, object]] = None

    def path(self, template: str) -> str:
        """The output path of this source for a ``{source}`` template."""
        return output_path(template, self.settings.id, self.several_sources)


@dataclass(frozen=True)
class SinkEntry:
    """A registered sink: its name (used in logs, metrics and saved states), its drop policy, whether a
    config switches it on, and how to build it for one source."""

    name: str
    policy: DropPolicy
    wanted: Callable[["PipelineConfig"], bool]
    build: Callable[[SinkContext], Sink]
    drops_lose_data: bool = True   # False for live viewers: skipping to the newest picture is their purpose


class BuiltSink(NamedTuple):
    """A sink made for one source, with its registry name and policy."""

    name: str
    policy: DropPolicy
    sink: Sink
    drops_lose_data: bool = True


def _name_char(char: str) -> str:
    """``char`` kept in a file name (a letter, mark or digit of any script, ``.``, ``_``, ``-``), else NUL."""
    return char if char in "._-" or unicodedata.category(char)[0] in "LMN" else "\0"


def safe_name(source_id: str) -> str:
    """``source_id`` as a file-name part: letters and digits of any script (``日本``, ``café``, in NFC) and
    ``.``, ``_``, ``-`` are kept; every run of other characters (path separators, ``:``, spaces, control
    characters) becomes one ``_``; leading and trailing dots and underscores go (no hidden file, no ``..``).
    MQTT topic levels and Home Assistant ids keep their own ASCII rule (``mqtt_conn.topic_part``)."""
    kept = "".join(_name_char(char) for char in unicodedata.normalize("NFC", source_id))
    return re.sub("\0+", "_", kept).strip("._") or "source"


def legacy_safe_name(source_id: str) -> str:
    """``safe_name`` before letters of every script were kept (ASCII only): where older runs saved state."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", source_id).strip("._") or "source"


OUTPUTS = (("video", "--out"), ("jsonl", "--jsonl"), ("mot", "--mot"), ("events", "--events"),
           ("heatmap", "--heatmap"))
"""The file outputs (``output.<name>``) and the flag that names each."""


def output_path(template: str, source_id: str, several_sources: bool) -> str:
    """The output path of one source: ``{source}`` in ``template`` becomes the source id.

    With several sources and no ``{source}`` in the template, ``_<id>`` is added before the suffix
    (``out.mp4`` -> ``out_cam1.mp4``) so sources never overwrite each other's files. Characters of the id
    that do not belong in a file name (``/``, ``:`` of an id derived from a camera URL) become ``_``
    (``safe_name``).
    """
    source_id = safe_name(source_id)
    if "{source}" in template:
        return template.replace("{source}", source_id)
    if not several_sources:
        return template
    path = Path(template)
    return str(path.with_name(f"{path.stem}_{source_id}{path.suffix}"))

"""``SourceSettings``: everything trackstream knows about one source, resolved once from the config.

``pipelines.config.build_config`` makes one per configured source (``PipelineConfig.sources``); every
stage reads its source's settings from it: the engine opens the source with ``url``/``id``/``options``,
the per-camera processor builds its tracker, events, zones and lines from it, and the sinks name their
outputs by ``id``. ``source_id_for`` is the one place a source's id is derived from its URL (and
``glob_ids`` / ``distinct_file_ids`` where files in different folders share a name).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pipelines.processing.schedule import Schedule
from pipelines.processing.calibration import CalibrationConfig
from pipelines.processing.heatmap import HeatmapConfig
from pipelines.processing.zones import EventsConfig, LineConfig, ZoneConfig
from pipelines.secrets import source_name
from pipelines.sources.base import SourceConfig, file_path, is_live_url
from tracker.config import TrackerConfig


def source_id_for(url: str) -> str:
    """The id of a source that was given none: a file's stem, or a camera URL's host/path without
    credentials (``cam1.local/stream1``)."""
    if is_live_url(url):
        return source_name(url)
    path = file_path(url)
    return Path(path).stem if path is not None else source_name(url)


def distinct_file_ids(paths: list[str]) -> Optional[list[str]]:
    """Ids for files that share a name in different folders (``2026-12-01/gate.mp4``, ``2026-12-02/gate.mp4``,
    as recorders lay out their days): the stem after as many of the nearest folder names as it takes to tell
    them all apart, joined by ``_`` (``2026-12-01_gate``, ``2026-12-02_gate``); None when even the whole
    paths do not."""
    parents = [Path(path).absolute().parent.parts[1:] for path in paths]   # [1:]: not the root itself
    stems = [Path(path).stem for path in paths]
    for depth in range(1, max(len(p) for p in parents) + 1):
        ids = ["_".join((*parent[-depth:], stem)) for parent, stem in zip(parents, stems)]
        if len(set(ids)) == len(ids):
            return ids
    return None


def glob_ids(files: list[str], roots: dict[str, Path]) -> dict[str, str]:
    """Ids for the files a glob found (``roots``: each one's glob folder, the part of the pattern before its first
    wildcard) whose name (without suffix) another of ``files`` shares: their path under that folder, ``_``
    between the parts (``'archive/**/*.mp4'`` over ``archive/2026/12-01/gate.mp4`` and
    ``archive/2026/12-02/gate.mp4``: ``2026_12-01_gate``, ``2026_12-02_gate``). Unlike the fewest folders that
    tell a group apart, that stays the same as the archive grows (a ``2027`` folder added later changes no id
    already given), so ``--state`` and the outputs keep following each file. Any other file keeps its stem."""
    stems = Counter(Path(f).stem for f in files)
    ids: dict[str, str] = {}
    for f, root in roots.items():
        try:
            relative = Path(f).relative_to(root)
        except ValueError:
            continue
        if stems[Path(f).stem] > 1 and len(relative.parts) > 1:
            ids[f] = "_".join((*relative.parent.parts, relative.stem))
    return ids


@dataclass(frozen=True)
class SourceSettings:
    """One source, resolved.

    Attributes:
        url: file path, ``file://`` URL, camera URL (rtsp/rtsps/rtmp/http(s)), ``/dev/videoN`` or ``webcam:N``.
        id: the source's id in every output, stream name and event (never holds credentials); empty
            means "derive it" (``source_id_for``).
        options: how the source is read (the ``source:`` section merged with the entry's own keys).
        zones / lines: this source's zones and counting lines (pixels of its frames).
        events: hysteresis and anchor settings for zone and line events.
        tracker: the tracker settings of this source.
        schedule: which frames the detector runs on (``detector.schedule``, or the entry's own ``schedule``).
        calibration: pixels -> metres on the ground (speed in real units); None: not calibrated.
        heatmap: whether and how this source's heatmap accumulates (``heatmap:``).
    """

    url: str
    id: str = ""
    options: SourceConfig = field(default_factory=SourceConfig)
    zones: tuple[ZoneConfig, ...] = ()
    lines: tuple[LineConfig, ...] = ()
    events: EventsConfig = field(default_factory=EventsConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    schedule: Schedule = field(default_factory=Schedule)
    calibration: Optional[CalibrationConfig] = None
    heatmap: HeatmapConfig = field(default_factory=HeatmapConfig)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", source_id_for(self.url))

    @property
    def is_live(self) -> bool:
        """A camera or network stream (reconnects, newest frame first) rather than a file."""
        return is_live_url(self.url)

    @property
    def latest_frame(self) -> bool:
        """The frame policy: newest frame only (cameras, or ``realtime: true``) or every frame (files)."""
        return self.is_live if self.options.realtime is None else self.options.realtime

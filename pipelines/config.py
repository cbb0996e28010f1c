"""Typed pipeline configuration: YAML file, then command-line overrides, validated in one place.

Every section is a frozen dataclass built with ``tracker.configutil.from_mapping``: unknown keys, wrong
types and out-of-range values raise ``ConfigError`` naming the dotted key (``detector.conf: must be <= 1``).
``configs/default.yaml`` documents every key on its line.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal, Mapping, Optional, Union

import yaml

from pipelines.cluster.config import ClusterConfig  # the cluster: section, owned with the Ray engine
from pipelines.processing.overlays import OverlayConfig
from pipelines.sinks.redis_conn import RedisConfig  # the redis: section, owned with the Redis sink
from pipelines.sinks.mqtt_conn import MqttConfig, topic_clash  # the mqtt: section, owned with the MQTT sink
from pipelines.listen import parse_listen
from pipelines.web.config import HttpConfig  # the http: section, owned with the web view
from pipelines.settings import SourceSettings, distinct_file_ids
from pipelines.secrets import redact_url
from pipelines.store.config import StoreConfig  # the store: section, owned with the event history
from pipelines.sources.base import SourceConfig, file_path, is_live_url
from pipelines.processing.schedule import Schedule, ScheduleTuning  # detector.schedule and schedule:
from pipelines.processing.zones import EventsConfig, LineConfig, ZoneConfig  # zones/lines/events: owned with the events
from pipelines.processing.calibration import CalibrationConfig  # calibration: owned with the speed measures
from pipelines.processing.heatmap import PICTURE_SUFFIXES, HeatmapConfig  # heatmap: owned with the accumulation
from tracker.config import TrackerConfig
from tracker.configutil import MAX_CONFIG_BYTES, ConfigError, from_mapping, load_yaml, to_mapping

__all__ = ["ClusterConfig", "ConfigError", "DetectorConfig", "EventsConfig", "HttpConfig", "LineConfig",
           "MetricsConfig",
           "MqttConfig", "OutputConfig",
           "OverlayConfig", "PipelineConfig", "RedisConfig", "SourceConfig", "SourceSettings", "StateConfig",
           "StoreConfig",
           "ZoneConfig",
           "load_config", "build_config", "read_config_file", "read_yaml"]

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow")


@dataclass(frozen=True)
class DetectorConfig:
    """The YOLO detector: model path or name, input size, thresholds, device, batch size and workers.

    ``batch`` None (auto): 4 frames per call on a CPU (1 for scheduled cameras); on CUDA one call takes the
    newest frame of every live stream that has one (up to 64) and 16 frames of a file (``resolve_batch``).
    ``preprocess``: where frames are letterboxed (``pipelines/detection/letterbox.py``): ``auto`` = on the
    device for CUDA, else CPU.
    ``schedule``: which frames are detected (``every``, ``interval:K``, ``interval:Ss``, ``adaptive``;
    ``pipelines/processing/schedule.py``); a ``sources[]`` entry may name its own.
    ``runtime``: what runs the model (``auto`` = on a CPU, ``.pt`` weights exported once to OpenVINO and ONNX,
    cached in ``cache_dir``, and run in the faster of the two on this CPU, timed once;
    ``pipelines/detection/runtime.py``).
    """

    model: Optional[str] = None
    imgsz: int = field(default=640, metadata={"min": 32, "max": 8192})
    conf: float = field(default=0.25, metadata={"min": 0.0, "max": 1.0})
    iou: float = field(default=0.7, metadata={"min": 0.0, "max": 1.0})
    classes: Optional[tuple[int, ...]] = None
    max_det: int = field(default=300, metadata={"min": 1, "max": 10000})
    device: str = "auto"
    half: Optional[bool] = None
    batch: Optional[int] = field(default=None, metadata={"min": 1, "max": 256})
    preprocess: Literal["auto", "cpu", "device"] = "auto"
    workers: Optional[int] = field(default=None, metadata={"min": 1, "max": 64})
    schedule: str = "every"
    runtime: Literal["auto", "torch", "onnx", "openvino"] = "auto"  # pipelines/detection/runtime.py
    cache_dir: Optional[str] = None  # exported models; None: $TRACKSTREAM_MODEL_CACHE or ~/.cache/trackstream/models

    def __post_init__(self) -> None:
        Schedule.parse(self.schedule)  # one line naming detector.schedule when it is not a schedule
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError("device", f"must be auto, cpu, cuda, cuda:N or mps; got {dev!r}")
        if self.classes is not None and any(c < 0 for c in self.classes):
            raise ConfigError("classes", f"class ids must be >= 0, got {list(self.classes)}")


@dataclass(frozen=True)
class OutputConfig:
    """Files written per source (paths; ``{source}`` in a path is replaced by the source id)."""

    video: Optional[str] = None
    jsonl: Optional[str] = None
    jsonl_rotate_bytes: Optional[int] = field(default=None, metadata={"gt": 0})
    jsonl_rotate_seconds: Optional[float] = field(default=None, metadata={"gt": 0})
    mot: Optional[str] = None
    events: Optional[str] = None
    heatmap: Optional[str] = None  # PNG of each source's heatmap, written at the end (--heatmap)
    heatmap_overwrite: bool = False  # replace an existing heatmap file (else the run refuses it at start)
    overwrite: bool = False  # replace existing output files (else the run refuses them at start: guard.py)
    video_codec: str = "libx264"
    video_encoder: Literal["auto", "cpu", "cuda"] = "auto"  # NVENC or video_codec: pipelines/sinks/video.py
    video_crf: int = field(default=23, metadata={"min": 0, "max": 51})
    video_preset: Literal[X264_PRESETS] = "veryfast"  # type: ignore[valid-type]
    video_keyframe_seconds: float = field(default=2.0, metadata={"gt": 0})
    video_faststart: bool = True
    video_rotate_seconds: Optional[float] = field(default=None, metadata={"gt": 0})
    video_rotate_bytes: Optional[int] = field(default=None, metadata={"gt": 0})
    retain_seconds: Optional[float] = field(default=None, metadata={"gt": 0})
    retain_bytes: Optional[int] = field(default=None, metadata={"gt": 0})

    def __post_init__(self) -> None:
        for key in ("video", "jsonl", "mot", "events", "heatmap"):
            path = getattr(self, key)
            braces = re.findall(r"\{[^{}]*\}", path or "")
            if any(b != "{source}" for b in braces):  # out/{sorce}.jsonl would be written under that name
                raise ConfigError(key, f"only {{source}} may appear in braces, got {path!r}")
            if re.search(r"[{}]", (path or "").replace("{source}", "")):  # out/{source.mp4: the same
                raise ConfigError(key, f"a brace is not closed or not opened in {path!r}; only {{source}} may "
                                       "appear in braces")
        suffix = PurePath(self.heatmap).suffix.lower() if self.heatmap else ""
        if suffix and suffix not in PICTURE_SUFFIXES:   # heat.gif was a PNG under a .gif name
            raise ConfigError("heatmap", f"{self.heatmap!r}: the heatmap picture is written as PNG, JPEG, WebP or BMP; "
                                         f"name it {', '.join(PICTURE_SUFFIXES[:-1])} or {PICTURE_SUFFIXES[-1]}")


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus endpoint and periodic one-line stats."""

    port: Optional[Union[int, str]] = None  # [HOST:]PORT; the host is 127.0.0.1 unless given
    log_interval: float = field(default=10.0, metadata={"min": 0.0})

    def __post_init__(self) -> None:
        if self.port is not None:
            try:
                parse_listen(self.port)
            except ConfigError as exc:
                raise ConfigError("port", str(exc).removeprefix("listen: ")) from None


@dataclass(frozen=True)
class StateConfig:
    """Whole-camera snapshots (``--state DIR``): each source's processor state and output positions are
    saved every ``interval`` seconds (wall clock) and at exit, and loaded at start."""

    dir: Optional[str] = None
    interval: float = field(default=5.0, metadata={"gt": 0})
    on_events: bool = True  # cameras: also right after a frame with events (no event twice after a crash)
    fresh: bool = False  # discard each source's saved state and start over (--fresh-state)
    lock_ttl: float = field(default=30.0, metadata={"gt": 0})  # s a killed run's lock on Redis state outlives it


@dataclass(frozen=True)
class PipelineConfig:
    """The whole configuration of ``trackstream run`` (see ``configs/default.yaml``, which it mirrors key by key).

    ``source``, ``tracker``, ``tracker_config``, ``zones``, ``lines`` and ``events`` are the sections as given:
    ``build_config`` has already resolved them into each source's ``SourceSettings`` (``sources[i].options``,
    ``.tracker``, ``.zones``, ``.lines``, ``.events``), which is what every stage reads.
    """

    source: SourceConfig = field(default_factory=SourceConfig)
    sources: tuple[SourceSettings, ...] = ()  # resolved: one value per source (see pipelines/settings.py)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: Mapping[str, Any] = field(default_factory=dict)
    tracker_config: Optional[str] = None
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    zones: tuple[ZoneConfig, ...] = ()
    lines: tuple[LineConfig, ...] = ()
    calibration: Optional[CalibrationConfig] = None   # single-source runs; else under sources[]
    heatmap: HeatmapConfig = field(default_factory=HeatmapConfig)  # every source's, unless its entry has one
    events: EventsConfig = field(default_factory=EventsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    schedule: ScheduleTuning = field(default_factory=ScheduleTuning)
    store: StoreConfig = field(default_factory=StoreConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for logging or writing back as YAML)."""
        return to_mapping(self)


_SECTIONS: dict[str, Any] = {
    "source": SourceConfig, "detector": DetectorConfig, "overlay": OverlayConfig, "output": OutputConfig,
    "redis": RedisConfig, "mqtt": MqttConfig, "events": EventsConfig, "metrics": MetricsConfig, "state": StateConfig,
    "http": HttpConfig, "cluster": ClusterConfig, "schedule": ScheduleTuning, "store": StoreConfig,
    "heatmap": HeatmapConfig,
}


def _tracker_settings(data: Mapping[str, Any], path: Optional[str]) -> TrackerConfig:
    if path:
        loaded = read_yaml(path)
        data = loaded.get("tracker", loaded) if isinstance(loaded, Mapping) else loaded
    return TrackerConfig.from_dict(dict(data or {}))
_TOP_KEYS = tuple(f.name for f in dataclasses.fields(PipelineConfig))


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error raises ``ConfigError`` with one line."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:  # refused before reading: a config is never that large
            raise ConfigError("", f"config file {path} is {path.stat().st_size} bytes; config files are limited "
                                  f"to {MAX_CONFIG_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError("", f"cannot read config file {path}: {reason}") from None
    try:
        return load_yaml(text, f"config file {path}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError("", f"invalid YAML in {path}{where}: {problem}") from None


def _items(data: Any, key: str, cls: type) -> tuple[Any, ...]:
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)):
        raise ConfigError(key, f"must be a list, got {type(data).__name__}")
    return tuple(from_mapping(cls, item, f"{key}[{i}]") for i, item in enumerate(data))


def _unique_names(items: tuple[Any, ...], key: str) -> tuple[Any, ...]:
    """``items`` (zones or lines), refused when two share a name: counts, state, events and topics go by it."""
    names = [item.name for item in items]
    dup = next((name for name in names if names.count(name) > 1), None)
    if dup is not None:
        raise ConfigError(key, f"the name {dup!r} is used twice; give each its own name (counts, events and "
                               "MQTT topics go by it)")
    return items


_ENTRY_KEYS = ("url", "id", "schedule", "zones", "lines", "calibration", "heatmap")  # besides the source: keys


def _source_entry(item: Any, key: str, shared: SourceSettings) -> SourceSettings:
    """One ``sources[]`` entry resolved against the shared settings (``shared.options`` is the ``source:``
    section; ``shared.zones``/``lines`` the top-level ones, used by a single-source run)."""
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, Mapping):
        raise ConfigError(key, f"must be a mapping like {{id: cam1, url: rtsp://...}}, "
                               f"got {type(item).__name__}")
    rest = dict(item)
    url, sid = rest.pop("url", None), rest.pop("id", None)
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{key}.url", "is required (a file path or camera URL)")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise ConfigError(f"{key}.id", f"must be a non-empty string, got {sid!r}")
    if sid is not None and redact_url(sid) != sid:   # the id is in every output, topic and stream name
        raise ConfigError(f"{key}.id", f"must not hold a password or token, got {redact_url(sid)!r}")
    schedule = shared.schedule
    if "schedule" in rest:
        schedule = Schedule.parse(rest.pop("schedule"), shared.schedule.tuning, f"{key}.schedule")
    zones = _items(rest.pop("zones", None), f"{key}.zones", ZoneConfig)
    lines = _items(rest.pop("lines", None), f"{key}.lines", LineConfig)
    calibration = _calibration(rest.pop("calibration", None), f"{key}.calibration") or shared.calibration
    heatmap = shared.heatmap
    if "heatmap" in rest:   # the entry's keys over the heatmap: section's
        own = rest.pop("heatmap")
        if not isinstance(own, Mapping):
            raise ConfigError(f"{key}.heatmap", f"must be a mapping of settings, got {type(own).__name__}")
        heatmap = from_mapping(HeatmapConfig, {**to_mapping(shared.heatmap), **own}, f"{key}.heatmap")
    base = shared.options
    known = {f.name for f in dataclasses.fields(SourceConfig)}
    for name in rest:   # from_mapping would list only the source: keys, as if schedule or zones were unknown
        if name not in known:
            keys = ", ".join(sorted(known | set(_ENTRY_KEYS)))
            raise ConfigError(f"{key}.{name}", f"unknown key (known keys: {keys})")
    options = from_mapping(SourceConfig, {**to_mapping(base), **rest}, key) if rest else base
    return SourceSettings(url=url, id=sid or "", options=options,
                          zones=_unique_names(shared.zones + zones, f"{key}.zones"),
                          lines=_unique_names(shared.lines + lines, f"{key}.lines"), events=shared.events,
                          tracker=shared.tracker, schedule=schedule, calibration=calibration, heatmap=heatmap)


def _calibration(data: Any, key: str) -> Optional[CalibrationConfig]:
    return None if data is None else from_mapping(CalibrationConfig, data, key)


def resolve_sources(raw: Any, shared: SourceSettings, redis_source_id: Optional[str]) -> tuple[SourceSettings, ...]:
    """The one function that turns the ``sources`` list into per-source settings: ids resolved (given,
    ``redis.source_id`` for a single source, else derived from the URL) and checked to be unique."""
    if not isinstance(raw, (list, tuple)):
        raise ConfigError("sources", f"must be a list, got {type(raw).__name__}")
    sources = tuple(_source_entry(s, f"sources[{i}]", shared) for i, s in enumerate(raw))
    if len(sources) == 1 and redis_source_id and not _given_id(raw[0]):
        sources = (dataclasses.replace(sources[0], id=redis_source_id),)
    sources = _files_told_apart(sources, raw)
    ids = [s.id for s in sources]
    if len(ids) != len(set(ids)):
        dup = next(i for i in ids if ids.count(i) > 1)
        given = [_given_id(r) for r in raw]
        both = " and ".join(redact_url(s.url) for s in sources if s.id == dup)   # which of an archive's files
        if all(given):
            raise ConfigError("sources", f"source ids must be unique: {dup!r} is the id of {both}")
        raise ConfigError("sources", f"two sources get the id {dup!r} (from their file names or URLs: {both}); "
                                     "give them ids: sources: [{url: ..., id: ...}]")
    return sources


def _files_told_apart(sources: tuple[SourceSettings, ...], raw: Any) -> tuple[SourceSettings, ...]:
    """Files given no id that share a name in different folders get ids with their folders' names
    (``distinct_file_ids``), so ``'archive/**/*.mp4'`` over day folders of ``gate.mp4`` just works; a clash
    with a given id, a camera's or one left after that is refused by the caller."""
    groups: dict[str, list[int]] = {}
    for i, (source, item) in enumerate(zip(sources, raw)):
        if not _given_id(item) and not is_live_url(source.url) and file_path(source.url) is not None:
            groups.setdefault(source.id, []).append(i)
    out = list(sources)
    for members in groups.values():
        ids = distinct_file_ids([str(file_path(sources[i].url)) for i in members]) if len(members) > 1 else None
        for i, new in zip(members, ids or []):
            out[i] = dataclasses.replace(out[i], id=new)
    return tuple(out)


def _given_id(item: Any) -> Optional[str]:
    return item.get("id") if isinstance(item, Mapping) else None


def build_config(data: Mapping[str, Any] | None) -> PipelineConfig:
    """Validate a parsed config mapping into a ``PipelineConfig``."""
    data = data or {}
    if not isinstance(data, Mapping):
        raise ConfigError("", f"config must be a mapping of sections, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(str(key), f"unknown key (known keys: {', '.join(_TOP_KEYS)})")
    kwargs: dict[str, Any] = {name: from_mapping(cls, data.get(name), name)
                              for name, cls in _SECTIONS.items()}
    tracker = data.get("tracker") or {}
    if not isinstance(tracker, Mapping):
        raise ConfigError("tracker", f"must be a mapping of tracker settings, got {type(tracker).__name__}")
    tracker_config = data.get("tracker_config")
    if tracker_config is not None and not isinstance(tracker_config, str):
        raise ConfigError("tracker_config", f"must be a path, got {tracker_config!r}")
    zones = _unique_names(_items(data.get("zones"), "zones", ZoneConfig), "zones")
    lines = _unique_names(_items(data.get("lines"), "lines", LineConfig), "lines")
    raw_sources = data.get("sources") or []
    calibration = _calibration(data.get("calibration"), "calibration")
    if isinstance(raw_sources, (list, tuple)) and len(raw_sources) > 1 and (zones or lines):
        raise ConfigError("zones", "with several sources, put zones and lines under each sources[] entry")
    if isinstance(raw_sources, (list, tuple)) and len(raw_sources) > 1 and calibration is not None:
        raise ConfigError("calibration", "with several sources, put the calibration under each sources[] entry")
    heatmap: HeatmapConfig = kwargs["heatmap"]
    if (kwargs["output"].heatmap or kwargs["overlay"].heatmap) and not heatmap.enabled:
        heatmap = kwargs["heatmap"] = dataclasses.replace(heatmap, enabled=True)   # what they show needs it
    shared = SourceSettings(url="-", options=kwargs["source"], zones=zones, lines=lines, events=kwargs["events"],
                            tracker=_tracker_settings(tracker, tracker_config),  # rejects bad tracker keys now
                            schedule=Schedule.parse(kwargs["detector"].schedule, kwargs["schedule"],
                                                    "detector.schedule"),
                            calibration=calibration, heatmap=heatmap)
    _one_port_each(kwargs["http"].listen, kwargs["metrics"].port)
    sources = resolve_sources(raw_sources, shared, kwargs["redis"].source_id)
    clash = topic_clash(s.id for s in sources) if kwargs["mqtt"].url is not None else None
    if clash is not None:   # one source's retained counts, state and will would be another's
        raise ConfigError("sources", f"MQTT: sources {clash[0]!r} and {clash[1]!r} would share the topic level "
                                     f"{clash[2]!r}; give one another id")
    return PipelineConfig(sources=sources, tracker=dict(tracker), tracker_config=tracker_config, zones=zones,
                          lines=lines, calibration=calibration, **kwargs)


_EVERY_INTERFACE = ("0.0.0.0", "::")


def _one_port_each(web: Optional[Union[str, int]], metrics: Optional[Union[str, int]]) -> None:
    """The web view and the metrics endpoint on one port (of one interface, or of every one) are refused: the
    second to start failed with "address already in use", as if another program held it."""
    if web is None or metrics is None:
        return
    (web_host, web_port), (metrics_host, metrics_port) = parse_listen(web), parse_listen(metrics)
    hosts = {"127.0.0.1" if h == "localhost" else h for h in (web_host, metrics_host)}
    if web_port == metrics_port and (len(hosts) == 1 or hosts & set(_EVERY_INTERFACE)):
        raise ConfigError("metrics.port", f"{metrics_port} is the web view's port too (http.listen {web}); give each "
                                          "its own port, or leave the metrics port out: the web view serves /metrics "
                                          "as well")


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections as needed."""
    *parents, last = dotted.split(".")
    node = data
    for name in parents:
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        if not isinstance(child, dict):
            raise ConfigError(name, f"must be a mapping of settings, got {type(child).__name__}")
        node = child
    node[last] = value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a config file (not validated yet).

    A relative ``tracker_config`` path is taken relative to the config file's folder when the file is
    there, so a config and its tracker settings can be kept side by side.
    """
    data: Any = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"config file {path} must hold a mapping of sections, "
                              f"got {type(data).__name__}")
    tracker_config = data.get("tracker_config")
    if isinstance(tracker_config, str) and not Path(tracker_config).is_absolute():
        beside = Path(path).parent / tracker_config
        if beside.exists():
            data["tracker_config"] = str(beside)
    return data


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Read the YAML file at ``path`` (if any), apply ``overrides`` (dotted keys) and validate.

    ``overrides`` values win over the file; ``None`` values are ignored (flag not given). A ``sources``
    override replaces the file's list.
    """
    data = read_config_file(path) if path else {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, dotted, value)
    return build_config(data)

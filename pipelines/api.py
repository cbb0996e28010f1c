"""The Python API: ``process(...)`` yields the output value of every processed frame, without the CLI.

::

    from pipelines import process

    for result in process("street.mp4", model="yolo11n.pt", imgsz=640):
        print(result.frame.source_id, result.frame.index, result.tracks.track_id.tolist())

It runs the same pipeline as ``trackstream run`` (the same config keys, sources, detector, ``Runner``,
per-camera ``StreamProcessor`` and sinks). Next to the configured file and Redis sinks each source gets
an in-memory sink with drop policy ``block``: nothing is lost, and at most ``RESULT_QUEUE_SIZE`` results
wait for the consumer, so memory stays bounded and the pipeline waits while the loop body runs.

Results of several sources interleave (each carries ``result.frame.source_id``); one source's results
come in frame order. Stopping early (``break``, or ``close()`` on a generator you kept) stops the
pipeline: frames already read are processed, every output is flushed and closed, every thread ends.
An error in any stage is raised in the consuming thread (``UserError``s as their one-line message).
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import logging
import numbers
import os
import queue
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypedDict, Union, overload

from typing_extensions import Unpack

from pipelines.config import PipelineConfig, build_config, read_config_file, set_dotted
from pipelines.frames import BaseSink, FrameResult, StreamStatus
from pipelines.processing.zones import LineConfig, ZoneConfig
from pipelines.settings import SourceSettings
from pipelines.sinks.base import BuiltSink, DropPolicy
from tracker.configutil import ConfigError, to_mapping

__all__ = ["RESULT_QUEUE_SIZE", "ConfigOptions", "ProcessOptions", "SourceLike", "process"]

log = logging.getLogger(__name__)

RESULT_QUEUE_SIZE = 8
"""Results waiting for the consumer at most (all sources together); the pipeline waits beyond that."""

SourceLike = Union[str, "os.PathLike[str]", Mapping[str, Any], SourceSettings]
"""A source: a file path or camera URL, a ``sources:`` entry of the config (``{"url": ..., "id": ...}``)
or resolved ``SourceSettings``."""

ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any], None]
Output = Union[FrameResult, StreamStatus]  # noqa: UP007 - a runtime alias


class _End:
    """Marks the end of the results."""


_END = _End()


class _ResultSink(BaseSink):
    """One source's in-memory sink: hands each value to the consumer's queue, waiting while it is full.

    Once the consumer has gone (``closed``), values are discarded so the pipeline can finish."""

    def __init__(self, results: queue.Queue[Output | _End], closed: threading.Event,
                 statuses: bool) -> None:
        self._results, self._closed, self._statuses = results, closed, statuses

    def write(self, result: FrameResult) -> None:
        _offer(self._results, result, self._closed)

    def status(self, status: StreamStatus) -> None:
        if self._statuses:
            _offer(self._results, status, self._closed)


def _offer(results: queue.Queue[Output | _End], item: Output | _End, closed: threading.Event) -> None:
    while not closed.is_set():
        try:
            results.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _shapes(key: str, items: object, example: str) -> list[dict[str, Any]]:
    """``zones=`` / ``lines=`` as config entries: a list of mappings (or ``ZoneConfig``/``LineConfig``); one
    entry given alone, or a name, is a ``ConfigError`` naming the key, not a ``ValueError`` from ``dict()``."""
    if isinstance(items, (str, bytes, Mapping, ZoneConfig, LineConfig)) or not isinstance(items, Iterable):
        raise ConfigError(key, f"must be a list of {example}, got {_kind(items)}")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, (ZoneConfig, LineConfig)):
            out.append(to_mapping(item))
        elif isinstance(item, Mapping):
            out.append(dict(item))
        else:
            raise ConfigError(f"{key}[{index}]", f"must be a mapping like {example}, got {_kind(item)}")
    return out


def _kind(value: object) -> str:
    """How an error names a value of the wrong type: a short text or number as itself, else its type."""
    if isinstance(value, (str, int, float)) and len(repr(value)) <= 40:
        return repr(value)
    return f"a {type(value).__name__}"


def _path(key: str, value: object) -> str:
    """``model=`` / ``config=`` / ``heatmap=`` as a path string; anything else is a ``ConfigError`` naming it."""
    path = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(path, str):   # a number, bytes, or a PathLike of bytes
        raise ConfigError(key, f"must be a file path (str or os.PathLike), got {_kind(value)}")
    return path


def _class_ids(classes: object) -> list[Any]:
    if isinstance(classes, (str, bytes, Mapping)) or not isinstance(classes, Iterable):
        raise ConfigError("detector.classes", f"must be a list of class ids (classes=[0] for the first "
                                              f"class), got {_kind(classes)}")
    # numpy's integers (classes=np.array([0, 2]), ids read from a model's names) as the ints the config takes
    return [int(c) if isinstance(c, numbers.Integral) and not isinstance(c, bool) else c for c in classes]


def _source_entry(source: SourceLike) -> dict[str, Any]:
    if isinstance(source, SourceSettings):
        return {"url": source.url, "id": source.id}  # a placeholder: ids are still checked to be unique
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (list, tuple)):   # process(["a.mp4", "b.mp4"]): the sources are separate arguments
        raise ConfigError("sources", "give each source as its own argument, process(*paths), not one list")
    try:
        return {"url": os.fspath(source)}
    except TypeError:
        raise ConfigError("sources", f"a source is a path, URL, mapping or SourceSettings, got "
                                     f"{type(source).__name__}") from None


class ConfigOptions(TypedDict, total=False):
    """The keyword arguments of ``process`` that make its config (see ``process`` for each); written once here
    for ``process``, its overloads and ``build_api_config``."""

    model: str | os.PathLike[str] | None
    config: ConfigLike
    overrides: Mapping[str, Any] | None
    imgsz: int | None
    conf: float | None
    device: str | None
    classes: Sequence[int] | None
    vid_stride: int | None
    zones: Sequence[ZoneConfig | Mapping[str, Any]] | None
    lines: Sequence[LineConfig | Mapping[str, Any]] | None
    schedule: str | None
    heatmap: str | os.PathLike[str] | bool | None


class ProcessOptions(ConfigOptions, total=False):
    """Every keyword argument of ``process`` but ``statuses``."""

    max_frames: int | None


_CONFIG_KEYS = frozenset(ConfigOptions.__annotations__)
_PROCESS_KEYS = frozenset(ProcessOptions.__annotations__)


def _check_keywords(function: str, options: Mapping[str, object], known: frozenset[str]) -> None:
    """An unknown keyword is a ``TypeError``, as for any function with a written-out signature."""
    for name in options:
        if name not in known:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")


def build_api_config(sources: Sequence[SourceLike], **options: Unpack[ConfigOptions]) -> PipelineConfig:
    """The validated config of a ``process`` call (see ``process`` for the arguments).

    The config file or mapping first, then ``overrides`` (dotted keys), then the named arguments, then
    ``sources`` (replacing the config's ``sources:`` when given). Raises ``ConfigError`` naming the key.
    """
    _check_keywords("build_api_config", options, _CONFIG_KEYS)
    return _config_of(sources, options)


def _config_of(sources: Sequence[SourceLike], options: ConfigOptions) -> PipelineConfig:
    config, model, classes = options.get("config"), options.get("model"), options.get("classes")
    zones, lines = options.get("zones"), options.get("lines")
    heatmap = options.get("heatmap")
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        data = copy.deepcopy(dict(config))
    else:
        data = read_config_file(_path("config", config))
    overrides = options.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise ConfigError("overrides", f"must be a mapping of dotted keys to values, e.g. "
                                       f"{{'detector.iou': 0.5}}, got {_kind(overrides)}")
    named: dict[str, Any] = {
        "detector.model": None if model is None else _path("model", model), "detector.imgsz": options.get("imgsz"),
        "detector.conf": options.get("conf"), "detector.device": options.get("device"),
        "detector.schedule": options.get("schedule"),
        "detector.classes": None if classes is None else _class_ids(classes),
        "source.vid_stride": options.get("vid_stride"),
        "zones": None if zones is None else _shapes("zones", zones, "{'name': ..., 'polygon': [[x, y], ...]}"),
        "lines": None if lines is None else _shapes("lines", lines, "{'name': ..., 'points': [[x, y], [x, y]]}"),
        "heatmap.enabled": True if heatmap is True else None,
        "output.heatmap": None if heatmap is None or isinstance(heatmap, bool) else _path("heatmap", heatmap),
    }
    given = {key: value for key, value in named.items() if value is not None}  # else None hid the override
    for key, value in {**dict(overrides), **given}.items():
        if value is not None:
            set_dotted(data, key, value)
    if sources:
        data["sources"] = [_source_entry(s) for s in sources]
    built = build_config(data)
    if any(isinstance(s, SourceSettings) for s in sources):
        resolved = tuple(s if isinstance(s, SourceSettings) else b for s, b in zip(sources, built.sources))
        built = dataclasses.replace(built, sources=resolved)
    return built


@overload
def process(*sources: SourceLike, statuses: Literal[False] = False,
            **options: Unpack[ProcessOptions]) -> Iterator[FrameResult]: ...


@overload
def process(*sources: SourceLike, statuses: Literal[True], **options: Unpack[ProcessOptions]) -> Iterator[Output]: ...


def process(*sources: SourceLike, statuses: bool = False, **options: Unpack[ProcessOptions]) -> Iterator[Output]:
    """Detect and track objects in ``sources``; yield each processed frame's ``FrameResult``.

    Args:
        sources: video files or camera URLs (``rtsp://``, ``http(s)://``, ``/dev/videoN``, ``webcam:N``),
            ``sources:`` entries (``{"url": ..., "id": ..., "zones": [...]}``) or ``SourceSettings``;
            none: the config's ``sources:``.
        model: local weights file (``.pt``, ``.onnx``, ``.engine``, ...); default: the config's
            ``detector.model``, else the bundled YOLO11n-pose demo model.
        config: a YAML config file or a mapping with the same keys (``configs/default.yaml``); its
            ``output:`` and ``redis:`` sinks are written too, ``state.dir`` resumes as with ``--state``.
        overrides: dotted config keys, e.g. ``{"detector.iou": 0.5, "output.jsonl": "out.jsonl"}``; an output
            file that exists is refused unless ``{"output.overwrite": True}``, as ``--overwrite``.
        imgsz / conf / device / classes: detector input size (px), minimum confidence, device
            (``auto``, ``cpu``, ``cuda:N``), class ids to keep.
        vid_stride: process every Nth frame of each source.
        zones / lines: ``[{"name": "door", "polygon": [[x, y], ...]}]`` / ``[{"name": "gate",
            "points": [[x, y], [x, y]]}]`` in pixels of the frames (one source; several: per entry).
        max_frames: stop each source after this many frames, counted after the stride picks them (from a
            camera, frames dropped by the newest-frame policy count too, as with `--max-frames`).
        schedule: which frames the detector runs on (``every``, ``interval:K``, ``interval:Ss``,
            ``adaptive``; ``detector.schedule``). Every frame is still yielded: ``FrameResult.detected``
            says whether the detector ran on it, a track whose ``Tracks.matched`` row is False is predicted.
        heatmap: True: each ``FrameResult.heat`` holds the source's heatmap so far (``HeatSnapshot``: where
            tracks' ground points were, in total and per class); a path: that too, and its picture written
            there when the run ends (PNG, or JPEG, WebP or BMP by the suffix; ``{source}`` = source id; an
            existing file is refused unless ``overrides={"output.heatmap_overwrite": True}``), as
            ``--heatmap``.
        statuses: also yield each source's ``StreamStatus`` values (started, gap, resumed, ended,
            closed) in order with its frames; their ``events`` hold the stream events and the
            ``track_ended`` events of tracks still open when a source ends.

    The config is validated at the call (``ConfigError``); sources are opened and the model is loaded
    at the first ``next()``. Raises ``UserError`` (``SourceError``, ``ModelError``, ``OutputError``,
    ...) with a one-line message for a problem the user can fix, ``PipelineError`` when a stage fails.
    """
    _check_keywords("process", options, _PROCESS_KEYS)
    max_frames = options.get("max_frames")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral)):
        # 2.5 read 3 frames and True read 1; "3" raised a TypeError comparing it with 1
        raise ConfigError("max_frames", f"must be a whole number of frames >= 1, got {_kind(max_frames)}")
    max_frames = None if max_frames is None else int(max_frames)
    if max_frames is not None and max_frames < 1:
        raise ConfigError("max_frames", f"must be >= 1, got {max_frames}")
    given = options.get("config")
    config_file = None if given is None or isinstance(given, Mapping) else _path("config", given)
    results = _results(_config_of(sources, options), max_frames, statuses, config_file)
    _unfinished.add(results)
    return results


_unfinished: "weakref.WeakSet[Iterator[Output]]" = weakref.WeakSet()  # runs whose results were not all read


@atexit.register
def _stop_unfinished() -> None:
    """Close every run still open when the interpreter exits (a script that stopped reading without closing
    it). Left to the interpreter's own clean-up, the run would be closed after its threads were frozen, one of
    them maybe holding the lock stopping waits for: the process would never exit."""
    for results in list(_unfinished):
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _results(config: PipelineConfig, max_frames: int | None, statuses: bool,
             config_file: str | None) -> Iterator[Output]:
    from pipelines.engine.launch import claim_writes

    # as trackstream run: no output over an input, the config file or another output; one writer per file
    with claim_writes(config, [config_file]):
        yield from _claimed_results(config, max_frames, statuses)


def _claimed_results(config: PipelineConfig, max_frames: int | None, statuses: bool) -> Iterator[Output]:
    from pipelines.detection.detector import Detector, detection_concurrency
    from pipelines.engine.launch import Opened, preflight, with_open_sources
    from pipelines.engine.runner import Runner
    from pipelines.engine.state import open_store
    from pipelines.sinks import build_sinks

    model = preflight(config)  # outputs writable, Redis and the MQTT broker reachable: as trackstream run
    store = open_store(config.state.dir) if config.state.dir else None
    results: queue.Queue[Output | _End] = queue.Queue(maxsize=RESULT_QUEUE_SIZE)
    closed = threading.Event()

    def sinks(cfg: PipelineConfig, settings: SourceSettings, fps: float | None, size: tuple[int, int],
              resume: Mapping[str, Mapping[str, object]] | None) -> list[BuiltSink]:
        return [*build_sinks(cfg, settings, fps, size, resume),
                BuiltSink("python", DropPolicy.BLOCK, _ResultSink(results, closed, statuses))]

    def start(opened: Opened) -> Runner:
        waiting = [s.schedule.waits_for_plans for s, _ in opened]
        detector = Detector(config.detector, model, in_flight=detection_concurrency(waiting))
        return Runner(opened, detector, config, max_frames=max_frames, sink_factory=sinks,
                      state=store)

    runner = with_open_sources(config, start)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - raised in the consumer's thread
            log.debug("the pipeline failed", exc_info=exc)
            failures.append(exc)
        finally:
            _offer(results, _END, closed)

    thread = threading.Thread(target=run, name="trackstream-api", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if isinstance(item, _End):
                break
            yield item
    finally:
        closed.set()  # the sinks stop waiting for the consumer
        runner.stop()
        thread.join()
    if failures:  # not after an early stop: the consumer has gone (it is logged at debug level)
        raise failures[0]

"""Starting a run, the same way for the CLI (``commands/run.py``), the Python API (``api.py``) and the Ray engine
(``cluster/``): what the run may write and the locks that keep a second run off its files (``claim_writes``),
what fails before any model loads (``preflight``), which model loads (``resolve_model``),
opening the sources and closing them again when what is built on them fails (``with_open_sources``), and the
stop signals of a foreground run (``StopSignals``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator, Optional, Sequence, TypeVar

from pipelines.config import PipelineConfig
from pipelines.errors import OutputError, SourceError
from pipelines.settings import SourceSettings
from pipelines.sinks._paths import IN_FOLDER, is_stream, refuse_folder_name
from pipelines.sinks.base import output_path
from pipelines.sources import open_source
from pipelines.sources.base import Source
from pipelines.store.config import is_postgres, sqlite_path

if TYPE_CHECKING:
    from pipelines.sources.looks import FirstLooks

log = logging.getLogger(__name__)

T = TypeVar("T")
Opened = list[tuple[SourceSettings, Source]]
"""Opened sources with their settings, in config order (what a ``Runner`` takes)."""


def check_writable(path: str) -> None:
    """Fail now, before the model loads, if ``path`` cannot be written (a file created here is removed)."""
    out = Path(path).expanduser()
    if is_stream(out):   # a pipe or device: a probe would block on a FIFO and end its reader's input
        return
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a directory ({IN_FOLDER})")
    refuse_folder_name(path, "output")
    blocker = next((p for p in out.parents if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():   # mkdir says only 'File exists' or 'Not a directory'
        raise OutputError(f"cannot write {out}: {blocker} is a file, not a folder")
    existed = out.exists()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    if not existed:
        out.unlink(missing_ok=True)


def check_media_folder(media: str, source_ids: Sequence[str]) -> None:
    """Fail now, before the model loads, when ``--media`` cannot hold files: a regular file, a folder under a
    file, a place it may not write, or a source's folder that is a file. Every snapshot and clip would be
    lost one by one otherwise. What is tried is what the store does: write in each source's folder, made in
    the media folder when missing (so a read-only media folder whose source folders are writable mounts
    passes). Folders made for the check are removed again; nothing else is touched."""
    from pipelines.store.media import source_folder

    root = Path(media).expanduser()
    folders = {source_id: root / source_folder(source_id) for source_id in source_ids} or {"": root}
    try:   # exists() raises for a place this user may not look into (a parent without search permission)
        if root.exists() and not root.is_dir():
            raise OutputError(f"--media: cannot write the snapshots and clips in {root}: it is not a folder")
        made = [f for f in (*folders.values(), root, *root.parents) if not f.exists()]   # innermost first
    except OSError as exc:
        raise OutputError(f"--media: cannot write the snapshots and clips in {root}: {exc.strerror or exc}") from None
    try:
        for source_id, folder in folders.items():
            if folder.exists() and not folder.is_dir():
                raise OutputError(f"--media: cannot write the snapshots and clips of {source_id} in {folder}: "
                                  "it is not a folder")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".trackstream-check-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise OutputError(f"--media: cannot write the snapshots and clips in {folder}: "
                                  f"{exc.strerror or exc}") from None
    finally:
        for folder in made:   # only folders this check made, and only while empty
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def claim_writes(config: PipelineConfig, config_files: Sequence[Optional[str]] = (),
                 lock_files: bool = True) -> Iterator[None]:
    """Hold what this run writes until the block ends: no output over an input or another output
    (``guard.check_paths``: ``OutputError``, one line, nothing touched), an advisory lock on each local output
    and state file (``lock_files``: False when they are written on other machines, a remote Ray cluster) and a
    lock on each source's state in Redis (``--state redis://``): a second run refuses at start, naming the file."""
    from pipelines.engine.guard import hold_writes

    with hold_writes(config, config_files, lock=lock_files), _redis_state_lock(config):
        yield


@contextlib.contextmanager
def _redis_state_lock(config: PipelineConfig) -> Iterator[None]:
    from pipelines.engine.state import RedisStateLock, in_redis

    state = config.state.dir
    if not state or not in_redis(state):
        yield
        return

    with RedisStateLock(state, [s.id for s in config.sources], config.state.lock_ttl):
        yield


def require_sources(config: PipelineConfig) -> None:
    """A run needs at least one source: ``SourceError`` (one line) otherwise."""
    if not config.sources:
        raise SourceError("no source given: pass a video file or camera URL (or list sources: in --config)")


def resolve_model(config: PipelineConfig) -> str:
    """The model to load: ``detector.model``, else the bundled YOLO11n-pose demo model."""
    if config.detector.model is not None:
        return config.detector.model
    from pipelines.assets import demo_pose_model

    return str(demo_pose_model())


def preflight(config: PipelineConfig) -> str:
    """What fails before any model loads, in one line each: no source, unwritable outputs, an unreachable Redis
    or broker. Returns the model to load (``resolve_model``)."""
    require_sources(config)
    out = config.output
    several = len(config.sources) > 1
    from pipelines.engine.guard import check_new_outputs

    check_new_outputs(config)   # an existing file is kept unless output.overwrite (after the locks: claim_writes)
    for template in (out.video, out.jsonl, out.mot, out.events, out.heatmap):
        if template is None:
            continue
        if template.endswith(("/", os.sep)):   # a folder (new or existing): refused before '_<id>' of several
            check_writable(template)             # sources drops the '/' (results/ -> a file results_cam1)
        for settings in config.sources:
            check_writable(output_path(template, settings.id, several))
    if config.store.db and not is_postgres(config.store.db):
        check_writable(str(sqlite_path(config.store.db)))
        from pipelines.store.db import check_sqlite

        check_sqlite(config.store.db)   # not a database, or a newer schema: one line now, not rows lost at the end
    elif config.store.db:
        from pipelines.store.db import check_postgres

        check_postgres(config.store.db, config.store.connect_timeout)   # wrong password, no such database
    if config.store.db and config.store.media:
        check_media_folder(config.store.media, [settings.id for settings in config.sources])
    if config.redis.url:
        from pipelines.sinks.redis_sink import check_reachable

        check_reachable(config.redis)   # on_unreachable: fail -> one error line now, before the model loads
    if config.mqtt.url:
        from pipelines.sinks.mqtt_conn import check_reachable as check_broker

        check_broker(config.mqtt)       # refused credentials or TLS (or unreachable and fail): one line now
    return resolve_model(config)


def warn_unsaved(config: PipelineConfig) -> None:
    """Warn when a command-line run keeps none of its results (the Python API hands them to its caller)."""
    out = config.output
    if not (out.video or out.jsonl or out.mot or out.events or out.heatmap or config.redis.url or config.mqtt.url
            or config.store.db):
        log.warning("no output configured: results are not saved (use --out, --jsonl, --mot, --events, --redis, "
                    "--mqtt or --db)")


def open_sources(config: PipelineConfig, ids: Optional[Collection[str]] = None,
                 looks: Optional["FirstLooks"] = None) -> Opened:
    """Open the configured sources (or those whose id is in ``ids``), in config order, a file that ``looks``
    opened at start without opening it again; on failure close those already open and re-raise.

    Every camera is opened, and so is every file played at its own pace or looping, but of the plain files only
    the first ``waves.file_lanes`` (the number the runner keeps open at once): each other one is a
    ``WaitingFile``, opened by the runner when its turn comes. It is looked at now (through ``looks``, or one made
    here): one that cannot be read stops the run now, as opening it would."""
    from pipelines.engine.waves import WaitingFile, file_lanes, in_waves
    from pipelines.sources.looks import FirstLooks

    if ids is None:
        require_sources(config)
    looks = looks if looks is not None else FirstLooks()
    first = file_lanes(config.detector.workers)
    opened: Opened = []
    files = 0
    try:
        for settings in config.sources:
            if ids is not None and settings.id not in ids:
                continue
            if in_waves(settings) and files >= first:
                opened.append((settings, WaitingFile(settings, looks)))
                continue
            opened.append((settings, open_source(settings, looks)))
            files += in_waves(settings)
    except BaseException:
        close_sources(opened)
        raise
    return opened


def skip_unreadable(config: PipelineConfig, skippable: Collection[str],
                    looks: Optional["FirstLooks"] = None) -> tuple[PipelineConfig, list[str]]:
    """``config`` without the sources in ``skippable`` (the files a folder or glob gave) that cannot be opened
    (empty, audio-only, cut short, still being written, not a video), each named in one warning line with the
    reason, and the URLs left out, in order. Every other source is left as it is: one named on its own still
    stops the run when it is opened. When no source is left, ``SourceError`` (one line, the first reason).

    Outputs keep the names they get with all the files: when one file is left of several, an output without
    ``{source}`` still gets its ``_<id>`` (a rerun with the file repaired writes, and resumes, the same files).

    ``looks``: the files as opened when they were found (``FirstLooks``): asked, not opened again."""
    import dataclasses

    from pipelines.sources.base import file_path
    from pipelines.sources.file import open_container

    kept: list[SourceSettings] = []
    reasons: dict[str, str] = {}
    for settings in config.sources:
        path = file_path(settings.url) if settings.url in skippable else None
        if path is not None:
            try:   # what opening the source checks of the file (its decoder is the config's, not the file's)
                if looks is not None:
                    looks.check(path)
                else:
                    open_container(Path(path)).close()
            except SourceError as exc:
                reasons[settings.url] = str(exc)
                continue
        kept.append(settings)
    if not reasons:
        return config, []
    if not kept:
        first, *others = reasons
        names = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise SourceError(reasons[first] + (f" (and {len(others)} other file{'s' * (len(others) != 1)} cannot be "
                                            f"read either: {names})" if others else ""))
    for url, reason in reasons.items():
        warn_skipping(url, reason)
    output = config.output
    if len(kept) == 1:
        templates = ("video", "jsonl", "mot", "events", "heatmap")
        pinned: dict[str, Any] = {name: output_path(getattr(output, name), kept[0].id, True)
                                  for name in templates if getattr(output, name)}
        output = dataclasses.replace(output, **pinned)
    return dataclasses.replace(config, sources=tuple(kept), output=output), list(reasons)


def warn_skipping(url: str, reason: str) -> None:
    """The one warning line of a file of a folder or glob that is left out because it cannot be read."""
    log.warning("skipping %s: %s", url, _without(reason, url))


def _without(reason: str, url: str) -> str:
    """``reason`` without the path it names (the warning names it first): ``video file is empty (0 bytes)``."""
    return reason.replace(f": {url}", "").replace(f" in {url}", "").replace(f" {url}", "")


def close_sources(opened: Opened) -> None:
    for _, source in opened:
        source.close()


def with_open_sources(config: PipelineConfig, build: Callable[[Opened], T],
                      ids: Optional[Collection[str]] = None, looks: Optional["FirstLooks"] = None) -> T:
    """Open the sources (``open_sources``, taking what ``looks`` opened) and ``build`` on them (the detector and
    the ``Runner``); when that fails, the sources are closed before the error goes on."""
    opened = open_sources(config, ids, looks)
    try:
        return build(opened)
    except BaseException:
        close_sources(opened)
        raise


# SIGHUP too: a closed terminal or SSH session stops the run gracefully (state saved, video finished)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class _SignalStack(ctypes.Structure):  # stack_t of sigaltstack(2), Linux
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_OWN_STACKS: dict[int, Any] = {}  # thread id -> its stack from own_signal_stack (kept as long as the process)


def own_signal_stack(size: int = 256 * 1024) -> None:
    """Give the calling thread an alternate signal stack that lives as long as the process.

    Python runs its signal handlers on the thread's alternate stack when it has one (``SA_ONSTACK``). OpenVINO's
    CPU plugin installs one on the thread that compiles a model and unmaps it later, possibly from another
    thread, so the main thread is left pointing at unmapped memory: the next SIGINT/SIGTERM/SIGHUP then killed
    the run with SIGSEGV instead of stopping it (seen in 1 of 4 SIGHUPs on a loaded machine). Linux only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buffer = _OWN_STACKS.get(threading.get_ident()) or ctypes.create_string_buffer(size)
        stack = _SignalStack(ctypes.cast(buffer, ctypes.c_void_p), 0, ctypes.sizeof(buffer))
        if libc.sigaltstack(ctypes.byref(stack), None) == 0:
            _OWN_STACKS[threading.get_ident()] = buffer
    except (OSError, AttributeError):  # no libc symbol: handlers run on the thread's stack as before
        pass


class StopSignals:
    """SIGINT/SIGTERM/SIGHUP: the first calls ``stop`` (a graceful stop: frames in flight processed, outputs
    flushed), a second ends the process at once (``at_once(signum)``; default ``os._exit(128 + signum)``)."""

    def __init__(self, stop: Callable[[], None], what: str = "after the frames in flight",
                 at_once: Optional[Callable[[int], None]] = None) -> None:
        self.stop, self.what = stop, what
        self.at_once = at_once or (lambda signum: os._exit(128 + signum))
        self.received: Optional[int] = None
        self._old: dict[int, Any] = {}  # previous handlers, as signal.signal returns them

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            own_signal_stack()  # the model is loaded by now: its libraries may have left a stack that goes away
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.received is not None:
            print("trackstream: stopping now", file=sys.stderr)
            self.at_once(signum)
            return
        self.received = signum
        print(f"\ntrackstream: stopping {self.what} (signal again to quit at once)", file=sys.stderr)
        self.stop()


__all__ = ["Opened", "StopSignals", "check_writable", "claim_writes", "close_sources", "open_sources", "preflight",
           "require_sources", "resolve_model", "skip_unreadable", "warn_skipping", "warn_unsaved", "with_open_sources"]

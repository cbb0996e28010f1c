"""The two kinds of Ray actor: ``CameraActor`` (a group of cameras, run until removed) and ``FileWorker``
(recorded files, one after another, with its model loaded once).

Both are plain classes here (importable without Ray); ``pipelines.cluster.engine`` makes them actors with
unlimited restarts. Inside, each runs today's in-process ``Runner``: an actor adds nothing to a camera's
processing, only where it runs. What a restart needs is in the snapshot store (``--state``, Redis on a
cluster): a restarted actor's ``Runner`` loads each source's snapshot and continues its track IDs, counts
and outputs. Results travel back as plain values (``Outcome``).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from pipelines.config import PipelineConfig
from pipelines.errors import UserError, first_line
from pipelines.processing.events import Counts
from pipelines.secrets import install_log_mask
from pipelines.settings import SourceSettings

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a finished run of some sources left: per-source counter snapshots, counts, files, losses."""

    stats: list[dict[str, object]] = field(default_factory=list)
    counts: dict[str, Counts] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    error: Optional[str] = None       # one line: the run failed (a UserError's text, or the stage that failed)
    exit_code: int = 0


def _outcome(runner: Any, error: Optional[BaseException]) -> Outcome:
    out = Outcome() if runner is None else Outcome(
        stats=[s.snapshot() for s in runner.stats],
        counts={lane.settings.id: lane.processor.counts() for lane in runner.lanes},
        outputs=list(runner.outputs), losses=list(runner.losses()))
    if error is not None:
        out.error = first_line(error)
        out.exit_code = int(getattr(error, "exit_code", 1)) if isinstance(error, UserError) else 1
    return out


def _open(settings: SourceSettings) -> Any:
    from pipelines.sources import open_source

    return open_source(settings)


def _store(config: PipelineConfig) -> Any:
    from pipelines.engine.state import open_store

    return open_store(config.state.dir) if config.state.dir else None


def reserved_cores(config: PipelineConfig) -> Optional[int]:
    """The CPU cores the detector of an actor may use: what Ray reserved for it (``cpus_per_actor``, at least
    one), not every core of the node, which the other actors there share."""
    cpus = config.cluster.cpus_per_actor
    return max(1, int(cpus)) if cpus > 0 else None


def _restarted() -> bool:
    """True in an actor that Ray restarted after its process or node died."""
    from pipelines.cluster.ray_env import import_ray

    return bool(import_ray().get_runtime_context().was_current_actor_reconstructed)


class CameraActor:
    """Runs some cameras (``source_ids`` of ``config.sources``) until they end or ``stop()``.

    Started by Ray (``__init__`` again after a restart: it then loads the snapshots and announces the outage
    as ``stream_gap`` + ``stream_resumed``). ``status()`` answers while the cameras run.
    """

    def __init__(self, config: PipelineConfig, source_ids: list[str], model: str, name: str,
                 max_frames: Optional[int] = None) -> None:
        from pipelines.cluster.ray_env import node_address
        from pipelines.detection.detector import Detector
        from pipelines.engine.runner import Runner

        install_log_mask()  # Ray's worker log handlers mask credentials like the CLI's
        self.name = name
        self.node = node_address()
        restarted = _restarted()
        store = _store(config)
        self.restarts = store.note_start(name, restarted) if store is not None else int(restarted)
        if restarted:
            log.warning("%s restarted on %s (restart %d): continuing from the saved state", name, self.node,
                        self.restarts)
        self.source_ids = list(source_ids)
        self._error: Optional[BaseException] = None
        self._done = threading.Event()
        self.runner: Any = None
        pairs = []
        try:
            for settings in config.sources:
                if settings.id in self.source_ids:
                    pairs.append((settings, _open(settings)))
            detector = Detector(config.detector, model, cores=reserved_cores(config))
            self.runner = Runner(pairs, detector, config, max_frames=max_frames, state=store, restarted=restarted)
        except UserError as exc:  # a bad model, state or source: reported by status()/result(), not re-raised
            for _, source in pairs:  # (Ray would print its traceback and the actor would be dead for good)
                source.close()
            self._error = exc
            self._done.set()
            return
        except BaseException:
            for _, source in pairs:
                source.close()
            raise
        self._thread = threading.Thread(target=self._run, name="trackstream-camera-actor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self._error = exc
        finally:
            self._done.set()

    def status(self) -> list[dict[str, object]]:
        """Per camera: id, node, state (live / reconnecting / ended / failed), fps, latency, frames, restarts."""
        if self.runner is None:
            return [{"source_id": sid, "node": self.node, "state": "failed", "restarts": self.restarts,
                     "actor": self.name, "pid": os.getpid(), "fps": 0.0, "latency_s": 0.0, "frames_out": 0,
                     "error": first_line(self._error) if self._error else None} for sid in self.source_ids]
        out = []
        for lane in self.runner.lanes:
            snap = lane.stats.snapshot()
            if self._done.is_set():
                state = "failed" if self._error is not None else "ended"
            else:
                state = "live" if bool(getattr(lane.source, "connected", True)) else "reconnecting"
            out.append({**snap, "node": self.node, "state": state, "restarts": self.restarts, "actor": self.name,
                        "pid": os.getpid()})
        return out

    def result(self) -> Optional[Outcome]:
        """The outcome once every camera ended (None while running)."""
        if not self._done.is_set():
            return None
        return _outcome(self.runner, self._error)

    def stop(self, timeout: float = 30.0) -> Outcome:
        """Stop reading, flush every output, take the last snapshot; the outcome."""
        if self.runner is not None:
            self.runner.stop()
        self._done.wait(timeout)
        return _outcome(self.runner, self._error)


class FileWorker:
    """Processes recorded files one call at a time with one detector, loaded when the worker starts.

    A call Ray retries after the worker died runs on the restarted worker and resumes the file from its
    snapshot (``--state``), so the file's outputs continue where the last snapshot left them.
    """

    def __init__(self, config: PipelineConfig, model: str) -> None:
        from pipelines.cluster.ray_env import node_address
        from pipelines.detection.detector import Detector

        install_log_mask()
        self.config = config
        self.node = node_address()
        self._error: Optional[UserError] = None
        self.detector: Any = None
        try:  # a bad model or state: each call answers with it (raised here, Ray prints a traceback)
            self.store = _store(config)
            self.detector = Detector(config.detector, model, cores=reserved_cores(config))
        except UserError as exc:
            self._error = exc
        self._lock = threading.Lock()
        self._runner: Any = None
        self._stopped = False

    def process(self, source_id: str, max_frames: Optional[int] = None) -> Outcome:
        """Process one file of ``config.sources`` (to its end, or until ``stop()``)."""
        from pipelines.engine.runner import Runner

        if self._error is not None:
            return _outcome(None, self._error)
        settings = next(s for s in self.config.sources if s.id == source_id)
        runner = Runner([(settings, _open(settings))], self.detector, self.config, max_frames=max_frames,
                        state=self.store)
        with self._lock:
            self._runner = runner
            if self._stopped:
                runner.stop()
        error: Optional[BaseException] = None
        try:
            runner.run()
        except UserError as exc:
            error = exc
        finally:
            with self._lock:
                self._runner = None
        return _outcome(runner, error)

    def progress(self) -> list[dict[str, object]]:
        """Counters of the file being processed now (empty between files)."""
        with self._lock:
            runner = self._runner
        if runner is None:
            return []
        return [{**s.snapshot(), "node": self.node, "pid": os.getpid()} for s in runner.stats]

    def stop(self) -> None:
        """Stop the current file after the frames in flight (its state is saved); take no more."""
        with self._lock:
            self._stopped = True
            if self._runner is not None:
                self._runner.stop()

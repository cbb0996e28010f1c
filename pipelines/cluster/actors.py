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
from typing import TYPE_CHECKING, Optional

from pipelines.cluster.outcome import CameraStatus, Outcome
from pipelines.config import PipelineConfig
from pipelines.engine.stats import StatsSnapshot
from pipelines.engine.view import EngineView
from pipelines.errors import UserError, first_line
from pipelines.secrets import install_log_mask

if TYPE_CHECKING:
    from pipelines.detection.detector import Detector
    from pipelines.engine.runner import Runner
    from pipelines.engine.state import SnapshotStore

log = logging.getLogger(__name__)


def _outcome(engine: Optional[EngineView], error: Optional[BaseException]) -> Outcome:
    message = None if error is None else first_line(error)
    code = 0 if error is None else error.exit_code if isinstance(error, UserError) else 1
    if engine is None:
        return Outcome(error=message, exit_code=code)
    states = engine.sources()
    return Outcome(stats=tuple(s.stats for s in states), counts={s.id: s.counts for s in states},
                   outputs=tuple(engine.outputs), losses=tuple(engine.losses()), error=message, exit_code=code)


def _store(config: PipelineConfig) -> Optional["SnapshotStore"]:
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
        from pipelines.detection.detector import Detector, detection_concurrency
        from pipelines.engine.launch import Opened, with_open_sources
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
        self.runner: Optional[Runner] = None

        def start(opened: Opened) -> Runner:
            detector = Detector(config.detector, model, cores=reserved_cores(config),
                                in_flight=detection_concurrency([s.schedule.waits_for_plans for s, _ in opened]))
            return Runner(opened, detector, config, max_frames=max_frames, state=store, restarted=restarted)

        try:
            self.runner = with_open_sources(config, start, ids=self.source_ids)
        except UserError as exc:  # a bad model, state or source: reported by status()/result(), not re-raised
            self._error = exc  # (Ray would print its traceback and the actor would be dead for good)
            self._done.set()
            return
        self._thread = threading.Thread(target=self._run, name="trackstream-camera-actor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self.runner is not None:
                self.runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self._error = exc
        finally:
            self._done.set()

    def status(self) -> list[CameraStatus]:
        """Per camera: id, node, state (live / reconnecting / ended / failed), fps, latency, frames, restarts."""
        if self.runner is None:
            error = first_line(self._error) if self._error else None
            return [self._status(StatsSnapshot(sid), "failed", error) for sid in self.source_ids]
        out = []
        for source in self.runner.sources():
            if self._done.is_set():
                state = "failed" if self._error is not None else "ended"
            else:
                state = "live" if source.connected else "reconnecting"
            out.append(self._status(source.stats, state))
        return out

    def _status(self, stats: StatsSnapshot, state: str, error: Optional[str] = None) -> CameraStatus:
        return CameraStatus(stats, node=self.node, state=state, restarts=self.restarts, actor=self.name,
                            pid=os.getpid(), error=error, started=self.runner is not None)

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
        self.detector: Optional[Detector] = None
        self.store: Optional[SnapshotStore] = None
        try:  # a bad model or state: each call answers with it (raised here, Ray prints a traceback)
            self.store = _store(config)
            self.detector = Detector(config.detector, model, cores=reserved_cores(config))
        except UserError as exc:
            self._error = exc
        self._lock = threading.Lock()
        self._runner: Optional[Runner] = None
        self._stopped = False

    def process(self, source_id: str, max_frames: Optional[int] = None) -> Outcome:
        """Process one file of ``config.sources`` (to its end, or until ``stop()``)."""
        from pipelines.engine.launch import Opened, with_open_sources
        from pipelines.engine.runner import Runner

        detector = self.detector
        if self._error is not None or detector is None:
            return _outcome(None, self._error)

        def start(opened: Opened) -> Runner:
            return Runner(opened, detector, self.config, max_frames=max_frames, state=self.store)

        runner = with_open_sources(self.config, start, ids=[source_id])
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

    def progress(self) -> list[StatsSnapshot]:
        """Counters of the file being processed now (empty between files)."""
        with self._lock:
            runner = self._runner
        return [] if runner is None else runner.stats

    def stop(self) -> None:
        """Stop the current file after the frames in flight (its state is saved); take no more."""
        with self._lock:
            self._stopped = True
            if self._runner is not None:
                self._runner.stop()

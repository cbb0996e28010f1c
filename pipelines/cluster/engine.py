"""``trackstream run --engine ray``: the sources of a run in Ray actors (docs/cluster.md).

Ray places the actors, checks their health, restarts them (``max_restarts=-1``) and retries the call a
dead worker was running (``max_task_retries=-1``); trackstream only tells each actor which sources it runs
and where their snapshots are. Recorded files are spread over ``FileWorker`` actors (model loaded once per
worker, one file per call); cameras run in named, detached ``CameraActor`` actors of up to
``cluster.cameras_per_actor`` cameras. The driver (this process) shows progress, stops the actors on
Ctrl-C and prints the same summary as the local engine.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from typing import Optional, Protocol, Sequence

from pipelines.cluster.actors import CameraActor, FileWorker
from pipelines.cluster.handles import FileWorkerHandle, RayAPI, Ref
from pipelines.cluster.outcome import Outcome
from pipelines.cluster.ray_env import ClusterError, cluster_address, connect, failure
from pipelines.config import PipelineConfig
from pipelines.errors import DataLossError, UserError, first_line
from pipelines.engine.launch import StopSignals, claim_writes, preflight, warn_unsaved
from pipelines.engine.progress import Progress, summary_lines
from pipelines.engine.stats import StatsSnapshot
from pipelines.settings import SourceSettings

log = logging.getLogger(__name__)

CAMERA_PREFIX = "camera:"
POLL_S = 0.5


def camera_actor_name(source_ids: list[str]) -> str:
    """The Ray name of the actor running these cameras (``camera:<id>`` or ``camera:<id>+<id>...``)."""
    return CAMERA_PREFIX + "+".join(source_ids)


def actor_options(config: PipelineConfig, **extra: object) -> dict[str, object]:
    """Ray options of every trackstream actor: unlimited restarts and retries, the configured resources."""
    cfg = config.cluster
    return {"max_restarts": -1, "max_task_retries": -1, "num_cpus": cfg.cpus_per_actor,
            "num_gpus": cfg.gpus_per_actor, **extra}


class _Part(Protocol):
    """One kind of actor of a run (``_Files``, ``_Cameras``), driven in turns by ``execute_ray``."""

    progress: dict[str, StatsSnapshot]   # source id -> counters of a source running now
    outcomes: dict[str, Outcome]         # source id (files) or actor name (cameras) -> what it left

    @property
    def finished(self) -> bool: ...

    def step(self) -> None:
        """One turn: hand out work, collect outcomes and progress (waits at most about ``POLL_S``)."""
        ...

    def stop(self) -> None:
        """Stop after the frames in flight (outputs flushed, state saved)."""
        ...

    def close(self) -> None:
        """Remove the actors."""
        ...


class _Files:
    """Hands the run's files to a pool of ``FileWorker`` actors, one file per call, and collects outcomes."""

    def __init__(self, ray: RayAPI, config: PipelineConfig, files: list[SourceSettings], model: str,
                 max_frames: Optional[int]) -> None:
        self.ray, self.max_frames = ray, max_frames
        self.pending = [s.id for s in files]
        self.outcomes: dict[str, Outcome] = {}
        self.progress: dict[str, StatsSnapshot] = {}
        cfg = config.cluster
        n = cfg.file_workers or self._capacity(config)
        n = max(1, min(n, len(files)))
        worker = ray.remote(FileWorker).options(**actor_options(config, max_concurrency=3))
        self.workers = [worker.remote(config, model) for _ in range(n)]
        self.running: dict[Ref[Outcome], tuple[FileWorkerHandle, str]] = {}  # call ref -> (worker, source id)
        self.idle = list(self.workers)
        log.info("%d file%s over %d worker%s", len(files), "s" * (len(files) != 1), n, "s" * (n != 1))

    def _capacity(self, config: PipelineConfig) -> int:
        resources = self.ray.cluster_resources()
        cfg = config.cluster
        fits = []
        if cfg.cpus_per_actor > 0:
            fits.append(int(resources.get("CPU", 1) // cfg.cpus_per_actor))
        if cfg.gpus_per_actor > 0:
            fits.append(int(resources.get("GPU", 0) // cfg.gpus_per_actor))
        return max(1, min(fits) if fits else 1)

    def _dispatch(self) -> None:
        while self.idle and self.pending:
            worker = self.idle.pop(0)
            source_id = self.pending.pop(0)
            self.running[worker.process.remote(source_id, self.max_frames)] = (worker, source_id)

    def step(self) -> None:
        self._dispatch()
        if not self.running:
            return
        done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=POLL_S)
        for ref in done:
            worker, source_id = self.running.pop(ref)
            self.progress.pop(source_id, None)
            try:
                self.outcomes[source_id] = self.ray.get(ref)
                self.idle.append(worker)
            except Exception as exc:  # noqa: BLE001 - a worker Ray cannot restart (its start fails): one line
                self.outcomes[source_id] = Outcome(error=f"{source_id}: {failure(exc)}", exit_code=1)
                if not self.idle and not self.running:  # no worker left: the files still waiting fail alike
                    for waiting in self.pending:
                        self.outcomes[waiting] = Outcome(error=f"{waiting}: {failure(exc)}", exit_code=1)
                    self.pending.clear()
        self._dispatch()  # a worker that finished takes the next file now, not a turn later
        for asked in [worker.progress.remote() for worker, _ in self.running.values()]:  # all at once
            try:  # a restarting worker does not answer: its last numbers stay shown
                for snap in self.ray.get(asked, timeout=2.0):
                    self.progress[snap.source_id] = snap
            except Exception:  # noqa: BLE001 - progress is best effort
                pass

    @property
    def finished(self) -> bool:
        return not self.pending and not self.running

    def stop(self) -> None:
        self.pending.clear()
        for worker in self.workers:
            worker.stop.remote()

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker, no_restart=True)


class _Cameras:
    """Starts the named, detached camera actors of the run and collects their outcomes."""

    def __init__(self, ray: RayAPI, config: PipelineConfig, cameras: list[SourceSettings], model: str,
                 max_frames: Optional[int]) -> None:
        self.ray = ray
        per = config.cluster.cameras_per_actor
        groups = [[s.id for s in cameras[i:i + per]] for i in range(0, len(cameras), per)]
        existing = set(ray.util.list_named_actors())
        taken = [camera_actor_name(g) for g in groups if camera_actor_name(g) in existing]
        if taken:
            raise ClusterError(f"{taken[0]} already runs on this Ray cluster (trackstream cluster list; "
                               f"trackstream cluster remove ID to stop it)")
        actor = ray.remote(CameraActor)
        self.actors = {camera_actor_name(g): actor.options(
            **actor_options(config, name=camera_actor_name(g), lifetime="detached", max_concurrency=4)
        ).remote(config, g, model, camera_actor_name(g), max_frames) for g in groups}
        self.outcomes: dict[str, Outcome] = {}
        self.progress: dict[str, StatsSnapshot] = {}

    def step(self) -> None:
        asked = {name: (handle.result.remote(), handle.status.remote())  # every actor at once, then the answers
                 for name, handle in self.actors.items() if name not in self.outcomes}
        for name, (result_ref, status_ref) in asked.items():
            try:
                result = self.ray.get(result_ref, timeout=5.0)
                for status in self.ray.get(status_ref, timeout=5.0):
                    self.progress[status.stats.source_id] = status.stats
            except self.ray.exceptions.ActorDiedError as exc:  # cannot be restarted: its start itself failed
                self.outcomes[name] = Outcome(error=f"{name}: {failure(exc)}", exit_code=1)
                continue
            except Exception:  # noqa: BLE001 - a restarting actor does not answer yet
                continue
            if result is not None:
                self.outcomes[name] = result

    @property
    def finished(self) -> bool:
        return len(self.outcomes) == len(self.actors)

    def stop(self) -> None:
        calls = {name: h.stop.remote() for name, h in self.actors.items() if name not in self.outcomes}
        for name, ref in calls.items():
            try:
                self.outcomes[name] = self.ray.get(ref, timeout=60.0)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s did not stop cleanly: %s", name, first_line(exc))

    def close(self) -> None:
        for handle in self.actors.values():
            self.ray.kill(handle, no_restart=True)


def execute_ray(config: PipelineConfig, *, max_frames: Optional[int] = None, quiet: bool = False,
                config_files: Sequence[Optional[str]] = ()) -> int:
    """Run every source of ``config`` on Ray; print the summary; the exit code (as ``execute``). What the run
    writes is checked and locked as in a local run (``claim_writes``); the file locks only on an embedded
    cluster, whose actors write on this machine."""
    if config.http.enabled or config.metrics.port:
        raise ClusterError("--http and --metrics-port serve one process's sources: with --engine ray use "
                           "trackstream cluster list (and Redis or MQTT for the results)")
    with claim_writes(config, config_files, lock_files=cluster_address(config.cluster) is None):
        return _execute_ray(config, max_frames, quiet)


def warn_folder_state(config: PipelineConfig) -> None:
    """A folder as --state on a cluster of several machines: restarted elsewhere, an actor finds it only on
    storage every node shares."""
    if config.state.dir and "://" not in config.state.dir:
        log.warning("--state %s is a folder: an actor restarted on another node finds it only on storage every "
                    "node shares (use --state redis://HOST:PORT/DB)", config.state.dir)


def _execute_ray(config: PipelineConfig, max_frames: Optional[int], quiet: bool) -> int:
    model = preflight(config)
    warn_unsaved(config)
    embedded = cluster_address(config.cluster) is None
    cameras = [s for s in config.sources if s.is_live]
    if cameras and not config.state.dir:
        log.warning("cameras on Ray without --state: a restarted actor starts new track IDs and counts "
                    "(use --state redis://HOST:PORT/DB)")
    if not embedded:
        warn_folder_state(config)
    ray = connect(config.cluster, quiet=quiet)
    files = [s for s in config.sources if not s.is_live]
    started = time.monotonic()
    parts: list[_Part] = []
    progress = Progress(enabled=None if not quiet else False)
    try:
        if files:
            parts.append(_Files(ray, config, files, model, max_frames))
        if cameras:
            parts.append(_Cameras(ray, config, cameras, model, max_frames))
        stop = threading.Event()

        def quit_now(signum: int) -> None:
            raise SystemExit(128 + signum)  # through the finally below: the run's actors are still removed

        with StopSignals(stop.set, "the actors after the frames in flight", at_once=quit_now):
            stopping = False
            while not all(p.finished for p in parts):
                turn = time.monotonic()
                if stop.is_set() and not stopping:
                    stopping = True
                    for part in parts:
                        part.stop()
                for part in parts:
                    part.step()
                progress.update(_current(config, parts))
                time.sleep(max(0.0, turn + POLL_S - time.monotonic()))  # a turn every POLL_S, never a busy loop
    finally:
        progress.finish()
        for part in parts:
            try:
                part.close()
            except Exception:  # noqa: BLE001 - the cluster may be going away
                log.debug("closing actors failed", exc_info=True)
        if embedded:
            ray.shutdown()
    return _summarise(config, parts, time.monotonic() - started)


def _current(config: PipelineConfig, parts: Sequence[_Part]) -> list[StatsSnapshot]:
    snaps: dict[str, StatsSnapshot] = {}
    for part in parts:
        snaps.update(part.progress)
        for outcome in part.outcomes.values():
            snaps.update({s.source_id: dataclasses.replace(s, ended=True) for s in outcome.stats})
    return [snaps[s.id] for s in config.sources if s.id in snaps]


def _summarise(config: PipelineConfig, parts: Sequence[_Part], elapsed: float) -> int:
    outcomes = [o for part in parts for o in part.outcomes.values()]
    by_id = {s.source_id: s for o in outcomes for s in o.stats}
    stats = [dataclasses.replace(by_id[s.id], ended=True) for s in config.sources if s.id in by_id]
    counts = {k: v for o in outcomes for k, v in o.counts.items()}
    outputs = [p for o in outcomes for p in o.outputs]
    losses = [loss for o in outcomes for loss in o.losses]
    for line in summary_lines(stats, outputs, elapsed, counts, losses):
        print(line, file=sys.stderr)
    errors = [o for o in outcomes if o.error]
    if errors:
        first = errors[0]
        others = len({o.error for o in errors}) - 1  # every file worker reports a bad model once per file
        more = f" (and {others} more)" if others > 0 else ""
        error = UserError(f"{first.error}{more}")
        error.exit_code = first.exit_code or 1
        raise error
    if losses:
        more = f" (and {len(losses) - 1} more, listed above)" if len(losses) > 1 else ""
        raise DataLossError(f"{losses[0]}{more}")
    return 0

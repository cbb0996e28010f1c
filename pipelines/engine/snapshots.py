"""``Snapshots``: each source's state (``--state``) loaded into its processor at its start and taken as it runs.

At start (or a waiting file's turn) a source's processor continues from its saved state, once the resume is
checked to be of this source and these outputs (``fingerprint.check_resume``; a refused one stops the run). While
it runs, ``take`` makes a ``Checkpoint`` of the processor: the processing thread sends it through the source's
sinks' queues behind the frames it covers, and it is saved once every file sink has them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Mapping, Optional

from pipelines.config import PipelineConfig
from pipelines.engine.fingerprint import check_resume, grown_since, output_paths, source_fingerprint
from pipelines.engine.lane import Lane
from pipelines.engine.resume_settings import forget_places, run_settings
from pipelines.engine.state import Checkpoint, SnapshotStore
from pipelines.errors import OutputError
from pipelines.processing.processor import StreamProcessor
from pipelines.settings import SourceSettings
from pipelines.sources.base import Source

log = logging.getLogger("pipelines.engine.runner")   # the engine's lines keep the name their readers know


class Snapshots:
    """Loads, checks and takes each source's snapshot.

    Args:
        config: the pipeline config (overlays, outputs, ``state.fresh``, the settings a snapshot records).
        store: where snapshots are loaded from and saved to (None: no snapshots; every processor starts fresh).
        class_names: the detector's class names, for the processors.
        restarted: this run replaces a worker that died: a resumed camera announces the outage.
        fingerprints: the sources' fingerprints already taken, by source id (the others are taken here).
    """

    def __init__(self, config: PipelineConfig, store: Optional[SnapshotStore], class_names: Mapping[int, str], *,
                 restarted: bool = False, fingerprints: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
        self.store = store
        self._config = config
        self._class_names = class_names
        self._overlay = config.overlay if config.output.video else dataclasses.replace(config.overlay, trails=False)
        self._restarted = restarted
        self._known = fingerprints or {}
        self._fingerprints: dict[str, dict[str, Any]] = {}
        self._settings: dict[str, dict[str, Any]] = {}   # each open source's run_settings, saved with its snapshot
        self._uncompared: list[str] = []   # resumed from snapshots of a release that did not record their settings

    def fingerprint(self, settings: SourceSettings, source: Source) -> None:
        """Keep ``source``'s fingerprint (with a store): a resume must be of this source and these outputs."""
        if self.store is not None:
            known = self._known.get(settings.id)
            self._fingerprints[settings.id] = dict(known) if known is not None else \
                source_fingerprint(settings, source.frame_count)

    def saved(self, settings: SourceSettings) -> Optional[Mapping[str, Any]]:
        """The source's saved state (``--state``; not with ``--fresh-state``), None when there is none."""
        return self.store.load(settings.id) if self.store is not None and not self._config.state.fresh else None

    def processor(self, settings: SourceSettings, saved: Optional[Mapping[str, Any]], warn: bool) -> StreamProcessor:
        """The source's processor, continued from ``saved`` (its saved state) when there is one. ``warn``: say what
        differs from the saved run, or what a resume cannot check (once per source: at start)."""
        state, config = self.store, self._config
        processor = StreamProcessor(settings, self._class_names, overlay=self._overlay,
                                    persistent=state is not None, kept_classes=config.detector.classes)
        if saved is None or state is None:
            return processor
        several = len(config.sources) > 1
        moved = check_resume(saved, settings, self._fingerprints[settings.id],
                             output_paths(config.output, settings.id, several), state.path(settings.id), warn=warn,
                             several=several, configured=run_settings(config, settings))
        if warn and isinstance(saved.get("source"), dict) and not isinstance(saved.get("settings"), dict):
            self._uncompared.append(settings.id)
        processor.load_state_dict(forget_places(saved["processor"], moved) if moved else saved["processor"])
        processor.after_outage = self._restarted
        return processor

    def warn_done(self, settings: SourceSettings, saved: Mapping[str, Any]) -> None:
        """One line: the file was already processed to its end by the run of its ``saved`` state."""
        grew = grown_since(saved.get("source"), settings)   # written on after a pause in recording
        since = f", but the file has grown by {grew} bytes since" if grew else ""
        assert self.store is not None
        log.warning("%s: already processed to its end (state %s)%s; remove that file and run with "
                    "--overwrite (which replaces its outputs) to process it%s again", settings.id,
                    self.store.path(settings.id), since, " all" if grew else "")

    def warn_uncompared(self) -> None:
        """One line (once, not once per source of an archive) naming the sources resumed from snapshots that do not
        record their run's settings."""
        if self._uncompared:
            uncompared = self._uncompared
            more = f" and {len(uncompared) - 3} more" if len(uncompared) > 3 else ""
            log.warning("the saved states of %s%s do not record their run's settings (an earlier trackstream): "
                        "a resume with another model, size, stride, schedule, tracker or zones cannot be noticed",
                        ", ".join(uncompared[:3]), more)

    def opened(self, settings: SourceSettings) -> None:
        """The source's lane opened: its snapshots record this run's settings."""
        if self.store is not None:
            self._settings[settings.id] = run_settings(self._config, settings)

    def closed(self, source_id: str) -> None:
        """The source's lane let go of everything: no snapshot of it is taken any more."""
        self._settings.pop(source_id, None)

    def take(self, lane: Lane) -> Optional[Checkpoint]:
        """The processor's snapshot, to send behind the frames it covers; saved once every file sink has them.
        None without a store."""
        store = self.store
        if store is None:
            return None
        lane.last_checkpoint = time.monotonic()
        lane.checkpoints_taken += 1
        seq = lane.checkpoints_taken

        def save(processor: dict[str, Any], outputs: dict[str, Any]) -> None:
            with lane.save_lock:
                if seq <= lane.checkpoints_saved:
                    return  # a later snapshot of this source is already on disk
                merged = {**lane.saved_outputs, **outputs}  # a failed output keeps its last good position
                try:
                    store.save(lane.settings.id, processor, merged, source=self._fingerprints.get(lane.settings.id),
                               settings=self._settings.get(lane.settings.id))
                except OutputError as exc:  # the snapshot's own failure, never an output's: one line, once
                    if lane.state_failure is None:
                        log.error("%s (the run goes on; a resume would start from the last snapshot saved)", exc)
                    lane.state_failure = str(exc)
                    return
                if lane.state_failure is not None:
                    log.info("%s: state saved again (%s)", lane.settings.id, store.path(lane.settings.id))
                    lane.state_failure = None
                lane.saved_outputs, lane.checkpoints_saved = merged, seq

        return Checkpoint(lane.processor.state_dict(),
                          {s.name for s in lane.outlets if s.keeps_files} if lane.outlets_open else set(), save)


__all__ = ["Snapshots"]

"""The event store sink (``--db``): every event and one row per track into SQLite or PostgreSQL, with media.

Per frame, on the sink's own thread (the processing thread only queues the result): the frame's events
become ``events`` rows, the tracks' histories are updated (``pipelines/store/tracks.py``), the best view of
each track is kept (``snapshots.py``) and, with clips on, the frame goes into the clip ring (``clips.py``).
Rows go to a ``StoreWriter`` that writes them in batches from its own thread (a database that is down
buffers them, then the loss is reported and the run exits 3, as with Redis); pictures and clips are
written by a ``MediaWorker`` thread.

Drop policy ``block``: the history must hold every event, like the events file. The sink's own work per
frame is bounded (no database or disk I/O, at most one score per track per second), so it keeps up.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from pipelines.frames import Event, FrameResult, StreamStatus
from pipelines.sinks.base import DropPolicy, SinkContext, SinkEntry
from pipelines.store.clips import Clip, ClipRecorder, encode_clip
from pipelines.store.config import StoreConfig
from pipelines.store.media import MediaNames, MediaRetention, MediaWorker, write_file
from pipelines.store.snapshots import SnapshotPicker, encode_view
from pipelines.store.tracks import TrackBook, TrackLog

if TYPE_CHECKING:
    from pipelines.store.writer import StoreWriter

log = logging.getLogger("trackstream.store")

RETENTION_INTERVAL_S = 60.0


def event_row(doc: Mapping[str, Any], stream_time: Optional[float], clip: Optional[str]) -> dict[str, Any]:
    """The ``events`` row of an event document."""
    track = doc.get("track") if isinstance(doc.get("track"), Mapping) else None
    return {"source_id": doc["source_id"], "event": doc["event"], "time": float(doc["time"]), "pts": doc.get("pts"),
            "stream_time": stream_time, "frame_index": doc.get("frame_index"),
            "track_id": None if track is None else int(track["id"]),
            "class_name": None if track is None else track.get("class_name"),
            "zone": doc.get("zone"), "line": doc.get("line"), "direction": doc.get("direction"), "clip": clip,
            "doc": json.dumps(doc, separators=(",", ":"), default=str), "replay_key": replay_key(doc, stream_time)}


def replay_key(doc: Mapping[str, Any], stream_time: Optional[float]) -> Optional[str]:
    """What makes a frame's event the same when the frame is processed again (after a restart from its saved
    state, the frame gets the same time on the stream's persistent clock); None for stream events."""
    if stream_time is None:
        return None
    track = doc.get("track") if isinstance(doc.get("track"), Mapping) else None
    where = doc.get("zone") or doc.get("line") or ""
    return f"{int(round(stream_time * 1000))}:{doc['event']}:{'' if track is None else track['id']}:{where}"


class StoreSink:
    """The history of one source.

    Args:
        config: the ``store:`` section (``db`` set).
        source_id: the source's id.
        writer: a writer to share (tests, benchmarks); by default the sink opens its own.
    """

    def __init__(self, config: StoreConfig, source_id: str, writer: Optional["StoreWriter"] = None) -> None:
        from pipelines.store.db import describe
        from pipelines.store.writer import StoreWriter  # SQLAlchemy is loaded only by runs that keep a history

        assert config.db is not None
        self._cfg = config
        self.source_id = source_id
        self._own_writer = writer is None
        self._writer = writer or StoreWriter(config.db, buffer_max_entries=config.buffer_max_entries,
                                             batch_max=config.batch_max, connect_timeout=config.connect_timeout)
        self._book = TrackBook(source_id, config.path_points)
        # an earlier run of this source that was killed left its tracks open: they end now, before our rows
        self._writer.put("interrupted", {"source_id": source_id})
        self._media_root = Path(config.media).expanduser() if config.media else None
        self._names: Optional[MediaNames] = None
        self._worker: Optional[MediaWorker] = None
        self._picker: Optional[SnapshotPicker] = None
        self._clips: Optional[ClipRecorder] = None
        self._retention = MediaRetention(config.retain_seconds, config.retain_bytes)
        self._next_retention = 0.0
        if self._media_root is not None:
            self._names = MediaNames(self._media_root, source_id)
            self._worker = MediaWorker(source_id)
            if config.snapshots:
                self._picker = SnapshotPicker()
            if config.clips:
                self._clips = ClipRecorder(config.clip_before, config.clip_after, config.clip_width,
                                           config.clip_max_seconds, self._encode_later)
        self._closed = False
        self.events_written = 0
        log.info("history of %s: %s%s", source_id, describe(config.db),
                 f", media in {self._media_root}" if self._media_root else "")

    # -- Sink ---------------------------------------------------------------------------------------------
    def write(self, result: FrameResult) -> None:
        if self._clips is not None:
            self._clips.add(result)
        self._events(result.events, result.stream_time, float(result.frame.pts))
        self._book.observe(result)
        if self._picker is not None:
            self._picker.observe(result)
        self._maybe_retain()

    def status(self, status: StreamStatus) -> None:
        self._events(status.events, None, None)
        if status.kind.value in ("stream_ended", "closed") and self._clips is not None:
            self._clips.close()

    def position(self) -> None:
        """Nothing to continue: a frame processed again after a restart has the same events' replay keys, which
        the database already holds (``events.replay_key``)."""
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for track in list(self._book.live.values()):   # tracks still alive (a run stopped with --state)
            self._finish_track(track)
        if self._clips is not None:
            self._clips.close()
        if self._worker is not None:
            self._worker.close()
            if self._worker.failed:   # counted as lost below: the run exits 3
                log.warning("media of %s: %d snapshot(s) or clip(s) could not be written (%s); their rows say "
                            "the file is missing", self.source_id, self._worker.failed, self._worker.reason)
            if self._retention.active and self._names is not None and self._media_root is not None:
                self._retention.apply(self._media_root / self._names.folder)
        if self._own_writer:
            self._writer.close(self._cfg.flush_timeout)

    def undelivered(self) -> int:
        """Rows dropped or never written, and snapshot or clip jobs that failed (a full disk): a run that lost
        any exits 3."""
        rows = self._writer.stats().dropped if self._own_writer else 0
        return rows + (self._worker.failed if self._worker is not None else 0)

    # -- internals ----------------------------------------------------------------------------------------
    def _events(self, events: Sequence[Event], stream_time: Optional[float], pts: Optional[float]) -> None:
        for doc in events:
            clip = None
            track = doc.get("track")
            tid = int(track["id"]) if isinstance(track, Mapping) else None
            if self._clips is not None and self._names is not None and doc["event"] in self._cfg.clip_events \
                    and pts is not None:
                clip = self._clips.mark(pts, tid, self._names.name("clip", tid, float(doc["time"]), "mp4"))
            self._writer.put("event", event_row(doc, stream_time, clip))
            self.events_written += 1
            changed = self._book.event(doc, stream_time)
            if changed is None:
                continue
            if changed.ended:
                self._finish_track(changed)
            else:
                self._writer.put("track", changed.row())

    def _finish_track(self, track: TrackLog) -> None:
        """Write the track's row with its snapshot (the files follow on the media thread)."""
        self._book.live.pop(track.track_id, None)
        view = self._picker.take(track.track_id) if self._picker is not None else None
        if view is not None and self._names is not None and self._worker is not None:
            root = self._media_root
            assert root is not None
            crop_path = self._names.name("snap", track.track_id, track.last[0], "jpg")
            frame_path = self._names.name("frame", track.track_id, track.last[0], "jpg")
            track.snapshot, track.snapshot_frame = crop_path, frame_path
            label = f"{track.class_name} {track.track_id} {view.confidence:.2f}"

            def save() -> None:
                crop, frame = encode_view(view, label)
                write_file(root, crop_path, crop)
                write_file(root, frame_path, frame)
                self._written(crop_path, frame_path)

            self._worker.submit(save)
        self._writer.put("track", track.row())

    def _encode_later(self, clip: Clip) -> None:
        if self._worker is not None and self._media_root is not None:
            root = self._media_root

            def encode() -> None:
                encode_clip(clip, root / clip.path)
                self._written(clip.path)

            self._worker.submit(encode)

    def _written(self, *paths: str) -> None:
        """Record media files as written (on the media thread): one missing later was deleted, not pending."""
        for path in paths:
            self._writer.put("media", {"path": path, "source_id": self.source_id, "written": time.time()})

    def _maybe_retain(self) -> None:
        if not self._retention.active or self._worker is None or self._names is None or self._media_root is None:
            return
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + RETENTION_INTERVAL_S
        folder = self._media_root / self._names.folder
        retention = self._retention

        def retain() -> None:   # on the media thread; not a snapshot or clip, so never counted as one lost
            try:
                retention.apply(folder)
            except OSError as exc:
                log.warning("media retention of %s: %s (tried again in a minute)", folder, exc.strerror or exc)

        self._worker.submit(retain)


def _build(ctx: SinkContext) -> StoreSink:
    return StoreSink(ctx.config.store, ctx.settings.id)


ENTRY = SinkEntry("store", DropPolicy.BLOCK, lambda config: config.store.enabled, _build)

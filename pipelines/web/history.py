"""The web view's history (``--http`` with ``--db``): an HTTP API over the event store, its media, and a page.

Routes (behind the view's token like every other route; see docs/events.md):

- ``GET /api/events``: stored events, newest first, filtered and paginated (``source``, ``since``, ``until``,
  ``type``, ``class``, ``zone``, ``line``, ``track``, ``limit``, ``cursor``; ``next`` is the following page's
  cursor). A browser's ``EventSource`` (``Accept: text/event-stream``) still gets the live status stream.
- ``GET /api/tracks/{source}/{id}``: a stored track (the newest with that id) with its events, snapshot and
  clip URLs; ``GET /api/history/sources``: every source the store knows (stored events or tracks).
- ``GET /api/openapi.json``: the OpenAPI 3 document of these routes.
- ``GET /media/{path}``: a snapshot (JPEG) or clip (mp4, range requests) from the media folder; only files
  named as the store names them, inside that folder (no ``..``, no absolute paths, no links out of it).
- ``GET /history``: the page (``static/history.html``): per camera, its events with thumbnails; a click
  plays the event's clip in the page.

Each snapshot or clip is ``{"url", "available", "state"}``: ``ready`` (``available``: it is served), ``pending``
(not written yet: a clip is encoded once its post-event part is recorded, up to ``store.clip_max_seconds`` later),
``deleted`` (it was written, then media retention deleted it: rows outlive their media; also one due before the
store recorded the files it writes, which may have been) or ``missing`` (never written: the run stopped first, or
the disk was full).
Database calls run in the server's thread pool, never on its event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional
from urllib.parse import quote

from aiohttp import web

from pipelines.errors import UserError
from pipelines.store.config import StoreConfig
from pipelines.store.media import MEDIA_FILE

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_LIMIT, MAX_PAGE_LIMIT = 50, 500
PENDING_GRACE_S = 60.0   # beyond the longest clip: encoding, and a media queue that fell behind
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def media_file(root: Path, relative: str) -> Optional[Path]:
    """The file ``relative`` names inside ``root``, or None when it is not one of the store's media files
    there (absolute, ``..``, a link or folder leading out, another name)."""
    if not relative or relative.startswith(("/", "\\")) or "\\" in relative or "\x00" in relative:
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts) or not MEDIA_FILE.match(parts[-1]):
        return None
    base = root.resolve()
    candidate = (base / relative).resolve()
    try:
        candidate.relative_to(base)
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


class History:
    """The history routes of one web view, reading ``store.db`` and serving ``store.media``."""

    def __init__(self, store: StoreConfig) -> None:
        if store.db is None:
            raise ValueError("StoreConfig.db is not set")
        self.store = store
        self.media = Path(store.media).expanduser() if store.media else None
        self._engine: Optional["Engine"] = None

    def register(self, app: web.Application, live_events: Handler) -> None:
        async def events(request: web.Request) -> web.StreamResponse:
            if "text/event-stream" in request.headers.get("Accept", ""):
                return await live_events(request)
            return await self._json(request, self._events)

        async def track(request: web.Request) -> web.StreamResponse:
            return await self._json(request, self._track)

        async def sources(request: web.Request) -> web.StreamResponse:
            return await self._json(request, self._sources)

        app.router.add_get("/api/events", events)
        app.router.add_get("/api/tracks/{source}/{id}", track)
        app.router.add_get("/api/history/sources", sources)
        app.router.add_get("/api/openapi.json", self._openapi)
        app.router.add_get("/media/{path:.+}", self._media)
        app.router.add_get("/history", self._page)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- plumbing -----------------------------------------------------------------------------------------
    def engine(self) -> "Engine":
        if self._engine is None:
            from pipelines.store.db import open_engine

            assert self.store.db is not None
            self._engine = open_engine(self.store.db, connect_timeout=self.store.connect_timeout)
        return self._engine

    async def _json(self, request: web.Request, work: Callable[[web.Request], Any]) -> web.StreamResponse:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            doc = await asyncio.get_running_loop().run_in_executor(None, work, request)
        except UserError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except SQLAlchemyError as exc:
            missing = "no such table" in str(exc) or "does not exist" in str(exc)
            if missing:
                return web.json_response({"error": "no history stored yet"}, status=404)
            return web.json_response({"error": "the event database cannot be read now"}, status=503)
        if doc is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.Response(body=json.dumps(doc, separators=(",", ":"), default=str).encode(),
                            content_type="application/json", headers={"Cache-Control": "no-store"})

    def _media_docs(self, conn: Any, wanted: dict[str, float]) -> dict[str, dict[str, Any]]:
        """The media doc of each path of ``wanted`` (path -> the wall time its file is due from: the event of a
        clip, the end of a track for its snapshot)."""
        on_disk = {p for p in wanted if self.media is not None and media_file(self.media, p) is not None}
        written, since = written_media(conn, [p for p in wanted if p not in on_disk])
        due_within = self.store.clip_max_seconds + PENDING_GRACE_S
        now = time.time()
        out = {}
        for path, due in wanted.items():
            if path in on_disk:
                state = "ready"
            elif path in written:
                state = "deleted"
            elif now - due < due_within:
                state = "pending"
            else:   # never written, unless it was due before the store recorded its files (retention, then)
                state = "missing" if due >= since else "deleted"
            out[path] = {"url": "/media/" + quote(path), "available": state == "ready", "state": state}
        return out

    # -- handlers (run in the thread pool) ----------------------------------------------------------------
    def _events(self, request: web.Request) -> dict[str, Any]:
        from pipelines.store.query import EventFilter, decode_cursor, encode_cursor, parse_time, search_events

        q = request.query
        try:
            limit = int(q.get("limit", PAGE_LIMIT))
            track = int(q["track"]) if "track" in q else None
        except ValueError:
            raise UserError("limit and track must be whole numbers") from None
        if not 1 <= limit <= MAX_PAGE_LIMIT:   # else the store's own bound (1..10000) was named, and 600 cut to 500
            raise UserError(f"limit: must be 1..{MAX_PAGE_LIMIT}, got {limit}")
        f = EventFilter(sources=tuple(q.getall("source", [])), kinds=tuple(q.getall("type", [])),
                        since=parse_time(q["since"], what="since") if "since" in q else None,
                        until=parse_time(q["until"], what="until") if "until" in q else None,
                        class_name=q.get("class"), zone=q.get("zone"), line=q.get("line"), track_id=track,
                        limit=limit,
                        before=decode_cursor(q["cursor"]) if "cursor" in q else None)
        with self.engine().connect() as conn:
            rows = search_events(conn, f)
            thumbs = self._thumbnails(conn, rows)
            wanted = {row["clip"]: row["time"] for row in rows if row["clip"]}
            wanted.update({path: due for path, due in thumbs.values() if path})
            media = self._media_docs(conn, wanted)
        out = []
        for row in rows:
            doc = {k: row[k] for k in ("id", "source_id", "event", "time", "pts", "track_id", "class_name",
                                       "zone", "line", "direction")}
            doc["clip"] = media.get(row["clip"] or "")
            doc["snapshot"] = media.get(thumbs.get(row["id"], (None, 0.0))[0] or "")
            if row["track_id"] is not None:   # ?at=: this event's track, not a later run's with the same id
                doc["track_url"] = (f"/api/tracks/{quote(row['source_id'], safe='')}/{row['track_id']}"
                                    f"?at={row['time']!r}")
            doc["document"] = row["doc"]
            out.append(doc)
        nxt = encode_cursor(rows[-1]) if len(rows) == f.limit else None
        return {"events": out, "next": nxt}

    @staticmethod
    def _thumbnails(conn: Any, rows: list[dict[str, Any]]) -> dict[int, tuple[Optional[str], float]]:
        """Event id -> the snapshot of its own track (and when that track was last seen: its snapshot is written
        then): the stored track with that id that started last before the event (ids start again in a new
        run). None while that track has none yet (it is still alive), never the snapshot of an earlier run's
        track that had the same id."""
        from sqlalchemy import select

        from pipelines.store.schema import tracks

        wanted = {(r["source_id"], r["track_id"]) for r in rows if r["track_id"] is not None}
        if not wanted:
            return {}
        c = tracks.c
        query = select(c.source_id, c.track_id, c.first_time, c.last_time, c.snapshot).where(
            c.source_id.in_({s for s, _ in wanted}), c.track_id.in_({t for _, t in wanted})
        ).order_by(c.first_time.desc())
        found: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for source, tid, first, last, snap in conn.execute(query):
            found.setdefault((source, tid), []).append({"first_time": first, "last_time": last, "snapshot": snap})
        out: dict[int, tuple[Optional[str], float]] = {}
        for row in rows:
            own = track_at(found.get((row["source_id"], row["track_id"]), []), row["time"])
            if own is not None:
                out[row["id"]] = (own["snapshot"], own["last_time"])
        return out

    def _track(self, request: web.Request) -> Optional[dict[str, Any]]:
        from pipelines.store.query import parse_time, track_events, track_rows

        source = request.match_info["source"]
        try:
            track_id = int(request.match_info["id"])
        except ValueError:
            raise UserError("a track id is a whole number") from None
        at = parse_time(request.query["at"], what="at") if "at" in request.query else None
        with self.engine().connect() as conn:
            found = track_rows(conn, source, track_id)
            track = found[0] if found and at is None else track_at(found, at or 0.0)
            if track is None:
                return None
            index = found.index(track)
            later = found[index - 1]["first_time"] if index > 0 else None   # where the next track of this id starts
            events = track_events(conn, track, until=later)
            wanted: dict[str, float] = {}
            for e in events:
                if e["clip"]:
                    wanted.setdefault(e["clip"], e["time"])
            for key in ("snapshot", "snapshot_frame"):
                if track[key]:
                    wanted[track[key]] = track["last_time"]
            media = self._media_docs(conn, wanted)
        clips: list[dict[str, Any]] = []
        for e in events:
            clip = media.get(e["clip"] or "")
            if clip is not None and clip["url"] not in [c["url"] for c in clips]:
                clips.append({**clip, "event": e["event"], "time": e["time"]})
        doc = {k: v for k, v in track.items() if k not in ("id", "snapshot", "snapshot_frame")}
        doc["snapshot"] = media.get(track["snapshot"] or "")
        doc["snapshot_frame"] = media.get(track["snapshot_frame"] or "")
        doc["clips"] = clips
        doc["events"] = [e["doc"] for e in events]
        doc["earlier"] = len(found) - 1 - index   # older tracks of this source that had the same id (other runs)
        return doc

    def _sources(self, request: web.Request) -> dict[str, Any]:
        from pipelines.store.query import source_ids

        with self.engine().connect() as conn:
            return {"sources": source_ids(conn)}

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        from pipelines.web.openapi import OPENAPI

        return web.json_response(OPENAPI)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "history.html", headers={"Cache-Control": "no-cache"})

    async def _media(self, request: web.Request) -> web.StreamResponse:
        path = media_file(self.media, request.match_info["path"]) if self.media is not None else None
        if path is None:
            raise web.HTTPNotFound(text="no such media file (it may have been deleted by retention)\n")
        kind = "video/mp4" if path.suffix == ".mp4" else "image/jpeg"
        return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "private, max-age=3600",
                                               "X-Content-Type-Options": "nosniff"})


def track_at(newest_first: list[dict[str, Any]], at: float) -> Optional[dict[str, Any]]:
    """Of the stored tracks of one source and id (newest first), the one alive at ``at`` (Unix s): the one that
    started last at or before it; None when all started later."""
    for track in newest_first:
        if track["first_time"] <= at + 1e-6:
            return track
    return None


def written_media(conn: Any, paths: list[str]) -> tuple[set[str], float]:
    """Those of ``paths`` recorded as written (``media`` table), and since when the store records its files: a
    file due before that is not known to be never written. Nothing recorded (since: infinity) in a history
    without that table (older than it, or its login may not make it); 0 for a table from before that record."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.store.schema import MEDIA_SINCE, media

    if not paths:
        return set(), 0.0
    try:
        rows = dict(conn.execute(select(media.c.path, media.c.written).where(
            media.c.path.in_([*paths, MEDIA_SINCE]))).all())
    except SQLAlchemyError:   # no media table yet: the run that migrates this history has not connected
        conn.rollback()
        return set(), float("inf")
    since = rows.pop(MEDIA_SINCE, 0.0)
    return set(rows), since


def history_for(store: StoreConfig) -> Optional[History]:
    """The history routes when the run keeps one (``store.db``); None otherwise."""
    return History(store) if store.db is not None else None


__all__ = ["History", "history_for", "media_file", "track_at", "written_media"]

"""Searching the history: events by source, time range, kind, class, zone, line and track; one track.

Results come newest first in pages (``limit`` rows; ``next`` is the cursor of the following page: the
(time, id) of the last row, so a page never shifts when new rows arrive). ``follow`` pages go the other
way: rows with an id above the last one seen, oldest first.

Times are Unix seconds; ``parse_time`` reads what people type: ``2h`` / ``30m`` / ``7d`` / ``90s`` ago, an
ISO 8601 time (local time unless it carries an offset or ``Z``) or Unix seconds.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from pipelines.errors import UserError
from pipelines.store.schema import events, tracks

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_LIMIT = 10000
MAX_ID = 2**63 - 1   # the databases' INTEGER: a larger id made SQLite raise (a traceback, a 500 on the web)


def parse_time(text: str, now: Optional[float] = None, what: str = "time") -> float:
    """``2h`` (ago), ``2026-12-06T02:00`` (local), ``2026-12-06T02:00Z``, or Unix seconds -> Unix seconds."""
    value = text.strip()
    match = _AGO.match(value.lower())
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNIT_S[match[2]]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):   # nan / inf would silently match nothing
            return seconds
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
        return parsed.timestamp()   # a naive time is local time
    except (ValueError, OverflowError, OSError):   # not a time, or one the clock cannot hold (0001-01-01)
        raise UserError(f"{what}: expected a time like 2h (ago), 2026-12-06T02:00 or 2026-12-06T02:00Z, "
                        f"got {text!r}") from None


@dataclass(frozen=True)
class EventFilter:
    """What to look for; every field that is set must match (None / empty: any)."""

    sources: tuple[str, ...] = ()
    since: Optional[float] = None
    until: Optional[float] = None
    kinds: tuple[str, ...] = ()
    class_name: Optional[str] = None
    zone: Optional[str] = None
    line: Optional[str] = None
    track_id: Optional[int] = None
    limit: int = 100
    before: Optional[tuple[float, int]] = None    # page cursor: rows older than this (time, id)
    after_id: Optional[int] = None                # follow: rows with a larger id, oldest first

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise UserError(f"limit: must be 1..{MAX_LIMIT}, got {self.limit}")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise UserError("until: must not be before since")
        if self.track_id is not None and abs(self.track_id) > MAX_ID:
            raise UserError(f"track: must be a track id (at most {MAX_ID}), got {self.track_id}")


def encode_cursor(row: dict[str, Any]) -> str:
    return f"{row['time']!r}:{row['id']}"


def decode_cursor(text: str) -> tuple[float, int]:
    when, _, ident = text.partition(":")
    try:
        return float(when), int(ident)
    except ValueError:
        raise UserError(f"cursor: not a cursor this API gave, got {text!r}") from None


def search_events(conn: Connection, f: EventFilter) -> list[dict[str, Any]]:
    """The matching events, newest first (``after_id``: oldest first), as dicts with the document parsed."""
    c = events.c
    where = []
    if f.sources:
        where.append(c.source_id.in_(f.sources) if len(f.sources) > 1 else c.source_id == f.sources[0])
    if f.since is not None:
        where.append(c.time >= f.since)
    if f.until is not None:
        where.append(c.time <= f.until)
    if f.kinds:
        where.append(c.event.in_(f.kinds))
    for column, value in ((c.class_name, f.class_name), (c.zone, f.zone), (c.line, f.line), (c.track_id, f.track_id)):
        if value is not None:
            where.append(column == value)
    query = select(events).where(and_(True, *where))
    if f.after_id is not None:
        query = query.where(c.id > f.after_id).order_by(c.id.asc())
    else:
        if f.before is not None:
            when, ident = f.before
            query = query.where(or_(c.time < when, and_(c.time == when, c.id < ident)))
        query = query.order_by(c.time.desc(), c.id.desc())
    return [_event(dict(row)) for row in conn.execute(query.limit(f.limit)).mappings()]


def newest_id(conn: Connection) -> int:
    """The largest event id stored (0 when none): where ``--follow`` goes on from, whatever the events' times."""
    from sqlalchemy import func

    return int(conn.execute(select(func.max(events.c.id))).scalar() or 0)


def _event(row: dict[str, Any]) -> dict[str, Any]:
    row["doc"] = json.loads(row["doc"])
    return row


def track_rows(conn: Connection, source_id: str, track_id: int) -> list[dict[str, Any]]:
    """Every stored track of ``source_id`` with this id (ids start again in a new run), newest first."""
    if abs(track_id) > MAX_ID:
        return []
    c = tracks.c
    query = select(tracks).where(c.source_id == source_id, c.track_id == track_id).order_by(c.first_time.desc())
    out = []
    for row in conn.execute(query).mappings():
        doc = dict(row)
        for key in ("zones", "lines", "path"):
            doc[key] = json.loads(doc[key])
        out.append(doc)
    return out


def track_events(conn: Connection, track: dict[str, Any], until: Optional[float] = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    """The events of one stored track, oldest first (``until``: where a later track with the same id starts)."""
    c = events.c
    query = select(events).where(c.source_id == track["source_id"], c.track_id == track["track_id"],
                                 c.time >= track["first_time"] - 1e-6)
    if until is not None:
        query = query.where(c.time < until)
    query = query.order_by(c.time.asc(), c.id.asc()).limit(limit)
    return [_event(dict(row)) for row in conn.execute(query).mappings()]


def source_ids(conn: Connection) -> list[str]:
    """Every source the store knows: with stored events (a camera that saw nothing yet still stored its
    ``stream_started``) or tracks. One index seek per source and table (the tables' indexes start with the
    source), not a scan of every event."""
    from sqlalchemy import func

    known: set[str] = set()
    for column in (events.c.source_id, tracks.c.source_id):
        last: Optional[str] = None
        while True:
            query = select(func.min(column))
            found = conn.execute(query if last is None else query.where(column > last)).scalar()
            if found is None:
                break
            known.add(found)
            last = found
    return sorted(known)

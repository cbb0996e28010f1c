"""The ``store:`` section: where the event history lives (``--db``), its media (``--media``) and their limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pipelines.secrets import mask_url
from tracker.configutil import ConfigError

CLIP_EVENT_KINDS = ("track_started", "track_lost", "track_recovered", "track_ended", "zone_entered",
                    "zone_exited", "line_crossed")
DB_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")


def check_db(value: str, key: str = "db") -> None:
    """A SQLite file path (or ``sqlite:///path``) or a ``postgresql://`` URL; anything else is a ConfigError."""
    text = value.strip()
    if not text:
        raise ConfigError(key, "must not be empty (a SQLite file like events.db, or postgresql://...)")
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() not in DB_SCHEMES:
        raise ConfigError(key, f"expected a SQLite file (events.db) or a postgresql:// URL, got a {scheme}:// URL")
    if scheme.lower() == "sqlite" and sep:
        _check_sqlite_url(text, key)
    elif text == ":memory:":
        raise ConfigError(key, _IN_MEMORY)
    port = _port_of(text) if sep else ""
    if port and not port.isdigit():   # checked now, before any output is opened
        raise ConfigError(key, f"not a valid database URL {mask_url(text)!r}: the port must be a number")


_IN_MEMORY = "an in-memory SQLite database keeps nothing after the run: give a file (events.db)"


def _check_sqlite_url(url: str, key: str) -> None:
    """``sqlite:///events.db`` (relative) or ``sqlite:////var/lib/events.db``: three slashes before the path.
    ``sqlite://events.db`` made a folder named ``sqlite:`` holding events.db; ``sqlite:///:memory:`` (or
    ``sqlite://``) kept every row in memory and lost them all at the end."""
    path = url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else None
    if path is None:
        raise ConfigError(key, f"a SQLite URL is sqlite:/// and the file's path (sqlite:///events.db, or "
                               f"sqlite:////var/lib/events.db for an absolute path), got {mask_url(url)!r}")
    if path in ("", ":memory:") or path.startswith(":memory:?"):
        raise ConfigError(key, _IN_MEMORY)


def _port_of(url: str) -> str:
    """The port as written in ``url``'s host part (after the last ``@``, so a password may hold ``#``, ``/``, ``?``
    or ``[`` as SQLAlchemy allows); empty when none is given."""
    rest = url.partition("://")[2]
    host = re.split(r"[/?#]", rest[rest.rfind("@") + 1:], maxsplit=1)[0]
    if host.startswith("["):   # [::1]:5432
        return host.partition("]")[2].removeprefix(":")
    return host.rpartition(":")[2] if ":" in host else ""


def is_postgres(db: str) -> bool:
    return db.split("://", 1)[0].lower() in ("postgresql", "postgres", "postgresql+psycopg")


def sqlite_path(db: str) -> Path:
    return Path(db[len("sqlite:///"):] if db.lower().startswith("sqlite:///") else db).expanduser()


@dataclass(frozen=True)
class StoreConfig:
    """The event history of a run (docs/events.md).

    Attributes:
        db: a SQLite file (``events.db``, created with its folder) or ``postgresql://user:pass@host/db``
            (several processes or machines, Ray actors); None: no history.
        media: folder of snapshots and clips (None: rows only, no pictures).
        snapshots: keep each track's best view (a JPEG crop and the full frame with its box).
        clip_events: event kinds that get a clip (H.264 mp4 from ``clip_before`` s before to ``clip_after`` s
            after); empty: no clips.
        clip_before / clip_after: seconds of video time around the event.
        clip_width: clips (and the frames kept for them) are scaled down to at most this width.
        clip_max_seconds: longest clip; events close together share one clip up to this length (an open clip
            holds its frames in memory until it is encoded).
        path_points: most points of a track's stored path (downsampled evenly as it grows).
        retain_seconds / retain_bytes: media older than this / beyond this total size per source are deleted
            (oldest first; rows stay and say their media are gone); None: keep.
        batch_max: most rows per database transaction.
        buffer_max_entries: rows held in memory while the database is unreachable (oldest dropped, counted).
        connect_timeout: seconds to wait for a database connection.
        flush_timeout: seconds ``close()`` keeps trying to write buffered rows before counting them lost.
    """

    db: Optional[str] = None
    media: Optional[str] = None
    snapshots: bool = True
    clip_events: tuple[str, ...] = ("zone_entered", "line_crossed")
    clip_before: float = field(default=3.0, metadata={"min": 0.0, "max": 60.0})
    clip_after: float = field(default=2.0, metadata={"min": 0.0, "max": 60.0})
    clip_width: int = field(default=640, metadata={"min": 64, "max": 3840})
    clip_max_seconds: float = field(default=12.0, metadata={"gt": 0.0, "max": 600.0})
    path_points: int = field(default=64, metadata={"min": 2, "max": 10000})
    retain_seconds: Optional[float] = field(default=None, metadata={"gt": 0})
    retain_bytes: Optional[int] = field(default=None, metadata={"gt": 0})
    batch_max: int = field(default=500, metadata={"min": 1, "max": 100000})
    buffer_max_entries: int = field(default=100000, metadata={"min": 1})
    connect_timeout: float = field(default=5.0, metadata={"gt": 0.0})
    flush_timeout: float = field(default=10.0, metadata={"min": 0.0})

    def __post_init__(self) -> None:
        if self.db is not None:
            check_db(self.db)
        if self.media is not None and not self.media.strip():
            raise ConfigError("media", "must not be empty")
        if self.media is not None and self.db is None:
            raise ConfigError("media", "needs a database for the rows that point at the media: --db events.db "
                                       "(or store.db in the config)")
        for kind in self.clip_events:
            if kind not in CLIP_EVENT_KINDS:
                raise ConfigError("clip_events", f"unknown event kind {kind!r} (one of {', '.join(CLIP_EVENT_KINDS)})")

    @property
    def enabled(self) -> bool:
        return self.db is not None

    @property
    def clips(self) -> bool:
        return self.media is not None and bool(self.clip_events)

"""`trackstream events`: search the event history of `run --db` (table, JSON Lines or CSV; --follow).

Examples:

    trackstream events --db events.db --since 2h --line gate
    trackstream events --db postgresql://user:pass@host/trackstream --source cam1 --type line_crossed \\
        --since 2026-12-06T02:00 --until 2026-12-06T03:00 --format csv > gate.csv
    trackstream events --db events.db --follow --format jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import datetime
from typing import IO, Any, Iterable, Optional

from pipelines.credentials import DB_PASSWORD_HELP, DB_PASSWORD_NEEDS, db_with_password
from pipelines.errors import UserError
from pipelines.processing.events import EVENT_TYPES

FOLLOW_INTERVAL_S = 1.0
MAX_SOURCES_SHOWN = 20   # sources named in the line of a search that matched nothing
COLUMNS = ("time", "source", "event", "track", "class", "where", "direction", "clip")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    parser = sub.add_parser(name, help="search the event history kept by run --db",
                            description=__doc__.splitlines()[0] if __doc__ else None,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="\n".join((__doc__ or "").splitlines()[2:]))
    parser.add_argument("--db", required=True, metavar="PATH_OR_URL",
                        help="the database of run --db: a SQLite file or postgresql://... URL")
    parser.add_argument("--source", action="append", default=[], metavar="ID", help="only this source (repeatable)")
    parser.add_argument("--since", metavar="TIME", help="from this time: 2h / 30m / 7d ago, an ISO time "
                        "(2026-12-06T02:00, local unless it ends in Z or an offset) or Unix seconds")
    parser.add_argument("--until", metavar="TIME", help="up to this time (same forms as --since)")
    parser.add_argument("--type", action="append", default=[], choices=EVENT_TYPES, metavar="EVENT",
                        help=f"only this event type (repeatable): {', '.join(EVENT_TYPES)}")
    parser.add_argument("--class", dest="class_name", metavar="NAME", help="only tracks of this class (person)")
    parser.add_argument("--zone", metavar="NAME", help="only events of this zone")
    parser.add_argument("--line", metavar="NAME", help="only events of this counting line")
    parser.add_argument("--track", type=int, metavar="ID", help="only this track id")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="the newest N matching events (default 100), printed oldest first")
    parser.add_argument("--format", choices=("table", "jsonl", "csv"), default="table",
                        help="table (default), jsonl (one event document per line, with id and clip) or csv")
    parser.add_argument("--db-password-file", metavar="FILE", help=DB_PASSWORD_HELP)
    parser.add_argument("--follow", action="store_true",
                        help="keep printing new events as they are stored (with --until: until that time has passed)")


def main(args: argparse.Namespace) -> int:
    from pipelines.store.config import check_db, is_postgres, sqlite_path
    from pipelines.store.db import fresh_reader, open_reader
    from pipelines.store.query import MAX_ID, MAX_LIMIT, EventFilter, parse_time, search_events

    check_db(args.db, "--db")   # a mysql://user:pass@... URL was taken for a file name, password and all
    if args.db_password_file and not is_postgres(args.db):
        raise UserError(f"--db-password-file: {DB_PASSWORD_NEEDS}")
    db = db_with_password(args.db, args.db_password_file)
    now = time.time()
    since = parse_time(args.since, now, "--since") if args.since else None
    until = parse_time(args.until, now, "--until") if args.until else None
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UserError(f"--limit: must be 1..{MAX_LIMIT}, got {args.limit}")
    if since is not None and until is not None and until < since:
        raise UserError("--until: must not be before --since")
    if args.track is not None and abs(args.track) > MAX_ID:
        raise UserError(f"--track: must be a track id (at most {MAX_ID}), got {args.track}")
    base = EventFilter(sources=tuple(args.source), since=since, until=until, kinds=tuple(args.type),
                       class_name=args.class_name, zone=args.zone, line=args.line, track_id=args.track,
                       limit=args.limit)
    if not is_postgres(db):
        path = sqlite_path(db)
        if path.is_dir():   # it said 'no event database at some_folder', as if nothing were there
            raise UserError(f"{path} is a folder: --db names the event database file in it (e.g. "
                            f"{path / 'events.db'})")
        if not path.is_file():
            raise UserError(f"no event database at {path} (write one with trackstream run --db)")
        if path.stat().st_size == 0:   # opening it would write a database header into it
            raise UserError(f"SQLite {path} holds no event history (write one with trackstream run --db)")
    engine = open_reader(db)
    out = Output(args.format, sys.stdout)
    try:
        _query(engine, None, _check_version, db)
        # --follow goes on from the largest id stored before the first query (the newest event by time may
        # have a smaller one: cameras store in their own order); rows stored after it come with the follow
        last = _query(engine, None, _newest_id, db)[0] if args.follow else 0
        rows = _query(engine, base, search_events, db)
        rows.reverse()
        if not rows and not args.follow:   # else a typo in --source looks like an empty history
            print(f"trackstream events: {_no_match(_query(engine, None, _source_ids, db), args.source)}",
                  file=sys.stderr)
        out.rows([r for r in rows if not args.follow or r["id"] <= last])
        while args.follow and not _past(until):
            time.sleep(FOLLOW_INTERVAL_S)
            engine = fresh_reader(engine, db)   # a read-only history opened immutable: read afresh
            rows = _query(engine, EventFilter(**{**base.__dict__, "after_id": last, "limit": 1000}),
                          search_events, db)
            out.rows(rows)
            if rows:
                last = rows[-1]["id"]
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:   # `... | head`
        return 0
    finally:
        engine.dispose()
    return 0


def _query(engine: Any, f: Any, search: Any, db: str) -> list[Any]:
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from pipelines.store.db import describe

    try:
        with engine.connect() as conn:
            return list(search(conn, f))
    except SQLAlchemyError as exc:
        detail = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        first = " ".join(str(detail).split())
        missing_table = 'relation "' in first and "does not exist" in first   # not 'database "x" does not exist'
        if "no such table" in first or missing_table:
            raise UserError(f"{describe(db)} holds no event history (write one with trackstream run --db)") from None
        from pipelines.secrets import redact_text, url_password

        raise UserError(f"cannot read {describe(db)}: {redact_text(first[:200], url_password(db))}") from None


def _source_ids(conn: Any, _: Any) -> list[str]:
    from pipelines.store.query import source_ids

    return source_ids(conn)


def _no_match(known: list[str], wanted: Iterable[str]) -> str:
    """The line for a search that found nothing: the ``--source`` names the history lacks, with those it holds."""
    unknown = [s for s in dict.fromkeys(wanted) if s not in known]
    if not unknown:
        return "no event matches these filters"
    shown = ", ".join(known[:MAX_SOURCES_SHOWN]) + (", ..." if len(known) > MAX_SOURCES_SHOWN else "")
    return (f"no event matches: the history holds no source {', '.join(map(repr, unknown))} "
            f"(its sources: {shown or 'none'})")


def _check_version(conn: Any, _: Any) -> list[dict[str, Any]]:
    """A history written by a newer trackstream is refused (as ``run --db`` refuses it): its rows may mean
    something this version cannot tell."""
    from pipelines.store.schema import VERSION, schema_version

    found = conn.execute(schema_version.select()).scalar()
    if found is not None and int(found) > VERSION:
        raise UserError(f"--db: the event history has schema version {found}, newer than this trackstream knows "
                        f"({VERSION}): upgrade trackstream")
    return []


def _newest_id(conn: Any, _: Any) -> list[int]:
    from pipelines.store.query import newest_id

    return [newest_id(conn)]


def _past(until: Optional[float]) -> bool:
    """--follow --until TIME stops once TIME has passed (and one more query has read what came before it)."""
    return until is not None and time.time() > until + FOLLOW_INTERVAL_S


def local_time(unix: float) -> str:
    return datetime.fromtimestamp(unix).isoformat(timespec="milliseconds")


def _cells(row: dict[str, Any]) -> list[str]:
    where = row["zone"] or row["line"] or ""
    return [local_time(row["time"]), row["source_id"], row["event"],
            "" if row["track_id"] is None else str(row["track_id"]), row["class_name"] or "", where,
            row["direction"] or "", row["clip"] or ""]


class Output:
    """Prints rows as a table, JSON Lines or CSV (the table's header once)."""

    def __init__(self, kind: str, stream: IO[str]) -> None:
        self.kind, self.stream = kind, stream
        self._header = False
        self._csv = csv.writer(stream) if kind == "csv" else None

    def rows(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._row(row)
        self.stream.flush()

    def _row(self, row: dict[str, Any]) -> None:
        if self.kind == "jsonl":
            doc = {"id": row["id"], **row["doc"], "clip": row["clip"]}
            self.stream.write(json.dumps(doc, separators=(",", ":")) + "\n")
            return
        if self._csv is not None:
            if not self._header:
                self._csv.writerow(["id", "unix_time", *COLUMNS])
                self._header = True
            self._csv.writerow([row["id"], repr(row["time"]), *_cells(row)])
            return
        widths = (23, 16, 15, 6, 10, 14, 14, 0)
        if not self._header:
            self.stream.write(_line(COLUMNS, widths))
            self._header = True
        self.stream.write(_line(_cells(row), widths))


def _line(cells: Iterable[str], widths: Iterable[int]) -> str:
    return " ".join(c.ljust(w) if w else c for c, w in zip(cells, widths)).rstrip() + "\n"



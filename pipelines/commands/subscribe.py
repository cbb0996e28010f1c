"""`trackstream subscribe`: print the entries of trackstream's Redis streams, one JSON object per line.

Each line is ``{"stream": ..., "id": ..., "source": ..., "kind": "events"|"frames", "data": {...}}``
where ``data`` is the published document (see docs/redis.md). Stop with Ctrl-C (or SIGTERM): the
entries already printed are acknowledged first.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Optional, TextIO

if TYPE_CHECKING:
    from pipelines.subscriber import Subscriber

DEFAULT_URL = "redis://localhost:6379/0"


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    p = sub.add_parser(name, help="print track events (and frames) published to Redis, one JSON per line",
                       description="Print the entries of trackstream's Redis streams, one JSON object per "
                                   "line (see docs/redis.md).")
    p.add_argument("--redis", metavar="URL", default=os.environ.get("TRACKSTREAM_REDIS", DEFAULT_URL),
                   help="redis://[user:password@]host:port/db or rediss://... "
                        f"(default: $TRACKSTREAM_REDIS, else {DEFAULT_URL})")
    p.add_argument("--source", metavar="ID", action="append", default=[],
                   help="source id to follow (repeatable); default: every trackstream:*:events stream")
    p.add_argument("--frames", action="store_true", help="also print the per-frame records")
    p.add_argument("--group", metavar="G", help="consumer group (share entries among consumers)")
    p.add_argument("--consumer", metavar="C", help="this consumer's name within --group")
    p.add_argument("--from", dest="start", metavar="ID", default="$",
                   help="$ = only new entries (default), 0 = everything retained, or an entry id to "
                        "resume after; with --group: where a new group starts")
    p.add_argument("--count", type=int, metavar="N", help="exit after printing N entries")
    p.add_argument("--until-ended", action="store_true",
                   help="exit once every followed source has published stream_ended (and its entries "
                        "were printed)")
    p.add_argument("--idle-exit", type=float, metavar="S", help="exit after S seconds without entries")
    p.add_argument("--claim-idle-ms", type=int, default=30000, metavar="MS",
                   help="with --group: take over entries other consumers left pending this long "
                        "(default %(default)s)")
    p.add_argument("--events-stream", default="trackstream:{source}:events", help=argparse.SUPPRESS)
    p.add_argument("--frames-stream", default="trackstream:{source}:frames", help=argparse.SUPPRESS)


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    from pipelines.errors import UserError
    from pipelines.subscriber import Subscriber

    if args.count is not None and args.count < 1:
        raise UserError("--count must be at least 1")
    if any(not source.strip() for source in args.source or ()):   # --source "$CAM" with CAM unset
        raise UserError("--source must name a source id, got an empty one")
    if args.claim_idle_ms < 0:
        raise UserError(f"--claim-idle-ms must be a number of milliseconds >= 0, got {args.claim_idle_ms}")
    if args.consumer is not None and not args.consumer.strip():   # --consumer "$HOSTNAME" with it unset
        raise UserError("--consumer must name this consumer, got an empty name")
    if args.group is not None and not args.group.strip():
        raise UserError("--group must name a consumer group, got an empty name")
    if args.idle_exit is not None and not args.idle_exit >= 0:   # NaN too; 0: print what is there, then exit
        raise UserError(f"--idle-exit must be a number of seconds >= 0, got {args.idle_exit}")
    sub = Subscriber(args.redis, args.source, frames=args.frames, group=args.group, consumer=args.consumer,
                     start=args.start, events_stream=args.events_stream, frames_stream=args.frames_stream,
                     claim_idle_ms=args.claim_idle_ms, block_ms=500, auto_ack=False)
    signal.signal(signal.SIGTERM, _stop)
    try:
        _loop(sub, args)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        sub.close()
    return 0


def _reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe or socket whose reader has closed it (``trackstream subscribe | head -3``
    after the third line). Checked while no entries come: writing would notice it only at the next entry,
    and a quiet stream could keep the process waiting forever (``tail -f`` checks the same)."""
    if not hasattr(select, "poll"):
        return False
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):   # replaced by an object without a descriptor, or closed
        return False
    poller = select.poll()
    poller.register(fd, 0)   # no events asked for: poll reports only an error or hang-up of the descriptor
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def _loop(sub: Subscriber, args: argparse.Namespace) -> None:
    printed = 0
    ended: set[str] = set()
    last_entry = time.monotonic()
    while True:
        all_ended = args.until_ended and ended and ended >= set(sub.sources)
        entries = sub.read(block_ms=0 if all_ended else None)
        if not entries:
            if all_ended or _reader_gone(sys.stdout):   # `| head` has finished: nobody reads what comes
                return
            if args.idle_exit is not None and time.monotonic() - last_entry >= args.idle_exit:
                return
            continue
        last_entry = time.monotonic()
        for entry in entries:
            sys.stdout.write(json.dumps(entry.as_json(), separators=(",", ":")) + "\n")
            sys.stdout.flush()
            sub.ack(entry)
            printed += 1
            if entry.kind == "events" and entry.data.get("event") == "stream_ended":
                ended.add(entry.source_id)
            if args.count is not None and printed >= args.count:
                return

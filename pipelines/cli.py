"""The ``trackstream`` command line: one subcommand per module in ``pipelines.commands``.

Every user mistake ends in one line on stderr (``trackstream: error: ...``) and a non-zero exit.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from typing import Callable, NoReturn, Sequence

# Ultralytics must never pip-install packages into the user's environment at run time.
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")

from pipelines.version import __version__  # noqa: E402
from pipelines.errors import UserError  # noqa: E402
from pipelines.secrets import install_log_mask, redact_text  # noqa: E402

# (subcommand name, module under pipelines.commands)
COMMANDS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("demo", "demo"),
    ("eval", "evaluate"),
    ("subscribe", "subscribe"),
    ("cluster", "cluster"),
    ("events", "events"),
    ("export", "export"),
)


class Parser(argparse.ArgumentParser):
    """An ``argparse`` parser (and, through ``add_subparsers``, every subcommand's) whose usage errors show no URL
    password: argparse echoes what it could not take, such as a camera URL given where a command was expected."""

    def error(self, message: str) -> "NoReturn":
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {redact_text(message)}\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = Parser(
        prog="trackstream",
        description="Track objects in video files and live cameras; publish to Redis Streams or write "
                    "annotated video and track files.")
    parser.add_argument("--version", action="version", version=f"trackstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name, module_name in COMMANDS:
        module = importlib.import_module(f"pipelines.commands.{module_name}")
        module.add_parser(sub, name)
        handlers[name] = module.main
    return parser, handlers


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command parser that ``args`` were parsed down to (``trackstream cluster add``), whose usage an
    error about those arguments should show."""
    while True:
        chosen = next((action.choices.get(getattr(args, action.dest, None) or "") for action in parser._actions
                       if isinstance(action, argparse._SubParsersAction)), None)
        if not isinstance(chosen, argparse.ArgumentParser):
            return parser
        parser = chosen


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but arguments left unrecognised are reported by the subcommand that was given
    (``usage: trackstream run ...``), not by the top-level parser."""
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((w for w in words if not w.startswith("-")), None)  # the top-level options take no value
    commands = [name for name, _ in COMMANDS]
    if first is not None and first not in commands and any(c in first for c in "/.:"):
        parser.error(f"{first!r} is not a command: to process a video or camera, give the command first: "
                     f"trackstream run {first}")
    args, extra = parser.parse_known_args(argv)
    if extra:
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _lift_open_file_limit() -> None:
    """Raise this process's soft limit on open files to the hard one, as ``ulimit -n`` would for this process only.
    An archive's files run a few at a time (``engine/waves.py``), but more may be kept open at start where the
    limit allows (``sources/looks.py``), and the model's runtime opens its own."""
    try:
        import resource
    except ImportError:   # not a POSIX system
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20   # Linux refuses more than fs.nr_open
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass   # a system that refuses keeps its limit; running out then says so in one line


def _open_file_limit() -> str:
    try:
        import resource
    except ImportError:
        return "fewer"
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return "any number" if soft == resource.RLIM_INFINITY else str(soft)


def _error(message: str) -> None:
    print(f"trackstream: error: {redact_text(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:   # Ctrl-C while the commands load (a second or so), or inside one without its own
        _error("interrupted")
        return 130
    finally:
        _let_stdout_go()


def _let_stdout_go() -> None:
    """Flush stdout now; when its reader went away (``| head``), point it at /dev/null, so Python's own flush at exit
    does not print ``Exception ignored ... BrokenPipeError``."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):   # ValueError: stdout was closed
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass


def _main(argv: Sequence[str] | None) -> int:
    from tracker.configutil import ConfigError   # loads numpy (the tracker package): inside main's Ctrl-C guard

    _lift_open_file_limit()

    parser, handlers = build_parser()
    args = _parse(parser, argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_mask()  # no log line shows a URL password or a credential-like parameter
    command = args.command or "demo"
    if args.command is None:
        args = _parse(parser, [*(argv or sys.argv[1:]), "demo"])
    try:
        return handlers[command](args)
    except (UserError, ConfigError) as exc:
        _error(str(exc))
        return getattr(exc, "exit_code", 2)
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            _error(f"too many files open at once (this system allows {_open_file_limit()}): raise the limit "
                   "(ulimit -n)")
            return 1
        if exc.errno == errno.ENFILE:
            _error("the system has too many files open (all its processes together): run again when the machine "
                   "is less busy")
            return 1
        if exc.filename is None:
            raise
        # a path the OS refuses where no check named it (a name longer than the file system allows, ...)
        _error(f"{exc.filename}: {exc.strerror or exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""trackstream pipelines: sources, detector, sinks, overlays and the command line.

``from pipelines import process`` is the Python API (``pipelines/api.py``): a generator of the output
value of every processed frame. It is imported on first use, so importing ``pipelines`` stays light.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING, Any

from pipelines.version import __version__

__all__ = ["__version__", "process"]

if TYPE_CHECKING:
    from pipelines.api import process


@atexit.register   # registered on the package's import: runs after every hook its modules register (LIFO)
def _finish_readers_at_exit() -> None:
    """No camera reader may still be inside FFmpeg when the interpreter is torn down: its timeout check takes the
    GIL, and the process would die with SIGSEGV after its work was done (``pipelines/sources/watchdog.py``).
    Ctrl-C while this waits ends the process at once (130), as a second signal does during a run."""
    watchdog = sys.modules.get("pipelines.sources.watchdog")
    if watchdog is None:
        return
    try:
        watchdog.finish_readers()
    except KeyboardInterrupt:
        print("trackstream: stopping now", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)   # not through the interpreter's teardown, which a reader still in FFmpeg could crash


def __getattr__(name: str) -> Any:
    if name == "process":
        from pipelines.api import process

        return process
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")

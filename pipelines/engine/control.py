"""``RunControl``: what every thread of one run shares, and how the run stops.

The lock (``cond``) under which the inboxes, the lanes and the detection schedules change; ``stopped`` (stop
reading: ``Runner.stop()``, a signal or a failure) and ``aborted`` (a stage failed: what is queued is drained
without working); the threads of the run and the errors they raised. ``run()`` of the runner raises the first
error once every thread has ended (``raise_error``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from pipelines.errors import UserError

log = logging.getLogger("pipelines.engine.runner")   # the engine's lines keep the name their readers know


class PipelineError(UserError):
    """A stage failed for a reason that is not the user's input (the message names the stage)."""

    exit_code = 1


class RunControl:
    """The shared lock, the stop and abort flags, the threads and the errors of one run.

    Args:
        stop: stops reading every source (``Runner.stop``); called when a stage fails.
    """

    def __init__(self, stop: Callable[[], None]) -> None:
        self.cond = threading.Condition()
        self.stopped = threading.Event()   # stop reading: frames already read are still processed
        self.aborted = threading.Event()   # a stage failed: queued work is drained without working
        self.errors: list[tuple[str, BaseException]] = []
        self.source_errors: list[UserError] = []  # live sources that gave up reconnecting
        self._stop = stop
        self._stop_requested = False   # stop_for was called (its line is logged once)
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()

    def fail(self, stage: str, exc: BaseException) -> None:
        """``stage`` failed with ``exc``: abort and stop the run (``raise_error`` raises the first one)."""
        log.debug("%s failed", stage, exc_info=exc)
        with self.cond:
            self.errors.append((stage, exc))
        self.aborted.set()
        self._stop()

    def stop_for(self, reason: str) -> None:
        """Stop the run as a signal does (``Runner.stop``: frames already read are processed, outputs flushed,
        state saved), logging ``reason`` in one INFO line unless the run was stopping already."""
        with self.cond:
            first = not self._stop_requested
            self._stop_requested = True
        if first and not self.stopped.is_set():
            log.info("%s: stopping after the frames in flight", reason)
        self._stop()

    def spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Run ``target(*args)`` on a thread named ``trackstream-<name>``; an exception fails stage ``name``."""
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller of run()
                self.fail(name, exc)

        thread = threading.Thread(target=guarded, name=f"trackstream-{name}", daemon=True)
        with self._threads_lock:   # started before run() can look: a thread not started yet is not alive
            self._threads.append(thread)
            thread.start()

    def running(self) -> list[threading.Thread]:
        """The threads still alive (an archive's files come and go: their ended threads are let go)."""
        with self._threads_lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return list(self._threads)

    def raise_error(self) -> None:
        """Raise the first error of any stage (``UserError`` as is; anything else as ``PipelineError``), else the
        first of a camera that gave up reconnecting; nothing when there is none."""
        if self.errors:
            stage, exc = self.errors[0]
            if isinstance(exc, UserError):
                raise exc
            if isinstance(exc, KeyboardInterrupt):
                raise exc
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise PipelineError(f"{stage} stage failed: {type(exc).__name__}{': ' + detail if detail else ''}") \
                from exc
        if self.source_errors:
            raise self.source_errors[0]


__all__ = ["PipelineError", "RunControl"]

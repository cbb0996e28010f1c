"""What the Ray actors answer, as plain values that travel back to the driver: ``Outcome`` (a finished run of
some sources) and ``CameraStatus`` (one camera of a running ``CameraActor``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from pipelines.engine.stats import StatsSnapshot
from pipelines.frames import Counts


@dataclass(frozen=True)
class Outcome:
    """What a finished run of some sources left: per-source counters, counts, files, losses."""

    stats: tuple[StatsSnapshot, ...] = ()
    counts: Mapping[str, Counts] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    error: Optional[str] = None       # one line: the run failed (a UserError's text, or the stage that failed)
    exit_code: int = 0


@dataclass(frozen=True)
class CameraStatus:
    """One camera of a ``CameraActor`` as ``trackstream cluster list`` shows it.

    Attributes:
        stats: the camera's counters (zeros when it did not start).
        node / actor / pid: where it runs.
        state: ``live``, ``reconnecting``, ``ended`` or ``failed``.
        restarts: times Ray restarted its actor.
        error: why it did not start (one line); None when it started.
        started: False when the actor could not start its cameras (a bad model, state or source).
    """

    stats: StatsSnapshot
    node: str
    state: str
    restarts: int
    actor: str
    pid: int
    error: Optional[str] = None
    started: bool = True

    def doc(self) -> dict[str, object]:
        """The JSON row of ``cluster list --json``."""
        where = {"node": self.node, "state": self.state, "restarts": self.restarts, "actor": self.actor,
                 "pid": self.pid}
        if not self.started:
            return {"source_id": self.stats.source_id, **where, "fps": self.stats.fps,
                    "latency_s": self.stats.latency_s, "frames_out": self.stats.frames_out, "error": self.error}
        return {**self.stats.doc(), **where}


__all__ = ["CameraStatus", "Outcome"]

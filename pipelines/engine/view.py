"""A read-only view of a running engine: what the CLI summary, the metrics, the web view and the Ray actors
read of each source, instead of reaching into the runner's lanes.

``Runner.sources()`` returns one ``SourceState`` per source, taken at the call: plain values (the counters'
``StatsSnapshot``, the ``Counts`` after the last processed frame, queue depths), plus the two live objects a
reader needs (the latency histogram, which the metrics endpoint renders, and each output's sink, whose
newest picture the web view serves). Reading a view changes nothing in the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

from pipelines.engine.stats import LatencyHistogram, StatsSnapshot
from pipelines.frames import Counts, Sink


@dataclass(frozen=True)
class OutputState:
    """One output (sink) of one source.

    Attributes:
        name: the sink's registry name (``video``, ``jsonl``, ``redis``, ``viewer``, ...).
        queued: results waiting in its queue.
        buffered: entries a network sink holds for its server (grows in an outage); None for other sinks.
        failure: why the output stopped on its own (disk full, I/O error); None while it works.
        sink: the sink itself (read-only use: the web view takes its viewer's newest picture).
    """

    name: str
    queued: int
    buffered: Optional[int]
    failure: Optional[str]
    sink: Sink


@dataclass(frozen=True)
class SourceState:
    """One source of a running engine at one instant.

    Attributes:
        id: the source id (never holds credentials).
        live: a camera or stream (it reconnects) rather than a file.
        connected: frames flow now (a camera in a gap is not connected; a file always is).
        connect_failures: failed connection attempts so far (0 for files).
        pending: frames decoded and waiting inside the source; ``inbox``: items waiting in the engine's
            buffer of the source.
        stats: the engine's counters of the source.
        latency: the decode -> tracked latency histogram (live: it keeps counting).
        counts: zone and line counts and tracks started, after the last processed frame.
        outputs: the source's outputs, in registry order (empty until its first frame opened them).
    """

    id: str
    live: bool
    connected: bool
    connect_failures: int
    pending: int
    inbox: int
    stats: StatsSnapshot
    latency: LatencyHistogram
    counts: Counts
    outputs: tuple[OutputState, ...]


class EngineView(Protocol):
    """What a reader may ask of a running engine (``pipelines.engine.runner.Runner`` is one)."""

    def sources(self) -> Sequence[SourceState]:
        """Every source's state now, in the order of the sources."""
        ...

    @property
    def outputs(self) -> list[str]:
        """Paths of the files the outputs write."""
        ...

    def losses(self) -> list[str]:
        """One phrase per output that lost data; empty when every output got everything."""
        ...


__all__ = ["EngineView", "OutputState", "SourceState"]

"""Run metrics: a Prometheus endpoint (``--metrics-port``) and the same figures as a periodic one-line log.

Per source (label ``source``, the source id -- never a URL with credentials):

- ``trackstream_frames_in_total`` / ``_out_total``: frames read from the source / fully processed;
- ``trackstream_frames_detected_total``: of those, frames the detector ran on (``detector.schedule``);
  ``trackstream_detector_duty``: their share over the last few seconds (1 = every frame; 1 - duty is the
  detector compute saved);
  ``trackstream_fps_in`` / ``trackstream_fps_out``: the same as rates over the last few seconds.
- ``trackstream_frames_dropped_total``: frames replaced by a newer one before the detector took them (live policy).
- ``trackstream_reconnects_total``, ``trackstream_connect_failures_total``, ``trackstream_source_up`` (0 in a gap).
- ``trackstream_latency_seconds``: histogram of capture -> output latency (decode to tracked result).
- ``trackstream_output_failed{output=...}``: 1 once that output stopped on its own (disk full, I/O error); the
  run goes on without it and ends with exit code 3.
- ``trackstream_queue_depth{queue=...}``: items waiting in the source slot, the runner inbox, each sink queue
  (``sink_<name>``) and a network sink's outage buffer (``buffer_redis``).

The monitor reads what the runner already counts (its read-only view, ``pipelines.engine.view``: the counters'
snapshots, the live source's own counters, queue sizes):
nothing is counted twice and the hot path pays nothing for an idle endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Iterator, Optional, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from pipelines.engine.endpoint import serve_metrics
from pipelines.engine.stats import LatencyHistogram, StatsSnapshot
from pipelines.engine.view import EngineView, SourceState
from pipelines.errors import UserError
from pipelines.listen import parse_listen
from pipelines.secrets import redact_url

log = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0


@dataclass
class Reading:
    """One source's figures at one instant (see module docstring for their meaning): the runner's counters as
    they are (``stats``, the one copy the summary, the Ray engine and the web view read too) and what only the
    live source and the queues know."""

    source: str
    stats: StatsSnapshot
    connect_failures: int = 0
    up: bool = True
    queues: dict[str, int] = field(default_factory=dict)
    latency: Optional[LatencyHistogram] = None
    outputs_failed: dict[str, bool] = field(default_factory=dict)  # output name -> it stopped (disk full, ...)


def runner_readings(engine: EngineView) -> list[Reading]:
    """Readings of every source of a running engine (``EngineView``: a ``pipelines.engine.runner.Runner``)."""
    return readings_of(engine.sources())


def readings_of(states: Sequence[SourceState]) -> list[Reading]:
    """Readings of sources as the engine's view shows them."""
    out = []
    for state in states:
        stats = state.stats  # a consistent copy of the runner's counters (drops counted once, there)
        queues = {"source": state.pending, "inbox": state.inbox}
        for output in state.outputs:
            queues[f"sink_{output.name}"] = output.queued
            if output.buffered is not None:   # network sinks: entries waiting for the server (grows in an outage)
                queues[f"buffer_{output.name}"] = output.buffered
        out.append(Reading(
            source=redact_url(state.id), stats=stats, connect_failures=state.connect_failures,
            up=state.connected, queues=queues, latency=state.latency,
            outputs_failed={o.name: o.failure is not None for o in state.outputs}))
    return out


class _Rates:
    """Frames per second in and out per source over the last ``RATE_WINDOW_S`` seconds."""

    def __init__(self) -> None:
        self._samples: dict[str, Deque[tuple[float, int, int, int]]] = {}

    def add(self, now: float, readings: Sequence[Reading]) -> None:
        for r in readings:
            window = self._samples.setdefault(r.source, deque())
            window.append((now, r.stats.frames_in, r.stats.frames_out, r.stats.frames_detected))
            while len(window) > 2 and now - window[1][0] >= RATE_WINDOW_S:
                window.popleft()

    def get(self, source: str) -> tuple[float, float]:
        window = self._samples.get(source)
        if not window or len(window) < 2:
            return 0.0, 0.0
        (t0, in0, out0, _), (t1, in1, out1, _) = window[0], window[-1]
        span = max(t1 - t0, 1e-9)
        return (in1 - in0) / span, (out1 - out0) / span

    def duty(self, source: str) -> Optional[float]:
        """Share of the frames processed over the window that the detector ran on (None: none processed)."""
        window = self._samples.get(source)
        if not window or len(window) < 2 or window[-1][2] == window[0][2]:
            return None
        return (window[-1][3] - window[0][3]) / (window[-1][2] - window[0][2])


class _Collector(Collector):
    def __init__(self, monitor: "Monitor") -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        readings = self.monitor.readings()
        label = ["source"]
        families = {
            "in": CounterMetricFamily("trackstream_frames_in", "Frames read from the source", labels=label),
            "out": CounterMetricFamily("trackstream_frames_out", "Frames fully processed", labels=label),
            "det": CounterMetricFamily("trackstream_frames_detected",
                                       "Frames the detector ran on (the rest were predicted)", labels=label),
            "drop": CounterMetricFamily("trackstream_frames_dropped",
                                        "Frames replaced by a newer one before detection", labels=label),
            "rec": CounterMetricFamily("trackstream_reconnects", "Reconnections after a gap", labels=label),
            "fail": CounterMetricFamily("trackstream_connect_failures", "Failed connection attempts",
                                        labels=label),
        }
        fps_in = GaugeMetricFamily("trackstream_fps_in", "Frames per second read (recent)", labels=label)
        fps_out = GaugeMetricFamily("trackstream_fps_out", "Frames per second processed (recent)", labels=label)
        duty = GaugeMetricFamily("trackstream_detector_duty", "Share of processed frames the detector ran on "
                                 "(recent; 1 - duty = detector compute saved by the schedule)", labels=label)
        up = GaugeMetricFamily("trackstream_source_up", "1 while the source delivers frames, 0 in a gap",
                               labels=label)
        depth = GaugeMetricFamily("trackstream_queue_depth", "Items waiting in a queue",
                                  labels=["source", "queue"])
        latency = HistogramMetricFamily("trackstream_latency_seconds", "Capture to output latency",
                                        labels=label)
        failed = GaugeMetricFamily("trackstream_output_failed", "1 once an output stopped (disk full, I/O error)",
                                   labels=["source", "output"])
        for r in readings:
            for key, value in (("in", r.stats.frames_in), ("out", r.stats.frames_out),
                               ("det", r.stats.frames_detected), ("drop", r.stats.dropped),
                               ("rec", r.stats.reconnects), ("fail", r.connect_failures)):
                families[key].add_metric([r.source], value)
            rate_in, rate_out = self.monitor.rates.get(r.source)
            fps_in.add_metric([r.source], rate_in)
            fps_out.add_metric([r.source], rate_out)
            recent = self.monitor.rates.duty(r.source)
            if recent is not None:
                duty.add_metric([r.source], recent)
            up.add_metric([r.source], 1.0 if r.up else 0.0)
            for name, value in r.queues.items():
                depth.add_metric([r.source, name], value)
            if r.latency is not None:
                buckets, total = r.latency.prometheus_buckets()
                latency.add_metric([r.source], buckets, total)
            for name, is_failed in r.outputs_failed.items():
                failed.add_metric([r.source, name], 1.0 if is_failed else 0.0)
        yield from families.values()
        yield from (fps_in, fps_out, duty, up, depth, latency, failed)


class Monitor:
    """Samples readings every second; logs one line every ``log_interval`` s; serves Prometheus on ``port``.

    Args:
        readings: returns the current per-source readings (e.g. ``lambda: runner_readings(runner)``).
        log_interval: seconds between log lines; 0 turns the log off.
        port: Prometheus endpoint ``[HOST:]PORT`` (host 127.0.0.1 unless given), or None for no endpoint.
        token: when set, the endpoint needs it (``Authorization: Bearer``), like the web view.
    """

    def __init__(self, readings: Callable[[], Sequence[Reading]], *, log_interval: float = 10.0,
                 port: "Optional[int | str]" = None, token: Optional[str] = None) -> None:
        self._readings = readings
        self.log_interval = log_interval
        self.port: Optional[int]
        self.addr, self.port = "127.0.0.1", None
        if port is not None:
            self.addr, self.port = parse_listen(port)
        self.token = token
        self.rates = _Rates()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._server: Any = None

    def readings(self) -> list[Reading]:
        try:
            return list(self._readings())
        except Exception:  # noqa: BLE001 - metrics must never break a run
            log.debug("reading metrics failed", exc_info=True)
            return []

    def start(self) -> "Monitor":
        if self.port is not None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Collector(self))
            try:
                self._server = serve_metrics(registry, self.addr, self.port, self.token)
            except OSError as exc:
                raise UserError(f"cannot serve metrics on {self.addr}:{self.port}: {exc.strerror or exc}") from None
            host = f"[{self.addr}]" if ":" in self.addr else self.addr
            log.info("metrics: http://%s:%d/metrics%s%s", host, self.port,
                     " (every interface of this machine)" if self.addr in ("0.0.0.0", "::") else "",
                     " (needs the web token)" if self.token else "")
        self._thread = threading.Thread(target=self._loop, name="trackstream-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Log a last line and shut the endpoint down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _loop(self) -> None:
        last_log = time.monotonic()
        logged = False
        while not self._stop.wait(1.0):
            now = time.monotonic()
            readings = self.readings()
            self.rates.add(now, readings)
            if self.log_interval and now - last_log >= self.log_interval:
                last_log, logged = now, True
                log.info("%s", self.line(readings))
        if logged:  # a closing line for runs long enough to have had periodic ones
            log.info("%s", self.line(self.readings()))

    def line(self, readings: Sequence[Reading]) -> str:
        """One line with every source's figures: ``stats cam1: in 25.0/s out 8.0/s dropped 17 ... | cam2: ...``."""
        parts = []
        for r in readings:
            rate_in, rate_out = self.rates.get(r.source)
            p50 = r.latency.quantile(0.5) if r.latency else None
            p95 = r.latency.quantile(0.95) if r.latency else None
            lat = f"latency p50 {p50 * 1000:.0f} ms p95 {p95 * 1000:.0f} ms" if p50 is not None and p95 is not None \
                else "latency -"
            queues = " ".join(f"{k}={v}" for k, v in r.queues.items())
            failed = "".join(f" {name} FAILED" for name, bad in r.outputs_failed.items() if bad)
            parts.append(f"{r.source}: in {rate_in:.1f}/s out {rate_out:.1f}/s dropped {r.stats.dropped} "
                         f"reconnects {r.stats.reconnects}{'' if r.up else ' DOWN'}{failed} {lat} queues {queues}")
        return "stats " + (" | ".join(parts) if parts else "(no sources)")

"""The status of a source as the web view shows it: one JSON document per source (see docs/web.md).

``SourceView`` gathers what the run knows about a source at one instant (the viewer sink's newest result
and state, the metrics reading, the recent rates); ``source_doc`` turns it into the document served at
``/api/sources`` and pushed to the page. ``runner_views`` reads them from a running engine's read-only view.
"""

from __future__ import annotations

import math
import time
from urllib.parse import quote
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from pipelines.engine.view import EngineView
from pipelines.frames import Counts, FrameResult, StatusKind
from pipelines.secrets import redact_url
from pipelines.sinks.viewer import ViewerSink, ViewerState

if TYPE_CHECKING:
    from pipelines.engine.metrics import Monitor, Reading

MAX_TRACK_ROWS = 200  # a crowd: the table shows the 200 lowest ids

_STATES = {StatusKind.STARTED: "live", StatusKind.RESUMED: "live", StatusKind.GAP: "reconnecting",
           StatusKind.ENDED: "ended"}


@dataclass(frozen=True)
class SourceView:
    """What the web view knows about one source at one instant.

    Attributes:
        id: the source id (never holds credentials).
        live: a camera or stream (it reconnects) rather than a file.
        viewer: the source's viewer sink; None until its sinks are open (the first frame).
        reading: the source's metrics figures; None when unknown.
        fps_in / fps_out: frames read / processed per second over the last few seconds.
        duty: share of the frames processed over the last few seconds that the detector ran on (None: none).
        ended: the run is over for this source.
        waiting: a file of an archive waiting for its turn (not opened yet).
        counts: its counts now (a finished file of an archive whose last picture is no longer kept shows these).
    """

    id: str
    live: bool
    viewer: Optional[ViewerSink]
    reading: Optional["Reading"] = None
    fps_in: float = 0.0
    fps_out: float = 0.0
    duty: Optional[float] = None
    ended: bool = False
    waiting: bool = False
    counts: Optional[Counts] = None


def stream_state(view: SourceView, held: Optional[ViewerState]) -> str:
    """``waiting`` (a file of an archive before its turn), ``starting`` (nothing yet), ``live``, ``reconnecting``
    (a camera in a gap) or ``ended``."""
    kind = held.kind if held is not None else None
    if view.waiting and not view.ended:
        return "waiting"
    if view.ended or kind is StatusKind.ENDED or (held is not None and held.closed):
        return "ended"
    if kind is StatusKind.GAP or (view.live and kind is not None and view.reading is not None
                                  and not view.reading.up):
        return "reconnecting"   # the source says it lost the camera before the gap reaches the sinks
    if kind is None:
        if held is not None and held.result is not None:
            return "live"
        failing = view.live and view.reading is not None and not view.reading.up and view.reading.connect_failures
        return "reconnecting" if failing else "starting"   # a camera not reached yet says so
    return _STATES.get(kind, "live")


def track_rows(result: FrameResult) -> list[dict[str, Any]]:
    """The tracks of a result as table rows: id, class, confidence, age (s), speed (px/s), coasting, and the
    analytics' measures: seconds inside each zone (``zones``), ground speed (``speed_kmh``, None uncalibrated)."""
    tracks = result.tracks
    order = tracks.track_id.argsort(kind="stable")[:MAX_TRACK_ROWS]
    names = result.class_names
    speeds = (tracks.velocity[:, 0].astype(float) ** 2 + tracks.velocity[:, 1].astype(float) ** 2) ** 0.5
    matched = tracks.matched
    measures = result.measures
    rows = []
    for i in order.tolist():
        class_id, tid = int(tracks.class_id[i]), int(tracks.track_id[i])
        motion = measures.motion.get(tid) if measures is not None else None
        rows.append({"id": tid, "class": names.get(class_id, str(class_id)),
                     "confidence": round(float(tracks.confidence[i]), 2), "age_s": round(float(tracks.age[i]), 1),
                     "speed_px_s": _finite(float(speeds[i]), 1), "coasting": not bool(matched[i]),
                     "speed_kmh": None if motion is None else round(motion.speed_kmh, 1),
                     "zones": dict(measures.zones.get(tid, {})) if measures is not None else {}})
    return rows


def _finite(value: Optional[float], digits: int) -> Optional[float]:
    return round(value, digits) if value is not None and math.isfinite(value) else None


def source_doc(view: SourceView, now: Optional[float] = None) -> dict[str, Any]:
    """The JSON-safe status document of one source (the keys are listed in docs/web.md)."""
    held = view.viewer.state() if view.viewer is not None else None
    result = held.result if held is not None else None
    reading = view.reading
    latency = reading.latency if reading is not None else None
    stats = reading.stats if reading is not None else None
    p50, p95 = (latency.quantile(0.5), latency.quantile(0.95)) if latency is not None else (None, None)
    doc: dict[str, Any] = {
        "id": view.id, "state": stream_state(view, held), "live": view.live,
        "fps_in": round(view.fps_in, 1), "fps_out": round(view.fps_out, 1),
        "latency_ms": {"p50": _finite(p50 * 1000 if p50 is not None else None, 0),
                       "p95": _finite(p95 * 1000 if p95 is not None else None, 0)},
        "frames_in": stats.frames_in if stats else 0, "frames_out": stats.frames_out if stats else 0,
        "frames_detected": stats.frames_detected if stats else 0,
        "detector_duty": _finite(view.duty, 3),
        "dropped": stats.dropped if stats else 0, "reconnects": stats.reconnects if stats else 0,
        "outputs_failed": sorted(k for k, bad in (reading.outputs_failed if reading else {}).items() if bad),
        "picture": held.seq if held is not None else 0,
        "frame": None, "tracks": [], "zones": {}, "lines": {}, "tracks_started": None, "predictions": [],
        "heatmap": None,
        "events": list(held.events) if held is not None else [],
    }
    if result is not None:
        frame = result.frame
        width, height = frame.size
        doc["frame"] = {"index": frame.index, "pts": round(frame.pts, 3), "width": width, "height": height,
                        "detected": result.detected,
                        "age_s": round(max(0.0, (now or time.time()) - frame.capture_time), 3)}
        doc["tracks"] = track_rows(result)
        if result.heat is not None:
            doc["heatmap"] = {"url": f"/api/heatmap/{quote(view.id, safe='')}.png", "frames": result.heat.frames,
                              "classes": sorted(result.heat.by_class)}
        if result.counts is not None:
            counts = result.counts.doc()
            doc.update(zones=counts["zones"], lines=counts["lines"], tracks_started=counts["tracks_started"],
                       # an ended source's warnings were cancelled with its tracks (the last frame's still stood)
                       predictions=counts["predictions"] if doc["state"] != "ended" else [])
    elif view.counts is not None and doc["state"] == "ended":   # a finished file whose last picture is let go
        counts = view.counts.doc()
        doc.update(zones=counts["zones"], lines=counts["lines"], tracks_started=counts["tracks_started"])
    return doc


def runner_views(engine: EngineView, monitor: Optional["Monitor"] = None) -> Callable[[], list[SourceView]]:
    """A function returning the current ``SourceView`` of every source of a running engine (``EngineView``:
    a ``Runner``; rates from ``monitor``, which samples them every second; zeros without one)."""
    from pipelines.engine.metrics import readings_of

    def views() -> list[SourceView]:
        out = []
        states = engine.sources()
        for state, reading in zip(states, readings_of(states)):
            viewer = next((o.sink for o in state.outputs if isinstance(o.sink, ViewerSink)), None)
            rate_in, rate_out = monitor.rates.get(reading.source) if monitor is not None else (0.0, 0.0)
            duty = monitor.rates.duty(reading.source) if monitor is not None else None
            out.append(SourceView(id=redact_url(state.id), live=state.live, viewer=viewer,
                                  reading=reading, fps_in=rate_in, fps_out=rate_out, duty=duty,
                                  ended=state.stats.ended, waiting=state.stats.waiting, counts=state.counts))
        return out

    return views


def all_doc(views: Sequence[SourceView], max_fps: float) -> dict[str, Any]:
    """The document of ``/api/sources``: every source, and the picture rate the page should pull at."""
    now = time.time()
    return {"time": round(now, 3), "max_fps": max_fps, "sources": [source_doc(v, now) for v in views]}

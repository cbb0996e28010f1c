"""``Outputs``: each source's sinks, opened once its picture size is known, each fed through its own ``Outlet``
(a bounded ``SinkQueue`` with the sink's drop policy, and a thread ``trackstream-sink-<name>-<id>``).

Statuses that come before a source's sinks are open wait with its lane and go out first once they are. A sink
thread that ends lets its lane go (``release``) once nothing else holds it.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Optional, Sequence, Union

from pipelines.config import PipelineConfig
from pipelines.engine.control import RunControl
from pipelines.engine.lane import Lane, output_fps
from pipelines.engine.outlet import Outlet
from pipelines.engine.sinkqueue import SinkQueue
from pipelines.engine.state import Checkpoint
from pipelines.frames import FrameResult, StreamStatus
from pipelines.processing.calibration import points_outside
from pipelines.processing.zones import outside_picture
from pipelines.settings import SourceSettings
from pipelines.sinks import BuiltSink

log = logging.getLogger("pipelines.engine.runner")   # the engine's lines keep the name their readers know

# builds the sinks of one source: (config, its settings, output fps, picture size, saved output positions)
SinkFactory = Callable[[PipelineConfig, SourceSettings, Optional[float], tuple[int, int],
                        Optional[Mapping[str, Mapping[str, object]]]], list[BuiltSink]]
SINK_QUEUE_SIZE = 32


class Outputs:
    """Opens, feeds and closes the sinks of every source of one run.

    Args:
        config: the pipeline config the sinks are built from.
        sink_factory: builds the sinks of one source (``pipelines.sinks.build_sinks``).
        control: the run's lock, abort flag, threads and failures.
        release: lets a lane go once nothing holds it (called when one of its sink threads ends).
    """

    def __init__(self, config: PipelineConfig, sink_factory: SinkFactory, control: RunControl,
                 release: Callable[[Lane], None]) -> None:
        self._config, self._sink_factory, self._control, self._release = config, sink_factory, control, release

    def open(self, lane: Lane, size: tuple[int, int]) -> None:
        """Build ``lane``'s sinks for pictures of ``size`` (width, height), start their threads, and send them the
        statuses that waited."""
        settings = lane.settings
        beyond = outside_picture(settings.zones, settings.lines, size) if size[0] > 0 and size[1] > 0 else []
        if beyond:  # once per source, when its picture size is first known
            log.warning("%s: %s outside its %dx%d picture (zones and lines are in pixels of the frames, x 0-%d, "
                        "y 0-%d): no anchor can be there, so they miss what they should count", settings.id,
                        ", ".join(beyond), size[0], size[1], size[0], size[1])
        far = points_outside(settings.calibration, size) \
            if settings.calibration is not None and size[0] > 0 and size[1] > 0 else []
        if far:
            log.warning("%s: calibration.image_points %s outside its %dx%d picture: they were picked in another "
                        "picture (camera or resolution), so its ground points and speeds are wrong here; pick "
                        "the points in this camera's frames", settings.id, far, size[0], size[1])
        fps = output_fps(lane.source, lane.settings.options)
        built = self._sink_factory(self._config, lane.settings, fps, size, lane.saved_outputs or None)
        lane.outlets = [Outlet(b.name, b.sink, SinkQueue(SINK_QUEUE_SIZE, b.policy), b.drops_lose_data)
                        for b in built]
        for outlet in lane.outlets:
            position = outlet.sink.position() if outlet.keeps_files else None
            if position and isinstance(position.get("path"), str):
                # the file this sink writes (a resumed video's position names the earlier part until it writes)
                lane.output_files.append((outlet, str(getattr(outlet.sink, "path", None) or position["path"])))
        lane.outlets_open = True
        with self._control.cond:
            lane.outlets_running += len(lane.outlets)
        for outlet in lane.outlets:
            name = f"sink-{outlet.name}-{lane.settings.id}"
            self._control.spawn(name, self._run, name, outlet, lane)
        pending, lane.pending = lane.pending, []
        for status in pending:
            self.send(lane, status)

    def send(self, lane: Lane, item: Union[FrameResult, StreamStatus, Checkpoint]) -> None:
        """Queue ``item`` for each of ``lane``'s sinks (a checkpoint for those that keep files only); a status that
        comes before the sinks are open waits for them, a checkpoint then has no sink to wait for."""
        if not lane.outlets_open and not isinstance(item, FrameResult):
            if isinstance(item, StreamStatus):
                lane.pending.append(item)
            return
        for outlet in lane.outlets:
            if isinstance(item, Checkpoint) and not outlet.keeps_files:
                continue
            outlet.queue.put(item, self._control.aborted.is_set)

    def _run(self, name: str, outlet: Outlet, lane: Lane) -> None:
        """Sink thread: see ``Outlet.run``; an error that is not the output's own, or its pipe's reader going away,
        stops the run."""
        try:
            outlet.run(lambda exc: self._control.fail(name, exc), self._control.stop_for)
        finally:
            with self._control.cond:
                lane.outlets_running -= 1
            self._release(lane)

    @staticmethod
    def close_all(lanes: Sequence[Lane]) -> None:
        """Close every sink of ``lanes`` at once (a start that failed before any sink thread ran)."""
        for lane in lanes:
            for outlet in lane.outlets:
                try:
                    outlet.sink.close()
                except Exception:  # noqa: BLE001
                    log.debug("closing sink failed", exc_info=True)


__all__ = ["SINK_QUEUE_SIZE", "Outputs", "SinkFactory"]

"""``DetectorLoop``: the detector threads (``trackstream-detector``, one per detector worker), one model call per
batch.

Workers take batches in ticket order (``Batches``) and hand their results to the processing thread in that same
order, whichever finishes first (``Delivery``), so results never depend on timing. After a failure anywhere they
drain what is left without calling the model. The last worker to leave closes the processing thread's queue.
"""

from __future__ import annotations

from pipelines.detection import FrameDetector
from pipelines.engine.batches import Batches, Taken, lanes_of
from pipelines.engine.control import RunControl
from pipelines.engine.delivery import Delivery, Work
from pipelines.frames import VideoFrame


class DetectorLoop:
    """What each detector thread runs (``run``).

    Args:
        detector: the detector (``detect_counted``), called from every worker thread at once.
        control: the run's abort flag.
        batches: hands out the next batch and its ticket.
        delivery: takes each batch's results on to the processing thread in order.
    """

    def __init__(self, detector: FrameDetector, control: RunControl, batches: Batches, delivery: Delivery) -> None:
        self._detector, self._control, self._batches, self._delivery = detector, control, batches, delivery

    def run(self) -> None:
        """Detector thread (one per detector worker): one model call per batch, until every inbox is finished."""
        try:
            while True:
                taken = self._batches.next()
                if taken is None:
                    break
                self._detect(*taken)
        finally:
            self._delivery.leave()

    def _detect(self, ticket: int, work: list[Taken]) -> None:
        """One model call for batch ``ticket``; its results are delivered in order, also when the call fails."""
        out: list[Work] = []
        lanes = lanes_of(work)
        failed = False
        try:
            frames = [item for _, item, detect, _ in work if detect and isinstance(item, VideoFrame)]
            if not self._control.aborted.is_set():  # after a failure: drain without working
                # the sources with nothing to detect in this call (a camera's predicted frames) need
                # not wait for it: on to the processing thread now, if nothing of theirs is before
                asking = {lane for lane, _, detect, _ in work if detect}
                early = [lane for lane in lanes if lane not in asking]
                if early and frames:
                    self._delivery.deliver(ticket, [(lane, item, None, state) for lane, item, _, state in work
                                                    if lane not in asking], early)
                    lanes = [lane for lane in lanes if lane in asking]
                dets, dropped = self._detector.detect_counted(frames) if frames else ([], 0)
                if dropped:  # the call's count: put on the first source that asked for it
                    next(lane for lane, _, detect, _ in work if detect).stats.add(invalid_detections=dropped)
                found = iter(dets)
                out = [(lane, item, next(found) if detect else None, state)
                       for lane, item, detect, state in work if lane in lanes]
        except BaseException:
            # no later batch of the sources that asked is delivered: their output ends before this one
            # (other sources' batches delivered meanwhile stay; so do the frames it held for others)
            failed = True
            self._delivery.fail(ticket)
            raise
        finally:
            self._delivery.deliver(ticket, out, lanes)  # even after a failure, so later tickets are not held up
            if failed:  # the run aborts once raised: first every earlier batch must be delivered whole
                self._delivery.wait_through(ticket)


__all__ = ["DetectorLoop"]

"""How good are the warnings before a crossing? ``crossing_predicted`` against the ground truth's crossings.

trackstream tracks the sequence's public detections (the ``--config`` settings) and, after every frame,
predicts crossings of the counting lines exactly as ``trackstream run`` does (``LineForecaster`` with the
``--predict-horizon`` H and ``--predict-probability``; ``LineCounter`` fulfils them). Each prediction is tied
to the ground-truth person whose box its track's box overlaps most at that frame (IoU >= 0.5; none: a false
warning). It is *true* when that person's ground-truth trajectory crosses the same line in the same
direction (our counting rule, ``counting.count_crossings``) within H seconds, plus the counting rule's
confirmation (``min_frames_on_side`` frames), after the prediction.

* precision: true predictions / predictions made (cancelled ones included: the user saw them);
* recall: ground-truth crossings with a true prediction made before them / all ground-truth crossings
  (people the detector never found count as missed);
* lead: seconds from the first true prediction to the ground-truth crossing; the median is reported;
* late: predictions whose person did cross that line that way, but later than the horizon (the warning was
  right about the crossing, early about its time; counted false above).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipelines.evaluation.counting import count_crossings, percent
from pipelines.evaluation.motio import MotSequence, frames
from pipelines.evaluation.paths import MIN_IOU, _iou
from pipelines.evaluation.trackers import TrackstreamTracker
from pipelines.processing.forecast import LineForecaster, anchor_forecast
from pipelines.processing.zones import EventsConfig, LineConfig, LineCounter, anchor_points

DEFAULT_PROBABILITY = 0.5


@dataclass(frozen=True)
class PredictionScore:
    """One sequence's predicted crossings at one horizon (module docstring)."""

    horizon: float
    min_probability: float
    predictions: int
    true_predictions: int
    cancelled: int
    gt_crossings: int
    warned_crossings: int
    leads: tuple[float, ...]
    late: int = 0

    @property
    def precision(self) -> float:
        return percent(self.true_predictions, self.predictions)

    @property
    def recall(self) -> float:
        return percent(self.warned_crossings, self.gt_crossings)

    @property
    def median_lead(self) -> float:
        return float(np.median(self.leads)) if self.leads else float("nan")

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(x, 3)
        return {"horizon_seconds": self.horizon, "min_probability": self.min_probability,
                "predictions": self.predictions, "true_predictions": self.true_predictions,
                "cancelled": self.cancelled, "gt_crossings": self.gt_crossings,
                "warned_crossings": self.warned_crossings, "late_predictions": self.late,
                "precision": num(self.precision),
                "recall": num(self.recall), "median_lead_seconds": num(self.median_lead)}


def pooled(scores: Sequence[PredictionScore]) -> PredictionScore:
    """Sums over sequences (the leads pooled)."""
    first = scores[0]
    return PredictionScore(first.horizon, first.min_probability, sum(s.predictions for s in scores),
                           sum(s.true_predictions for s in scores), sum(s.cancelled for s in scores),
                           sum(s.gt_crossings for s in scores), sum(s.warned_crossings for s in scores),
                           tuple(x for s in scores for x in s.leads), sum(s.late for s in scores))


def _owner(box: np.ndarray, gt_frame: np.ndarray) -> int | None:
    """The gt id whose box overlaps ``box`` (tlwh) most, with IoU >= MIN_IOU; None otherwise."""
    if len(gt_frame) == 0:
        return None
    iou = _iou(box[None], gt_frame[:, 2:6])[0]
    best = int(np.argmax(iou))
    return int(gt_frame[best, 1]) if iou[best] >= MIN_IOU else None


def _end_removed(adapter: TrackstreamTracker, counters: Sequence[LineCounter],
                 ahead: Sequence[LineForecaster]) -> int:
    """Forget the tracks the last update or prediction removed; how many standing warnings that cancels (an
    ended track's, ``track_ended``)."""
    cancelled = 0
    for tid in adapter.removed():
        for counter, watch in zip(counters, ahead):
            counter.forget(tid)
            cancelled += len(watch.forget(tid))
    return cancelled


def score_predictions(seq: MotSequence, dets: np.ndarray, gt: np.ndarray, lines: Sequence[LineConfig],
                      config: dict[str, Any], horizon: float,
                      min_probability: float = DEFAULT_PROBABILITY, fed: np.ndarray | None = None
                      ) -> PredictionScore:
    """Track ``seq`` with trackstream, predict crossings of ``lines`` ``horizon`` s ahead, score them.

    ``fed`` bool by frame number (``--schedule``): the frames whose detections trackstream gets; on the others
    it predicts, and, as ``run`` on a frame it did not detect, neither counts nor warns (an ended track's
    warnings are still cancelled); None: every frame."""
    rate = seq.info.frame_rate
    events = EventsConfig()
    lines = [replace(ln, predict_seconds=horizon, predict_min_probability=min_probability) for ln in lines]
    adapter = TrackstreamTracker(config)
    counters = [LineCounter(ln, events.min_frames_on_side, events.line_dead_band) for ln in lines]
    ahead = [LineForecaster(ln, events.line_dead_band, events.min_frames_on_side) for ln in lines]
    gt_by_frame = {int(f): gt[gt[:, 0] == f] for f in np.unique(gt[:, 0])}
    made: list[tuple[int, str, int, int | None]] = []       # frame, line, sign, gt id
    size = (seq.info.width, seq.info.height) if seq.info.width and seq.info.height else None
    cancelled = 0
    for frame, rows in frames(dets, seq.info.length):
        if fed is not None and not fed[frame]:
            adapter.predict((frame - 1) / rate)
            cancelled += _end_removed(adapter, counters, ahead)
            continue
        out = adapter.update(rows[:, :4], rows[:, 4], (frame - 1) / rate)
        seen = adapter.counted()        # what run counts and warns on: matched tracks, at the detector's box
        ids = [int(i) for i in seen[:, 0].tolist()]
        xyxy = np.concatenate([seen[:, 1:3], seen[:, 1:3] + seen[:, 3:5]], axis=1)
        anchors = anchor_points(xyxy, events.anchor)
        forecast = anchor_forecast(adapter.core, [horizon], events.anchor)
        box = dict(zip((int(i) for i in out[:, 0].tolist()), out[:, 1:5]))
        for counter, watch in zip(counters, ahead):
            for tid, sign, _ in counter.update(ids, anchors):
                watch.crossed(tid, sign)
            new, gone = watch.update(ids, forecast, (frame - 1) / rate)
            if size is not None:
                gone += watch.left(ids, (frame - 1) / rate, size)
            cancelled += len(gone)
            for p in new:
                made.append((frame, watch.name, p.sign, _owner(box[p.track], gt_by_frame.get(frame, gt[:0]))))
        cancelled += _end_removed(adapter, counters, ahead)
    truth = count_crossings(gt, lines, events)
    window = horizon * rate + events.min_frames_on_side
    first_warning: dict[int, int] = {}          # index into truth -> frame of its first true prediction
    true_predictions = late = 0
    for frame, line, sign, person in made:
        later = [i for i, c in enumerate(truth) if person is not None and c.track == person and c.line == line
                 and c.sign == sign and frame < c.frame]
        hits = [i for i in later if truth[i].frame <= frame + window]
        late += bool(later) and not hits
        if hits:
            true_predictions += 1
            i = min(hits, key=lambda k: truth[k].frame)
            first_warning[i] = min(first_warning.get(i, frame), frame)
    leads = tuple((truth[i].frame - f) / rate for i, f in sorted(first_warning.items()))
    return PredictionScore(horizon, min_probability, len(made), true_predictions, cancelled, len(truth),
                           len(first_warning), leads, late)

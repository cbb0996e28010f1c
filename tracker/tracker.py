"""``Tracker``: Kalman + Hungarian multi-object tracking over parallel arrays.

One ``update(detections, timestamp)`` per frame runs, all batched over tracks:

1. predict every track to the frame's time (constant velocity, ``tracker.kalman``);
2. stage 1 -- confirmed and lost tracks vs high-confidence detections: IoU of the predicted box (times the
   detection score) plus OC-SORT velocity-direction consistency, gated by ``minimum_iou``;
3. stage 2 -- tracks that were matched in the previous frame vs low-confidence detections (ByteTrack);
4. stage 3 -- tentative tracks vs the remaining high-confidence detections;
5. stage 4 -- recovery: tracks seen in the previous frame but still unmatched vs the remaining
   high-confidence detections, by generalised IoU with the predicted box; the gate widens with the track's
   speed, so an object that jumps past its own box (fast, or a low frame rate) is still followed;
   with ``ego_motion_significance`` > 0 (default 5), when the matches show that the whole image moved
   (``tracker.egomotion``), every prediction is shifted by that much and stages 1-4 run again;
6. Kalman update of the matched tracks; a recovered lost track is re-run from its last observation along a
   straight virtual path (observation-centric re-update); lifecycle bookkeeping; new tentative tracks.

The output holds confirmed tracks matched in this frame, carrying the detection's ``det_index``, and, with
``output_unmatched_seconds`` > 0, confirmed tracks that lost their detection a moment ago at their predicted
box (``state == LOST``, ``det_index == -1``; see ``tracker.output``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tracker import egomotion, kalman
from tracker.association import assign, candidate_pairs, pair_direction, pair_giou, pair_iou
from tracker.config import TrackerConfig
from tracker.output import build_tracks, coasting_rows
from tracker.state import TrackArrays
from tracker.types import Detections, Tracks, TrackState

_TENTATIVE, _CONFIRMED, _LOST = int(TrackState.TENTATIVE), int(TrackState.CONFIRMED), int(TrackState.LOST)
_MAX_REUPDATE_STEPS = 30
_MIN_REUPDATE_STEPS = 3  # frames since the last observation
_MAX_GATE_WIDENING = 0.5  # GIoU units
_STATE_FORMAT = "trackstream.tracker/1"
_SCATTER_RATE = 0.1  # weight of a new frame in the running camera-shift scatter (about the last ten frames)


def _height_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise min/max ratio of box heights, (P,) in (0, 1], for corner boxes a, b (P, 4)."""
    ha, hb = a[:, 3] - a[:, 1], b[:, 3] - b[:, 1]
    ratio: np.ndarray = np.minimum(ha, hb) / np.maximum(np.maximum(ha, hb), 1e-6)
    return ratio


class Tracker:
    """Online multi-object tracker; one instance per video stream (each owns its ID counter).

    >>> trk = Tracker(TrackerConfig())
    >>> tracks = trk.update(detections, timestamp=frame.pts)   # every frame, also with no detections
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        if not isinstance(self.config, TrackerConfig):
            raise TypeError(f"config must be a TrackerConfig, got {type(self.config).__name__}")
        self._history_length = self.config.direction_lookback_observations + 1
        self._reset()

    def _reset(self) -> None:
        self._tracks = TrackArrays.empty(self._history_length, 0)
        self._classes = np.zeros(0, np.int64)  # class id of each vote column
        self._next_id = 1
        self._frame_count = 0
        self._clock = 0.0  # s, monotonic internal time
        self._last_timestamp: float | None = None
        self._frame_interval = 1.0 / self.config.frame_rate  # s, last positive gap between updates
        self._ego_scatter: np.ndarray | None = None  # running spread of camera-shift pairs, box heights (2,)
        self._no_tracks: Tracks | None = None  # what ``predict`` returns while no track is held (immutable)

    @property
    def track_count(self) -> int:
        """Number of live tracks (tentative, confirmed and lost) held in memory."""
        return len(self._tracks)

    # ------------------------------------------------------------------ update
    def update(self, detections: Detections, timestamp: float | None = None) -> Tracks:
        """Advance to ``timestamp`` (seconds; None -> frames seen / ``frame_rate``) and match ``detections``.

        Returns the confirmed tracks matched in this frame (rows follow increasing ``track_id``), plus
        coasting rows when ``output_unmatched_seconds`` > 0 (``Tracks.matched`` tells them apart), with the
        IDs of confirmed tracks removed during this call in ``removed_ids``. Timestamps that go backwards
        are treated as no time passing.
        """
        if not isinstance(detections, Detections):
            raise TypeError(f"detections must be tracker.Detections, got {type(detections).__name__}")
        now, dt = self._advance(timestamp)
        cfg = self.config
        self._register_classes(detections.class_id)
        removed = self._expire_lost(now)
        self._predict(dt)

        boxes = detections.xyxy.astype(np.float64)
        conf = detections.confidence.astype(np.float64)
        high = np.flatnonzero(conf >= cfg.high_confidence_threshold)
        low = np.flatnonzero((conf >= cfg.low_confidence_threshold) & (conf < cfg.high_confidence_threshold))
        mt, md = self._associate(boxes, conf, detections.class_id, high, low, dt)
        if cfg.ego_motion_significance > 0 and self._compensate(boxes, conf, high, mt, md):
            mt, md = self._associate(boxes, conf, detections.class_id, high, low, dt)  # at the moved predictions

        matched = np.zeros(len(self._tracks), bool)
        matched[mt] = True
        self._apply_matches(mt, md, boxes, detections.class_id, now)
        new_rows, new_dets = self._start_tracks(boxes, conf, detections.class_id, high, md, now)
        dropped = self._miss(~matched, now)  # unmatched tentative tracks past their gap: never in the output
        if dropped.any():
            self._tracks = self._tracks.take(np.flatnonzero(~dropped))
            remap = np.cumsum(~dropped) - 1
            mt, new_rows = remap[mt], remap[new_rows]
        out_rows = np.concatenate([mt, new_rows]).astype(np.int64)
        out_dets = np.concatenate([md, new_dets]).astype(np.int64)
        return self._output(detections, out_rows, out_dets, now, removed)

    def predict(self, timestamp: float | None = None) -> Tracks:
        """Advance to ``timestamp`` without a detector run on this frame: every track moves by its motion model.

        For frames the detector skipped (``detector.schedule``): distinct from ``update`` with no
        detections, which says the detector looked and found nothing. Nothing is matched or missed, so no
        track is lost, hits are kept and no track starts; only time passes (a lost track still expires after
        ``lost_track_buffer_seconds``, a tentative one after ``tentative_max_gap_seconds`` at the next
        ``update``). Camera motion cannot be measured without detections: the next ``update`` measures the
        shift accumulated since (``ego_motion_significance``) and corrects the predictions by it.

        Returns the confirmed tracks at their predicted boxes (``det_index == -1``, confidence 0, so
        ``Tracks.matched`` is False) plus the coasting rows ``update`` would report; rows by ``track_id``.
        """
        now, dt = self._advance(timestamp)
        removed = self._expire_lost(now)
        self._predict(dt)
        tr = self._tracks
        none = np.zeros(0, np.int64)
        if len(tr) == 0:
            if removed.size:
                return self._output(Detections.empty(), none, none, now, removed)
            if self._no_tracks is None:  # a quiet scene's frames: one empty value, not one built per frame
                self._no_tracks = self._output(Detections.empty(), none, none, now, removed)
            return self._no_tracks
        coast = coasting_rows(tr.state, tr.first_time, tr.last_time, now, _LOST,
                              self.config.output_unmatched_seconds)
        rows = np.concatenate([np.flatnonzero(tr.state == _CONFIRMED), coast])
        return build_tracks(
            Detections.empty(), none, np.zeros((0, 8)), tr.mean[rows], tr.track_id[rows], tr.class_id[rows],
            now - tr.first_time[rows], tr.state[rows],
            kalman.centre_path(tr.mean[rows], self.config.path_horizon_seconds, self.config.path_points),
            removed)

    def pending(self) -> tuple[int, int]:
        """(tentative tracks, lost tracks) held now: what a detection schedule watches besides the output."""
        state = self._tracks.state
        return int(np.count_nonzero(state == _TENTATIVE)), int(np.count_nonzero(state == _LOST))

    def velocity_spread(self) -> tuple[np.ndarray, np.ndarray]:
        """(track_id int64 (M,), standard deviation of the centre-velocity estimate in px/s (M,)) of the
        confirmed tracks: how far off their predicted boxes may drift per second without a detection. Large
        for a young track (its velocity is still a guess), small for one followed for a while."""
        tr = self._tracks
        rows = np.flatnonzero(tr.state == _CONFIRMED)
        vv = kalman.block_view(tr.cov[rows])[2]
        spread: np.ndarray = np.sqrt(np.maximum(vv[:, 0], vv[:, 1]))
        return tr.track_id[rows].copy(), spread

    def forecast(self, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the confirmed tracks will be ``seconds`` from now under the motion model (no state changes).

        Returns ``track_id`` int64 (M,), ``mean`` float64 (M, 8) and ``cov`` (M, 8, 8): the Kalman state
        ``cx, cy, w, h, vcx, vcy, vw, vh`` (pixels, pixels per second) predicted ``seconds`` ahead, with its
        covariance (the process noise of that time included). The state now is ``mean`` moved back by
        ``seconds`` along its velocity (constant velocity).
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        tr, cfg = self._tracks, self.config
        rows = np.flatnonzero(tr.state == _CONFIRMED)
        mean, cov = kalman.predict(tr.mean[rows], tr.cov[rows], seconds, cfg.position_noise,
                                   cfg.velocity_noise)
        return tr.track_id[rows].copy(), mean, cov

    def _advance(self, timestamp: float | None) -> tuple[float, float]:
        if timestamp is None:
            stamp = self._frame_count / self.config.frame_rate
        else:
            try:
                stamp = float(timestamp)
            except (TypeError, ValueError):
                raise ValueError(f"timestamp must be a number of seconds or None, got {timestamp!r}") \
                    from None
            if not math.isfinite(stamp):
                raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        dt = 0.0 if self._last_timestamp is None else max(stamp - self._last_timestamp, 0.0)
        if dt > 0.0:
            self._frame_interval = dt
        self._last_timestamp = stamp
        self._frame_count += 1
        self._clock += dt
        return self._clock, dt

    def _compensate(self, boxes: np.ndarray, conf: np.ndarray, high: np.ndarray, mt: np.ndarray,
                    md: np.ndarray) -> bool:
        """Shift every track's predicted position by the camera motion seen in this frame's detections.

        ``mt, md`` are the matches found at the unshifted predictions. When most tracks seen in the previous
        frame found a confident detection there, their displacements tell the shift (nothing more to pair);
        when many lost theirs at once, as in a fast pan that leaves every box behind, tracks and detections
        are paired by nearest centres instead. Returns True when the predictions were moved.
        """
        tr, cfg = self._tracks, self.config
        seen = tr.state == _CONFIRMED
        n_seen = int(np.count_nonzero(seen))
        if n_seen < egomotion.MIN_PAIRS or high.size < egomotion.MIN_PAIRS:
            return False
        pair = seen[mt] & (conf[md] >= cfg.high_confidence_threshold)
        if 2 * int(np.count_nonzero(pair)) >= n_seen:
            rows, found = mt[pair], boxes[md[pair]]
            move = 0.5 * (found[:, :2] + found[:, 2:]) - tr.mean[rows, :2]
            estimate = egomotion.shift_from_moves(move, tr.mean[rows, 3], cfg.ego_motion_significance,
                                                  self._ego_scatter)
        else:
            estimate = egomotion.shift_of(tr.mean[seen, :4], 0.5 * (boxes[high, :2] + boxes[high, 2:]),
                                          cfg.ego_motion_significance, self._ego_scatter)
        if estimate.scatter is not None:
            prior = self._ego_scatter
            self._ego_scatter = estimate.scatter if prior is None else \
                (1.0 - _SCATTER_RATE) * prior + _SCATTER_RATE * estimate.scatter
        dx, dy = estimate.shift.tolist()
        if dx == 0.0 and dy == 0.0:
            return False
        tr.mean[:, :2] += estimate.shift
        return True

    def _register_classes(self, class_id: np.ndarray) -> None:
        if class_id.size == 0:
            return
        if self._classes.size == 1 and (class_id == self._classes[0]).all():
            return
        if self._classes.size:
            pos = np.minimum(np.searchsorted(self._classes, class_id), self._classes.size - 1)
            if (self._classes[pos] == class_id).all():
                return
        merged = np.union1d(self._classes, class_id)  # sorted, so searchsorted maps ids to vote columns
        self._tracks.remap_class_columns(np.searchsorted(merged, self._classes), merged.size)
        self._classes = merged

    def _expire_lost(self, now: float) -> np.ndarray:
        """Drop lost tracks older than the buffer; returns their IDs."""
        tr = self._tracks
        if len(tr) == 0:
            return np.zeros(0, np.int64)
        gone = (tr.state == _LOST) & (now - tr.last_time > self.config.lost_track_buffer_seconds)
        if not gone.any():
            return np.zeros(0, np.int64)
        ids: np.ndarray = tr.track_id[gone]
        self._tracks = tr.take(np.flatnonzero(~gone))
        return ids

    def _predict(self, dt: float) -> None:
        tr = self._tracks
        if len(tr) == 0:
            return
        mean = tr.mean
        lost = tr.state == _LOST
        if lost.any():  # size changes are not extrapolated through occlusions
            mean = mean.copy()
            mean[lost, 6:8] = 0.0
        cfg = self.config
        # every covariance here keeps its coordinates independent (made by initiate, kept by predict/update,
        # checked on load), so the blockwise form is used without re-checking it every frame
        tr.mean, blocks = kalman.predict_blocks(mean, kalman.block_view(tr.cov), dt, cfg.position_noise,
                                                cfg.velocity_noise)
        tr.cov = kalman.from_blocks(blocks)
        np.maximum(tr.mean[:, 2:4], 1.0, out=tr.mean[:, 2:4])

    # ------------------------------------------------------------- association
    def _associate(self, boxes: np.ndarray, conf: np.ndarray, class_id: np.ndarray, high: np.ndarray,
                   low: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """All matching stages; returns (track rows, detection rows) of the matches."""
        cfg = self.config
        tr = self._tracks
        if len(tr) == 0 or (high.size == 0 and low.size == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pred = kalman.state_to_xyxy(tr.mean)
        track_class = tr.class_id if cfg.per_class_matching else None
        free_det = np.ones(boxes.shape[0], bool)
        free_trk = np.ones(len(tr), bool)
        rows: list[np.ndarray] = [np.zeros(0, np.int64)]
        cols: list[np.ndarray] = [np.zeros(0, np.int64)]

        def stage(trk: np.ndarray, det: np.ndarray, ia: np.ndarray, ib: np.ndarray, score: np.ndarray,
                  ok: np.ndarray) -> None:
            if cfg.minimum_height_ratio > 0 and ia.size:
                ok = ok & (_height_ratio(pred[trk[ia]], boxes[det[ib]]) >= cfg.minimum_height_ratio)
            ia, ib, score = ia[ok], ib[ok], score[ok]
            if track_class is not None:
                same = track_class[trk[ia]] == class_id[det[ib]]
                ia, ib, score = ia[same], ib[same], score[same]
            r, c = assign(trk.size, det.size, ia, ib, score)
            rows.append(trk[r])
            cols.append(det[c])
            free_trk[trk[r]] = False
            free_det[det[c]] = False

        def overlaps(trk: np.ndarray, det: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, ...]:
            ia, ib = candidate_pairs(a[trk], boxes[det])
            return ia, ib, pair_iou(a[trk[ia]], boxes[det[ib]])

        active = (tr.state == _CONFIRMED) | (tr.state == _LOST)
        trk, det = np.flatnonzero(active), high
        if trk.size and det.size:
            ia, ib, ov = overlaps(trk, det, pred)
            score = ov * conf[det[ib]] if cfg.fuse_confidence else ov.copy()
            if cfg.direction_consistency_weight > 0 and ia.size:
                origin, direction, has = self._direction(trk[ia])
                centres = 0.5 * (boxes[det[ib], :2] + boxes[det[ib], 2:])
                score += cfg.direction_consistency_weight * conf[det[ib]] * pair_direction(
                    origin, direction, has, centres)
            # a track seen in the previous frame is a surer match than a lost track's extrapolation; a lost
            # track's size is frozen, so a detection of another height is more likely someone else
            lost = tr.state[trk[ia]] == _LOST
            if lost.any():
                ratio = _height_ratio(pred[trk[ia[lost]]], boxes[det[ib[lost]]])
                score[lost] *= cfg.lost_track_score_weight * ratio
            stage(trk, det, ia, ib, score, ov >= cfg.minimum_iou)

        trk, det = np.flatnonzero((tr.state == _CONFIRMED) & free_trk), low
        if trk.size and det.size:
            ia, ib, ov = overlaps(trk, det, pred)
            stage(trk, det, ia, ib, ov, ov >= cfg.low_confidence_minimum_iou)

        trk, det = np.flatnonzero(tr.state == _TENTATIVE), high[free_det[high]]
        if trk.size and det.size:
            ia, ib, ov = overlaps(trk, det, pred)
            score = ov * conf[det[ib]] if cfg.fuse_confidence else ov
            stage(trk, det, ia, ib, score, ov >= cfg.tentative_minimum_iou)

        trk, det = np.flatnonzero((tr.state == _CONFIRMED) & free_trk), high[free_det[high]]
        if trk.size and det.size:
            # how far each track moves per frame, in its own box sizes: fast movers may skip past their
            # predicted box, so their gate widens (GIoU goes negative with the gap between boxes)
            step = np.hypot(tr.mean[trk, 4] / tr.mean[trk, 2], tr.mean[trk, 5] / tr.mean[trk, 3]) * dt
            gate = cfg.recovery_minimum_giou - np.minimum(step, _MAX_GATE_WIDENING)
            lowest = float(gate.min())
            ia, ib = candidate_pairs(pred[trk], boxes[det], max(-lowest, 0.0) / max(1.0 + lowest, 1e-3))
            similarity = pair_giou(pred[trk[ia]], boxes[det[ib]])
            stage(trk, det, ia, ib, similarity, similarity >= gate[ia])

        return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)

    def _direction(self, trk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per track row: earliest kept observed centre (P, 2), unit motion direction since (P, 2), valid."""
        tr = self._tracks
        count = tr.history_len[trk]
        oldest = tr.history[trk, np.maximum(self._history_length - count, 0)]
        move = tr.history[trk, -1] - oldest
        norm = np.sqrt((move * move).sum(axis=1))
        has = (count >= 2) & (norm > 1e-6)
        return oldest, move / np.maximum(norm, 1e-6)[:, None], has

    # --------------------------------------------------------------- lifecycle
    def _apply_matches(self, mt: np.ndarray, md: np.ndarray, boxes: np.ndarray, class_id: np.ndarray,
                       now: float) -> None:
        if mt.size == 0:
            return
        tr, cfg = self._tracks, self.config
        z = kalman.xyxy_to_measurement(boxes[md])
        mean, blocks = kalman.update_blocks(tr.mean[mt], kalman.block_view(tr.cov[mt]), z, cfg.measurement_noise)
        cov = kalman.from_blocks(blocks)
        if cfg.observation_centric_reupdate:
            # worth it only after an occlusion of a few frames: one missed frame changes next to nothing
            gap = now - tr.last_time[mt]
            long_gap = gap > (_MIN_REUPDATE_STEPS - 0.5) * self._frame_interval
            back = np.flatnonzero((tr.state[mt] == _LOST) & long_gap)
            if back.size:
                mean[back], cov[back] = self._reupdate(mt[back], z[back], now)
        tr.mean[mt], tr.cov[mt] = mean, cov
        tr.obs_mean[mt], tr.obs_cov[mt] = mean, cov
        tr.last_box[mt] = boxes[md]
        tr.history[mt, :-1] = tr.history[mt, 1:]
        tr.history[mt, -1] = z[:, :2]
        tr.history_len[mt] = np.minimum(tr.history_len[mt] + 1, self._history_length)
        tr.last_time[mt] = now
        tr.hits[mt] += 1
        confirmed_now = (tr.state[mt] == _TENTATIVE) & (tr.hits[mt] >= cfg.confirmation_hits)
        promote = (tr.state[mt] == _LOST) | confirmed_now
        tr.state[mt[promote]] = _CONFIRMED
        if class_id.size and self._classes.size == 1:  # one class seen so far: nothing can switch
            tr.votes[mt, 0] += 1.0
        elif class_id.size:
            tr.votes[mt, np.searchsorted(self._classes, class_id[md])] += 1.0
            votes = tr.votes[mt]
            best = votes.argmax(axis=1)
            current = votes[np.arange(mt.size), np.searchsorted(self._classes, tr.class_id[mt])]
            switch = votes[np.arange(mt.size), best] > current  # a tie keeps the class: no flicker
            tr.class_id[mt[switch]] = self._classes[best[switch]]

    def _reupdate(self, rows: np.ndarray, z_new: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Re-run the filter of recovered tracks from their last observation to ``z_new`` (OC-SORT ORU)."""
        tr, cfg = self._tracks, self.config
        gap = np.maximum(now - tr.last_time[rows], 1e-9)
        steps = np.clip(np.rint(gap / self._frame_interval), 1, _MAX_REUPDATE_STEPS).astype(np.int64)
        # longest re-run first: the tracks still stepping at step s are then a prefix, worked on as views
        order = np.argsort(-steps, kind="stable")
        rows, z_new, gap, steps = rows[order], z_new[order], gap[order], steps[order]
        z_old = kalman.xyxy_to_measurement(tr.last_box[rows])
        mean, cov = tr.obs_mean[rows], tr.obs_cov[rows]
        blocks = kalman.to_blocks(cov)
        step_dt = (gap / steps)[:, None] if blocks is not None else gap / steps
        dz = z_new - z_old
        active = np.searchsorted(-steps, -np.arange(1, int(steps[0]) + 1), side="right")  # tracks at step s
        for s, n in enumerate(active, start=1):
            z = z_old[:n] + (s / steps[:n])[:, None] * dz[:n]
            if blocks is not None:  # usual case: stay in the 3-numbers-per-coordinate form for every step
                sub = (blocks[0][:n], blocks[1][:n], blocks[2][:n])
                m, sub = kalman.predict_blocks(mean[:n], sub, step_dt[:n, 0], cfg.position_noise,
                                               cfg.velocity_noise)
                mean[:n], sub = kalman.update_blocks(m, sub, z, cfg.measurement_noise)
                for full, part in zip(blocks, sub):
                    full[:n] = part
            else:
                m, c = kalman.predict(mean[:n], cov[:n], step_dt[:n], cfg.position_noise, cfg.velocity_noise)
                mean[:n], cov[:n] = kalman.update(m, c, z, cfg.measurement_noise)
        if blocks is not None:
            cov = kalman.from_blocks(blocks)
        back = np.argsort(order)
        return mean[back], cov[back]

    def _start_tracks(self, boxes: np.ndarray, conf: np.ndarray, class_id: np.ndarray, high: np.ndarray,
                      md: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Create tracks for unmatched confident detections.

        Returns (track rows, detection rows) of the new tracks that are reported at once
        (``confirmation_hits`` of 1); both empty otherwise.
        """
        cfg = self.config
        free = np.ones(boxes.shape[0], bool)
        free[md] = False
        det = high[free[high] & (conf[high] >= cfg.new_track_confidence_threshold)]
        none = np.zeros(0, np.int64)
        if det.size == 0:
            return none, none
        n, start = det.size, len(self._tracks)
        z = kalman.xyxy_to_measurement(boxes[det])
        mean, cov = kalman.initiate(z, cfg.measurement_noise, cfg.velocity_noise)
        history = np.zeros((n, self._history_length, 2))
        history[:, -1] = z[:, :2]
        votes = np.zeros((n, self._classes.size))
        votes[np.arange(n), np.searchsorted(self._classes, class_id[det])] = 1.0
        state = _CONFIRMED if cfg.confirmation_hits <= 1 else _TENTATIVE
        new = TrackArrays(
            track_id=np.arange(self._next_id, self._next_id + n, dtype=np.int64),
            state=np.full(n, state, np.int64), hits=np.ones(n, np.int64), mean=mean, cov=cov,
            obs_mean=mean.copy(), obs_cov=cov.copy(), last_box=boxes[det].copy(), history=history,
            history_len=np.ones(n, np.int64), first_time=np.full(n, now), last_time=np.full(n, now),
            votes=votes, class_id=class_id[det].astype(np.int64))
        self._next_id += n
        self._tracks = self._tracks.extend(new)
        if state != _CONFIRMED:
            return none, none
        return np.arange(start, start + n, dtype=np.int64), det

    def _miss(self, unmatched: np.ndarray, now: float) -> np.ndarray:
        """Book-keeping for tracks not matched this frame; returns a removal mask over all tracks."""
        tr = self._tracks
        unmatched = np.concatenate([unmatched, np.zeros(len(tr) - unmatched.size, bool)])
        tr.hits[unmatched] = 0
        tr.state[unmatched & (tr.state == _CONFIRMED)] = _LOST
        expired: np.ndarray = unmatched & (tr.state == _TENTATIVE) & \
            (now - tr.last_time > self.config.tentative_max_gap_seconds)
        return expired

    def _output(self, detections: Detections, rows: np.ndarray, det_rows: np.ndarray, now: float,
                removed: np.ndarray) -> Tracks:
        tr, cfg = self._tracks, self.config
        confirmed = tr.state[rows] == _CONFIRMED
        rows, det_rows = rows[confirmed], det_rows[confirmed]
        coast = coasting_rows(tr.state, tr.first_time, tr.last_time, now, _LOST, cfg.output_unmatched_seconds)
        every = rows if coast.size == 0 else np.concatenate([rows, coast])
        return build_tracks(
            detections, det_rows, tr.mean[rows], tr.mean[coast], tr.track_id[every], tr.class_id[every],
            now - tr.first_time[every], tr.state[every],
            kalman.centre_path(tr.mean[every], cfg.path_horizon_seconds, cfg.path_points), removed)

    # ---------------------------------------------------------------- snapshot
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this tracker in another process; ``json.dumps`` accepts it."""
        return {
            "format": _STATE_FORMAT,
            "next_id": self._next_id,
            "frame_count": self._frame_count,
            "clock": self._clock,
            "last_timestamp": self._last_timestamp,
            "frame_interval": self._frame_interval,
            "classes": self._classes.tolist(),
            "ego_scatter": None if self._ego_scatter is None else self._ego_scatter.tolist(),
            "tracks": self._tracks.to_json(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from ``state_dict()`` output (possibly after a JSON round trip). Raises ValueError."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError(f"tracker state: not a {_STATE_FORMAT} snapshot")
        try:
            classes = np.asarray(state["classes"], dtype=np.int64).reshape(-1)
            tracks = TrackArrays.from_json(state["tracks"], self._history_length, classes.size)
            last = state["last_timestamp"]
            scalars = (int(state["next_id"]), int(state["frame_count"]), float(state["clock"]),
                       None if last is None else float(last), float(state["frame_interval"]))
            scatter = state.get("ego_scatter")  # absent in snapshots written before it existed
            ego_scatter = None if scatter is None else np.asarray(scatter, dtype=np.float64).reshape(2)
        except KeyError as exc:
            raise ValueError(f"tracker state: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"tracker state: {exc}") from None
        if not kalman.has_block_form(tracks.cov) or not kalman.has_block_form(tracks.obs_cov):
            raise ValueError("tracker state: covariances must keep box coordinates independent")
        self._classes, self._tracks = classes, tracks  # only now: a bad snapshot leaves the tracker as it was
        (self._next_id, self._frame_count, self._clock, self._last_timestamp, self._frame_interval) = scalars
        self._ego_scatter = ego_scatter

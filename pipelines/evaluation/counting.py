"""Counting accuracy: line crossings of each tracker's output against those of the ground-truth trajectories.

Lines per sequence (``--count-lines``):

* ``auto``: four lines from the sequence's image size (``seqinfo.ini``), the same for every run: ``vertical``
  (the vertical centre line, top to bottom), ``horizontal`` (the horizontal centre line, left to right), and
  two seeded diagonals (``AUTO_SEED``): ``diagonal-lr`` from the left border to the right border and
  ``diagonal-tb`` from the top border to the bottom border, each end at a fraction of the border drawn
  uniformly from [0.1, 0.9];
* a YAML file: ``SEQ: [{name: door, points: [[x, y], [x, y]]}, ...]``, with ``"*"`` for every sequence not
  named.

Crossings are counted with trackstream's own counting rule, the ``LineCounter`` of ``trackstream run``
(``pipelines/processing/zones.py``: bottom-centre anchor, ``min_frames_on_side`` 2, a 2 px dead band, the
segment must be passed) on the ground-truth people (``read_gt_people``: the rows TrackEval scores, flag 1
and class pedestrian) and on every tracker's reported rows. Supervision's ``LineZone`` rule (bottom-centre
anchor, its other settings at their defaults) is applied to the same tracks as ``<tracker>+linezone``.

A reported crossing is *matched* to a ground-truth crossing of the same line and direction made within
``MATCH_SECONDS`` of it whose crossing point lies within one ground-truth box height of it (by position and
time, not by ids; one-to-one, Hungarian on ``|dt| / MATCH_SECONDS + distance / height``). Precision is
matched / reported, recall matched / true, and the count error reported - true, per line and direction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import UserError
from pipelines.processing.zones import EventsConfig, LineConfig, LineCounter, anchor_points
from tracker.configutil import ConfigError

AUTO = "auto"
AUTO_SEED = 27
MATCH_SECONDS = 1.0
LINEZONE = "+linezone"
DIRECTIONS = ((1, "left_to_right"), (-1, "right_to_left"))


def percent(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole`` (NaN when ``whole`` is 0: a precision or recall of nothing)."""
    return 100.0 * part / whole if whole else float("nan")


@dataclass(frozen=True)
class Crossing:
    """One counted crossing: line name, sign (+1 left_to_right), frame, track id, anchor point, box height."""

    line: str
    sign: int
    frame: int
    track: int
    point: tuple[float, float]
    height: float


@dataclass(frozen=True)
class LineScore:
    """One line and direction of one sequence: ground-truth crossings, reported ones, and matched pairs."""

    line: str
    direction: str
    true: int
    found: int
    matched: int

    @property
    def error(self) -> int:
        return self.found - self.true

    @property
    def precision(self) -> float:
        return percent(self.matched, self.found)

    @property
    def recall(self) -> float:
        return percent(self.matched, self.true)

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "direction": self.direction, "true": self.true, "found": self.found,
                "matched": self.matched, "error": self.error,
                "precision": None if not self.found else round(self.precision, 2),
                "recall": None if not self.true else round(self.recall, 2)}


def auto_lines(width: int, height: int) -> tuple[LineConfig, ...]:
    """The ``auto`` lines of a ``width`` x ``height`` image (see the module docstring)."""
    w, h = float(width), float(height)
    u = np.random.default_rng(AUTO_SEED).uniform(0.1, 0.9, 4)
    return (LineConfig("vertical", ((w / 2, 0.0), (w / 2, h))),
            LineConfig("horizontal", ((0.0, h / 2), (w, h / 2))),
            LineConfig("diagonal-lr", ((0.0, round(u[0] * h, 1)), (w, round(u[1] * h, 1)))),
            LineConfig("diagonal-tb", ((round(u[2] * w, 1), 0.0), (round(u[3] * w, 1), h))))


class LineSets:
    """Where the counting lines of each sequence come from: ``auto`` or a YAML file (module docstring)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._by_seq: dict[str, tuple[LineConfig, ...]] = {}
        if spec != AUTO:
            self._by_seq = _read_line_file(Path(spec))

    def lines(self, seq: str, width: int | None, height: int | None) -> tuple[LineConfig, ...]:
        if self.spec == AUTO:
            if not width or not height:
                raise UserError(f"--count-lines auto: {seq}/seqinfo.ini has no imWidth/imHeight")
            return auto_lines(width, height)
        found = self._by_seq.get(seq, self._by_seq.get("*"))
        if found is None:
            raise UserError(f"--count-lines {self.spec}: no lines for {seq} (add {seq}: or \"*\":)")
        return found


def _read_line_file(path: Path) -> dict[str, tuple[LineConfig, ...]]:
    import yaml

    if path.is_dir():
        raise UserError(f"--count-lines: {path} is a folder (give a YAML file of lines per sequence, or auto)")
    if not path.is_file():
        raise UserError(f"--count-lines: {path} not found (give a YAML file of lines per sequence, or auto)")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:   # not UTF-8 text: one line too
        raise UserError(f"{path}: cannot read YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected a mapping of sequence name -> list of lines")
    out: dict[str, tuple[LineConfig, ...]] = {}
    for seq, items in data.items():
        if not isinstance(items, list) or not items:
            raise UserError(f"{path}: {seq}: expected a list of lines ({{name, points: [[x, y], [x, y]]}})")
        lines = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or set(item) - {"name", "points"} or "points" not in item:
                raise UserError(f"{path}: {seq}[{i}]: a line is {{name: NAME, points: [[x, y], [x, y]]}}")
            try:
                pts = tuple(tuple(float(v) for v in p) for p in item["points"])
                lines.append(LineConfig(str(item.get("name", f"line{i + 1}")), pts))
            except ConfigError as exc:
                raise UserError(f"{path}: {seq}[{i}]: {exc}") from None
            except (TypeError, ValueError):
                raise UserError(f"{path}: {seq}[{i}].points: expected [[x, y], [x, y]] numbers") from None
        if len({ln.name for ln in lines}) != len(lines):
            raise UserError(f"{path}: {seq}: two lines share a name")
        out[str(seq)] = tuple(lines)
    return out


def _by_frame(rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(frame, rows of that frame) in frame order, from (N, >=6) ``frame, id, x, y, w, h`` rows."""
    if len(rows) == 0:
        return []
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    cuts = np.flatnonzero(np.diff(rows[:, 0])) + 1
    return [(int(g[0, 0]), g) for g in np.split(rows, cuts)]


def _xyxy(group: np.ndarray) -> np.ndarray:
    return np.concatenate([group[:, 2:4], group[:, 2:4] + group[:, 4:6]], axis=1)


def count_crossings(rows: np.ndarray, lines: Sequence[LineConfig],
                    config: EventsConfig = EventsConfig()) -> list[Crossing]:
    """Crossings of ``lines`` by the tracks in (N, >=6) MOT rows ``frame, id, x, y, w, h``, by the counting
    rule of ``trackstream run`` (``LineCounter`` with ``config``'s hysteresis, dead band and anchor)."""
    counters = [LineCounter(ln, config.min_frames_on_side, config.line_dead_band) for ln in lines]
    out: list[Crossing] = []
    for frame, group in _by_frame(np.asarray(rows, np.float64)):
        ids = [int(i) for i in group[:, 1].tolist()]
        anchors = anchor_points(_xyxy(group), config.anchor)
        height = dict(zip(ids, group[:, 5].tolist()))
        for counter in counters:
            for tid, sign, pt in counter.update(ids, anchors):
                out.append(Crossing(counter.name, sign, frame, tid, (pt[0], pt[1]), float(height[tid])))
    return out


def require_supervision() -> None:
    """A clear error when supervision (for its LineZone rule) is not installed."""
    try:
        import supervision  # noqa: F401
    except ImportError:
        raise UserError("--count-lines scores supervision's LineZone rule too: pip install supervision "
                        "(or trackstream[eval])") from None


def linezone_crossings(rows: np.ndarray, lines: Sequence[LineConfig]) -> list[Crossing]:
    """Crossings by supervision's ``LineZone`` rule (bottom-centre anchor) on the same MOT rows.

    LineZone's ``out`` is our ``left_to_right`` (+1) and its ``in`` our ``right_to_left`` (-1), for the same
    two points (checked by ``tests/test_eval_counting.py`` on walkers both rules count).
    """
    require_supervision()
    import supervision as sv

    zones = [sv.LineZone(sv.Point(*ln.points[0]), sv.Point(*ln.points[1]),
                         triggering_anchors=[sv.Position.BOTTOM_CENTER]) for ln in lines]
    out: list[Crossing] = []
    for frame, group in _by_frame(np.asarray(rows, np.float64)):
        xyxy = _xyxy(group)
        dets = sv.Detections(xyxy=xyxy, tracker_id=group[:, 1].astype(int))
        anchors = anchor_points(xyxy, "bottom_center")
        for ln, zone in zip(lines, zones):
            crossed_in, crossed_out = zone.trigger(dets)
            for i in np.flatnonzero(crossed_in | crossed_out).tolist():
                x, y = anchors[i]
                out.append(Crossing(ln.name, 1 if crossed_out[i] else -1, frame, int(group[i, 1]),
                                    (round(float(x), 2), round(float(y), 2)), float(group[i, 5])))
    return out


def _matched(truth: Sequence[Crossing], found: Sequence[Crossing], rate: float) -> int:
    if not truth or not found:
        return 0
    from scipy.optimize import linear_sum_assignment

    t_frames = np.array([c.frame for c in truth], float)
    f_frames = np.array([c.frame for c in found], float)
    dt = np.abs(t_frames[:, None] - f_frames[None]) / rate / MATCH_SECONDS
    tp = np.array([c.point for c in truth])
    fp = np.array([c.point for c in found])
    heights = np.maximum(np.array([c.height for c in truth]), 1.0)
    dist = np.hypot(*(tp[:, None, :] - fp[None]).transpose(2, 0, 1)) / heights[:, None]
    ok = (dt <= 1.0) & (dist <= 1.0)
    cost = np.where(ok, dt + dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return int(ok[rows, cols].sum())


def score_lines(truth: Sequence[Crossing], found: Sequence[Crossing], lines: Sequence[LineConfig],
                rate: float) -> list[LineScore]:
    """Per line and direction: true and reported counts and the matched crossings (module docstring)."""
    out = []
    for ln in lines:
        for sign, direction in DIRECTIONS:
            t = [c for c in truth if c.line == ln.name and c.sign == sign]
            f = [c for c in found if c.line == ln.name and c.sign == sign]
            out.append(LineScore(ln.name, direction, len(t), len(f), _matched(t, f, rate)))
    return out


def count_metrics(scores: Sequence[LineScore]) -> dict[str, float]:
    """One sequence's summary: ``CountErr`` total absolute count error / true crossings (%), ``CountP`` /
    ``CountR`` pooled crossing precision / recall (%), ``CountTrue`` the true crossings. With no true
    crossings ``CountErr`` is NaN (the table's ``-``): there is nothing to be off by a share of, and the fold
    means and ``--select-by CountErr`` leave such a sequence out, as the table's mean does."""
    true = sum(s.true for s in scores)
    found = sum(s.found for s in scores)
    matched = sum(s.matched for s in scores)
    return {"CountErr": percent(sum(abs(s.error) for s in scores), true),
            "CountP": percent(matched, found),
            "CountR": percent(matched, true),
            "CountTrue": float(true)}


def score_sequence(gt_rows: np.ndarray, tracked: Mapping[str, np.ndarray], lines: Sequence[LineConfig],
                   rate: float, linezone: bool = True) -> dict[str, list[LineScore]]:
    """Scores of every tracker label (our rule) and ``label+linezone`` (supervision's) on one sequence."""
    truth = count_crossings(gt_rows, lines)
    out: dict[str, list[LineScore]] = {}
    for label, rows in tracked.items():
        out[label] = score_lines(truth, count_crossings(rows, lines), lines, rate)
        if linezone:
            out[label + LINEZONE] = score_lines(truth, linezone_crossings(rows, lines), lines, rate)
    return out

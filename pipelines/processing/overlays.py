"""Draw tracks on frames: boxes, labels, trails, predicted paths, masks and pose skeletons.

Only OpenCV primitives and its built-in Hershey fonts are used (no font files). ``Annotator.draw``
returns a new BGR image and never modifies the frame it is given. Each element can be switched off
with ``OverlayConfig`` (the ``overlay:`` section of the YAML config).

Drawing order, bottom to top: the heatmap (``overlay.heatmap``), zones and lines, masks, trails, predicted paths,
boxes, keypoints, labels. Every element of one track uses the track's colour (``id_color``), so a track keeps its
colour for its whole life.
"""

from __future__ import annotations

import colorsys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import numpy.typing as npt

from pipelines.frames import Counts, FrameResult, GroundMotion, HeatSnapshot
from pipelines.processing.heatmap import apply, layer
from pipelines.processing.zones import LineConfig, ZoneConfig
from tracker.configutil import check_bounds
from tracker.types import Tracks

Color = Tuple[int, int, int]
Image = npt.NDArray[np.uint8]

# COCO 17-keypoint skeleton (0-based): legs, hips, torso, arms, head.
COCO_SKELETON: Tuple[Tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
MIN_KEYPOINT_VISIBILITY = 0.5
MAX_TRAIL_POINTS = 1024  # hard cap per track, in case PTS stop advancing
TRAIL_VERTICES = 16  # a drawn trail is thinned to this many points
_COORD_LIMIT = 1 << 20  # OpenCV wants int32 coordinates; far-off points are clipped to this
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayConfig:
    """Which elements the annotated video shows (config section ``overlay``).

    Attributes:
        boxes: rectangle around each track (dashed and thinner where the box is the tracker's prediction:
            no detection this frame).
        labels: ``#id class confidence`` tag above each box.
        trails: polyline through each track's recent centres.
        trail_seconds: how much history the trail shows, in seconds of video time (PTS).
        predicted_path: dots along ``Tracks.predicted_path``.
        masks: translucent fill of segmentation masks (``masks`` arrays, else ``mask_polygons``).
        mask_alpha: opacity of the mask fill, 0 (invisible) to 1 (opaque).
        keypoints: pose skeleton (COCO 17 points); points with visibility < 0.5 are skipped.
        zones: zone outlines and counting lines of the source, with their live counts.
        heatmap: the source's heatmap under everything else (switches the source's ``heatmap`` on).
        heatmap_alpha: opacity of the heatmap's hottest places, 0 to 1 (cold places stay clear).
        line_width: thickness of boxes, trails and skeleton lines in pixels.
    """

    boxes: bool = True
    labels: bool = True
    trails: bool = True
    trail_seconds: float = field(default=2.0, metadata={"min": 0.0})
    predicted_path: bool = True
    masks: bool = True
    mask_alpha: float = field(default=0.4, metadata={"min": 0.0, "max": 1.0})
    keypoints: bool = True
    zones: bool = True
    heatmap: bool = False
    heatmap_alpha: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    line_width: int = field(default=2, metadata={"min": 1, "max": 16})

    def __post_init__(self) -> None:
        check_bounds(self)  # also when built directly, not only through from_mapping


def id_color(track_id: int) -> Color:
    """Stable BGR colour of a track id: hues spaced by the golden ratio, so neighbouring ids differ."""
    hue = (int(track_id) * 0.6180339887498949) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(round(b * 255)), int(round(g * 255)), int(round(r * 255))


def _text_color(bg: Color) -> Color:
    b, g, r = bg
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def _ints(points: np.ndarray) -> npt.NDArray[np.int32]:
    ints: npt.NDArray[np.int32] = np.clip(np.rint(points), -_COORD_LIMIT, _COORD_LIMIT).astype(np.int32)
    return ints


class Trails:
    """Each track's recent centres, for drawing trails (owned by the per-camera processor).

    Bounded: a track's points older than ``seconds`` (by PTS) are dropped, a track not seen for longer
    than that is forgotten, ended tracks (``Tracks.removed_ids``) are forgotten at once, and PTS going
    backwards (a restarted stream) clears every trail.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._trails: Dict[int, Deque[Tuple[float, float, float]]] = {}
        self._last_pts: Optional[float] = None

    @property
    def ids(self) -> Tuple[int, ...]:
        """Ids whose trail is currently remembered."""
        return tuple(self._trails)

    def reset(self) -> None:
        """Forget every trail (e.g. when a new stream starts)."""
        self._trails.clear()
        self._last_pts = None

    def update(self, tracks: Tracks, pts: float) -> None:
        """Add this frame's box centres (``pts`` seconds) and drop what is too old."""
        if self._last_pts is not None and pts < self._last_pts:
            self._trails.clear()
        self._last_pts = pts
        for tid in tracks.removed_ids.tolist():
            self._trails.pop(int(tid), None)
        centres = (tracks.xyxy[:, :2] + tracks.xyxy[:, 2:]) * 0.5
        for tid, (cx, cy) in zip(tracks.track_id.tolist(), centres.tolist()):
            trail = self._trails.get(tid)
            if trail is None:
                trail = self._trails[tid] = deque(maxlen=MAX_TRAIL_POINTS)
            trail.append((pts, cx, cy))
        oldest = pts - self.seconds
        for tid in list(self._trails):
            trail = self._trails[tid]
            while trail and trail[0][0] < oldest:
                trail.popleft()
            if not trail:
                del self._trails[tid]

    def points(self, track_ids: Sequence[int]) -> Dict[int, npt.NDArray[np.float64]]:
        """The drawable trail of each of ``track_ids`` that has one: (P, 2) centres, oldest first, thinned
        to at most ``TRAIL_VERTICES`` evenly spaced samples (the newest always kept); a new array each."""
        out: Dict[int, npt.NDArray[np.float64]] = {}
        for tid in track_ids:
            trail = self._trails.get(int(tid))
            if trail is None or len(trail) < 2:
                continue
            points = np.asarray(trail, np.float64)[:, 1:]
            if len(points) > TRAIL_VERTICES:
                points = points[np.linspace(0, len(points) - 1, TRAIL_VERTICES).round().astype(np.int64)]
            out[int(tid)] = points
        return out

    def state_dict(self) -> Dict[str, Any]:
        """JSON-safe copy: ``{"last_pts": s, "trails": [[id, [[pts, x, y], ...]], ...]}``."""
        return {"last_pts": self._last_pts,
                "trails": [[tid, [list(p) for p in trail]] for tid, trail in self._trails.items()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        trails = {int(tid): deque(((float(t), float(x), float(y)) for t, x, y in pts), maxlen=MAX_TRAIL_POINTS)
                  for tid, pts in state["trails"]}
        last = state["last_pts"]
        self._trails, self._last_pts = trails, None if last is None else float(last)


class Annotator:
    """Draws ``FrameResult``s of one source.

    Trails come with the result (``FrameResult.trails``, kept by the per-camera processor); a result
    without them (drawn outside a pipeline) uses the annotator's own ``Trails``. Zones and lines given
    here are drawn with the counts the result carries (``FrameResult.counts``).
    """

    def __init__(self, config: Optional[OverlayConfig] = None, zones: Sequence[ZoneConfig] = (),
                 lines: Sequence[LineConfig] = ()) -> None:
        self.config = config or OverlayConfig()
        self._trails = Trails(self.config.trail_seconds)
        self._zones = tuple(zones)
        self._lines = tuple(lines)
        self._heat: Optional[Tuple[HeatSnapshot, Tuple[int, int], Any]] = None   # (heat, size, layer) last coloured

    @property
    def trail_ids(self) -> Tuple[int, ...]:
        """Ids whose trail is currently remembered (by the annotator's own ``Trails``)."""
        return self._trails.ids

    def reset(self) -> None:
        """Forget every trail (e.g. when a new stream starts)."""
        self._trails.reset()

    def draw(self, result: FrameResult) -> Image:
        """A new uint8 (H, W, 3) BGR image: ``result.frame.image`` with the enabled overlays drawn."""
        cfg = self.config
        image = np.array(result.frame.image, dtype=np.uint8, copy=True, order="C")
        tracks = result.tracks
        show_trails = cfg.trails and cfg.trail_seconds > 0
        trails = result.trails
        if show_trails and trails is None:
            self._trails.update(tracks, float(result.frame.pts))
        if cfg.heatmap and result.heat is not None and cfg.heatmap_alpha > 0:
            image = self._heat_under(image, result.heat)
        if cfg.zones and (self._zones or self._lines):
            draw_zones_and_lines(image, self._zones, self._lines, result.counts, cfg.line_width)
        if len(tracks) == 0:
            return image
        colors = [id_color(int(t)) for t in tracks.track_id]
        lw = cfg.line_width
        if cfg.masks and cfg.mask_alpha > 0:
            _draw_masks(image, tracks, colors, cfg.mask_alpha)
        if show_trails:
            ids = tracks.track_id.tolist()
            _draw_trails(image, trails if trails is not None else self._trails.points(ids), ids, lw)
        if cfg.predicted_path:
            _draw_paths(image, tracks, colors, lw)
        if cfg.boxes:
            for box, color, seen in zip(_ints(tracks.xyxy), colors, tracks.matched.tolist()):
                if seen:
                    cv2.rectangle(image, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), color, lw,
                                  cv2.LINE_8)
                else:  # the tracker's prediction (no detection this frame): dashed and thinner
                    _dashed_box(image, box, color, max(1, lw // 2))
        if cfg.keypoints and tracks.keypoints is not None:
            _draw_keypoints(image, tracks.keypoints, colors, lw)
        if cfg.labels:
            speeds = result.measures.motion if result.measures is not None else {}   # calibrated: km/h
            _draw_labels(image, tracks, result.class_names, colors, lw, speeds)
        return image

    def _heat_under(self, image: Image, heat: HeatSnapshot) -> Image:
        """``image`` under the heatmap, coloured anew only when the processor hands a new copy of it (every
        ``heatmap.SNAPSHOT_SECONDS`` of video; colouring and enlarging the grid is most of the cost)."""
        size = (image.shape[1], image.shape[0])
        held = self._heat
        if held is None or held[0] is not heat or held[1] != size:
            held = self._heat = (heat, size, layer(heat.total, size, self.config.heatmap_alpha))
        return apply(image, held[2])


def _draw_trails(image: Image, trails: Mapping[int, np.ndarray], track_ids: Sequence[int], lw: int) -> None:
    """Polylines through each listed track's trail points (thick anti-aliased segments are costly in
    OpenCV, hence the thinning in ``Trails.points``). A track missing from a frame shows no trail there;
    its history is kept for ``trail_seconds`` so the trail comes back whole after a short occlusion."""
    for tid in track_ids:
        points = trails.get(int(tid))
        if points is not None and len(points) >= 2:
            cv2.polylines(image, [_ints(points)], False, id_color(int(tid)), lw, cv2.LINE_AA)


ZONE_COLOR: Color = (0, 215, 255)   # amber (BGR)
LINE_COLOR: Color = (255, 0, 255)   # magenta


def draw_zones_and_lines(image: Image, zones: Sequence[ZoneConfig], lines: Sequence[LineConfig],
                         counts: Optional[Counts], lw: int) -> None:
    """Zone outlines with ``name: N inside (E in)`` and counting lines with ``name: A > B <`` where A and B
    are the crossings left_to_right and right_to_left; without counts only the names are written."""
    for zone in zones:
        poly = _ints(np.asarray(zone.polygon, np.float64))
        cv2.polylines(image, [poly], True, ZONE_COLOR, lw, cv2.LINE_AA)
        c = counts.zones.get(zone.name) if counts is not None else None
        text = zone.name if c is None else f"{zone.name}: {c.occupancy} inside ({c.entries} in)"
        _tag(image, text, (int(poly[:, 0].min()), int(poly[:, 1].min())), ZONE_COLOR, lw)
    for line in lines:
        a, b = (tuple(int(v) for v in _ints(np.asarray(p, np.float64))) for p in line.points)
        cv2.arrowedLine(image, a, b, LINE_COLOR, lw, cv2.LINE_AA, tipLength=0.03)
        lc = counts.lines.get(line.name) if counts is not None else None
        text = line.name if lc is None else f"{line.name}: {lc.left_to_right} > {lc.right_to_left} <"
        _tag(image, text, (min(a[0], b[0]), min(a[1], b[1])), LINE_COLOR, lw)


def _tag(image: Image, text: str, corner: Tuple[int, int], color: Color, lw: int) -> None:
    """A filled tag with ``text`` just above ``corner`` (moved inside the frame when needed)."""
    scale, thickness = 0.35 + 0.1 * lw, max(1, lw // 2)
    text = text.encode("ascii", "replace").decode("ascii")
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    h, w = image.shape[:2]
    x = min(max(corner[0], 0), max(w - tw - 2, 0))
    top = min(max(corner[1] - th - base - 2, 0), max(h - th - base - 2, 0))
    cv2.rectangle(image, (x, top), (x + tw + 2, top + th + base + 2), color, -1, cv2.LINE_8)
    cv2.putText(image, text, (x + 1, top + th + 1), _FONT, scale, _text_color(color), thickness, cv2.LINE_AA)


def _clip_box(box: np.ndarray, w: int, h: int, margin: int) -> Optional[Tuple[int, int, int, int]]:
    x0 = max(int(np.floor(box[0])) - margin, 0)
    y0 = max(int(np.floor(box[1])) - margin, 0)
    x1 = min(int(np.ceil(box[2])) + margin + 1, w)
    y1 = min(int(np.ceil(box[3])) + margin + 1, h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _blend(roi: Image, cover: npt.NDArray[np.uint8], color: Color, alpha: float) -> None:
    """Tint ``roi`` (a view into the image) towards ``color`` with opacity ``alpha`` where ``cover`` != 0.

    ``v * (1 - alpha)`` then ``+ color * alpha`` as a scalar: the cheapest form found in OpenCV (a
    colour image or a lookup table cost 2-4x more); at most 1 level off the exact blend.
    """
    src = np.ascontiguousarray(roi)
    shade = (color[0] * alpha, color[1] * alpha, color[2] * alpha, 0.0)
    shade_arg: Any = shade  # OpenCV's stubs before 5.1 reject a scalar tuple here; 5.1's accept it
    tinted = cv2.add(cv2.addWeighted(src, 1.0 - alpha, src, 0.0, 0.0), shade_arg)
    roi[...] = cv2.copyTo(tinted, cover, src)


def _draw_masks(image: Image, tracks: Tracks, colors: Sequence[Color], alpha: float) -> None:
    """Blend each track's mask into ``image`` in place; only pixels under a mask change.

    ``masks`` arrays are used when they match the frame size (looked at within the track's box, grown by
    a few pixels); otherwise ``mask_polygons`` are filled. Work is limited to each track's box.
    """
    h, w = image.shape[:2]
    margin = 4
    if tracks.masks is not None and tracks.masks.shape[1:] == (h, w):
        for mask, box, color in zip(tracks.masks, tracks.xyxy, colors):
            region = _clip_box(box, w, h, margin)
            if region is not None:
                x0, y0, x1, y1 = region
                cover = mask[y0:y1, x0:x1]
                if cover.any():
                    _blend(image[y0:y1, x0:x1], cover.view(np.uint8), color, alpha)
        return
    for poly, color in zip(tracks.mask_polygons or (), colors):
        poly = np.asarray(poly, np.float64)
        if len(poly) < 3:
            continue
        region = _clip_box(np.concatenate([poly.min(axis=0), poly.max(axis=0)]), w, h, 1)
        if region is None:
            continue
        x0, y0, x1, y1 = region
        cover = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(cover, [_ints(poly - np.array([x0, y0]))], 1, cv2.LINE_8)
        if cover.any():
            _blend(image[y0:y1, x0:x1], cover, color, alpha)


def _dots(image: Image, points: npt.NDArray[np.int32], color: Color, radius: int,
          line_type: int = cv2.LINE_AA) -> None:
    """Filled round dots at (P, 2) ``points``, drawn in one OpenCV call (zero-length thick segments)."""
    if len(points):
        cv2.polylines(image, list(np.repeat(points[:, None, :], 2, axis=1)), False, color, 2 * radius,
                      line_type)


def _draw_paths(image: Image, tracks: Tracks, colors: Sequence[Color], lw: int) -> None:
    """Thin line from each box centre through its predicted centres, with a dot at each prediction."""
    path = tracks.predicted_path
    if path.ndim != 3 or path.shape[1] == 0:
        return
    centres = (tracks.xyxy[:, :2] + tracks.xyxy[:, 2:]) * 0.5
    lines = _ints(np.concatenate([centres[:, None, :], path], axis=1).astype(np.float64))
    for line, color in zip(lines, colors):
        cv2.polylines(image, [line], False, color, 1, cv2.LINE_AA)
        _dots(image, line[1:], color, max(1, lw))


_SKELETON = np.asarray(COCO_SKELETON, np.int64)


def _draw_keypoints(image: Image, keypoints: np.ndarray, colors: Sequence[Color], lw: int) -> None:
    """Skeleton lines between visible COCO points, then a dot on every visible point.

    Drawn without anti-aliasing: thick anti-aliased lines cost OpenCV about 4x more, which adds up with
    a crowd of skeletons (19 lines and 17 dots each).
    """
    xy = _ints(keypoints[..., :2].astype(np.float64))
    if keypoints.shape[2] >= 3:
        visible = keypoints[..., 2] >= MIN_KEYPOINT_VISIBILITY
    else:
        visible = np.ones(keypoints.shape[:2], bool)
    with_skeleton = keypoints.shape[1] == 17
    for pts, vis, color in zip(xy, visible, colors):
        if with_skeleton:
            edges = _SKELETON[vis[_SKELETON[:, 0]] & vis[_SKELETON[:, 1]]]
            if len(edges):
                cv2.polylines(image, list(pts[edges]), False, color, lw, cv2.LINE_8)
        _dots(image, pts[vis], color, max(2, lw + 1), cv2.LINE_8)


def _dashed_box(image: Image, box: npt.NDArray[np.int32], color: Color, lw: int, dash: int = 6) -> None:
    """A rectangle of ``dash``-pixel strokes with gaps of the same length (a predicted box)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, length + 1, 2 * dash):
            end = min(start + dash, length)
            p = (a[0] + (b[0] - a[0]) * start // max(length, 1), a[1] + (b[1] - a[1]) * start // max(length, 1))
            q = (a[0] + (b[0] - a[0]) * end // max(length, 1), a[1] + (b[1] - a[1]) * end // max(length, 1))
            cv2.line(image, p, q, color, lw, cv2.LINE_8)


def label_text(track_id: int, class_name: str, confidence: float, speed_kmh: Optional[float] = None, *,
               predicted: bool = False) -> str:
    """The text of a track's label, e.g. ``#3 person 0.87``, ``#3 person pred`` for a predicted box, or with a
    calibration ``#3 car 0.87 42 km/h`` (ASCII only: Hershey fonts)."""
    name = class_name.encode("ascii", "replace").decode("ascii")
    speed = "" if speed_kmh is None else f" {speed_kmh:.0f} km/h"
    return f"#{int(track_id)} {name} {'pred' if predicted else f'{float(confidence):.2f}'}{speed}"


def _draw_labels(image: Image, tracks: Tracks, class_names: Mapping[int, str], colors: Sequence[Color],
                 lw: int, speeds: Mapping[int, GroundMotion]) -> None:
    """A filled tag in the track's colour above each box (inside its top edge when there is no room),
    kept within the frame."""
    scale = 0.35 + 0.1 * lw
    thickness = max(1, lw // 2)
    h, w = image.shape[:2]
    for tid, cls, conf, box, color, seen in zip(tracks.track_id.tolist(), tracks.class_id.tolist(),
                                                tracks.confidence.tolist(), _ints(tracks.xyxy), colors,
                                                tracks.matched.tolist()):
        motion = speeds.get(tid)
        text = label_text(tid, str(class_names.get(cls, cls)), conf, None if motion is None else motion.speed_kmh,
                          predicted=not seen)
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
        tag_w, tag_h = tw + 2, th + base + 2
        x = min(max(int(box[0]), 0), max(w - tag_w, 0))
        top = int(box[1]) - tag_h
        if top < 0:
            top = max(min(int(box[1]), h - tag_h), 0)
        cv2.rectangle(image, (x, top), (x + tag_w, top + tag_h), color, -1, cv2.LINE_8)
        cv2.putText(image, text, (x + 1, top + th + 1), _FONT, scale, _text_color(color), thickness,
                    cv2.LINE_AA)

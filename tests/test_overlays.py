"""Overlays on real bikes.mp4 frames with hand-made tracks: what a viewer of the annotated video sees."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pytest

from pipelines.processing.overlays import Annotator, OverlayConfig, id_color
from tests.clips import decode_frames
from tests.synthetic_tracks import make_result, make_tracks
from tracker.configutil import ConfigError, from_mapping

LW = 2
VELOCITY = (60.0, 80.0)  # px/s: the predicted path runs down-right, away from the trail
ALL_ON = OverlayConfig(line_width=LW)
ALL_OFF = OverlayConfig(boxes=False, labels=False, trails=False, predicted_path=False, masks=False,
                        keypoints=False, line_width=LW)


@pytest.fixture(scope="module")
def frames(bikes_video) -> list[np.ndarray]:
    return decode_frames(bikes_video, 12)


def _history(frames: list[np.ndarray], *, keypoints: bool = True, masks: bool = False, step: float = 6.0):
    """Two tracks (ids 1 and 7) moving right ``step`` px per frame at 25 fps."""
    results = []
    for i, image in enumerate(frames):
        h, w = image.shape[:2]
        boxes = [[60 + i * step, 70, 140 + i * step, 210], [330 + i * step, 110, 400 + i * step, 200]]
        tracks = make_tracks([1, 7], boxes, class_ids=[0, 1], velocity=VELOCITY, keypoints=keypoints,
                             polygons=True, mask_size=(w, h) if masks else None)
        results.append(make_result(image, tracks, index=i))
    return results


def _draw_last(results, config: OverlayConfig) -> np.ndarray:
    annotator = Annotator(config)
    out = None
    for result in results:
        out = annotator.draw(result)
    assert out is not None
    return out


def _grow(x0: float, y0: float, x1: float, y1: float, by: float, shape) -> np.ndarray:
    region = np.zeros(shape[:2], bool)
    region[max(int(y0 - by), 0):int(y1 + by) + 1, max(int(x0 - by), 0):int(x1 + by) + 1] = True
    return region


def _box_edges(result, shape) -> np.ndarray:
    region = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in result.tracks.xyxy:
        inner = _grow(x1 + LW + 1, y1 + LW + 1, x2 - LW - 1, y2 - LW - 1, 0, shape)
        region |= _grow(x1, y1, x2, y2, LW, shape) & ~inner
    return region


def _label_band(result, shape) -> np.ndarray:
    region = np.zeros(shape[:2], bool)
    for x1, y1, _, _ in result.tracks.xyxy:
        region |= _grow(x1, y1 - 30, x1 + 200, y1, 1, shape)
    return region


def _trail_band(results, shape) -> np.ndarray:
    first, last = results[0].tracks.xyxy, results[-1].tracks.xyxy
    region = np.zeros(shape[:2], bool)
    for a, b in zip(first, last):
        cy = (a[1] + a[3]) / 2
        region |= _grow((a[0] + a[2]) / 2, cy, (b[0] + b[2]) / 2, cy, LW + 1, shape)
    return region


def _path_area(result, shape) -> np.ndarray:
    region = np.zeros(shape[:2], bool)
    t = result.tracks
    for box, path in zip(t.xyxy, t.predicted_path):
        points = np.vstack([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], path])
        region |= _grow(*points.min(axis=0), *points.max(axis=0), LW + 2, shape)
    return region


def _mask_area(result, shape) -> np.ndarray:
    region = np.zeros(shape[:2], bool)
    for poly in result.tracks.mask_polygons:
        region |= _grow(*poly.min(axis=0), *poly.max(axis=0), 1, shape)
    return region


def _keypoint_area(result, shape) -> np.ndarray:
    region = np.zeros(shape[:2], bool)
    for kpts in result.tracks.keypoints:
        region |= _grow(*kpts[:, :2].min(axis=0), *kpts[:, :2].max(axis=0), LW + 3, shape)
    return region


REGIONS: dict[str, Callable] = {
    "boxes": lambda results, shape: _box_edges(results[-1], shape),
    "labels": lambda results, shape: _label_band(results[-1], shape),
    "trails": _trail_band,
    "predicted_path": lambda results, shape: _path_area(results[-1], shape),
    "masks": lambda results, shape: _mask_area(results[-1], shape),
    "keypoints": lambda results, shape: _keypoint_area(results[-1], shape),
}


@pytest.mark.parametrize("element, mask_arrays", [
    ("boxes", False), ("labels", False), ("trails", False), ("predicted_path", False),
    ("masks", False), ("masks", True), ("keypoints", False),
])
def test_turning_an_element_off_changes_only_its_region(frames, element, mask_arrays):
    results = _history(frames, masks=mask_arrays)
    shape = frames[0].shape
    with_it = _draw_last(results, ALL_ON)
    without = _draw_last(results, replace(ALL_ON, **{element: False}))
    changed = (with_it != without).any(axis=2)
    expected = REGIONS[element](results, shape)
    assert changed.any(), f"{element} draws nothing"
    outside = changed & ~expected
    assert not outside.any(), f"{element} changed {int(outside.sum())} pixels outside its region"
    # and drawing only that element on a bare frame changes pixels only there too
    alone = _draw_last(results, replace(ALL_OFF, **{element: True}))
    alone_changed = (alone != results[-1].frame.image).any(axis=2)
    assert alone_changed.any() and not (alone_changed & ~expected).any()


def test_boxes_off_leaves_no_box_colour_along_the_edges(frames):
    results = _history(frames)
    last = results[-1]
    others = replace(ALL_ON, trails=False)  # the trail runs through the box in the track's colour
    on = _draw_last(results, others)
    off = _draw_last(results, replace(others, boxes=False))
    for tid, (x1, y1, _x2, y2) in zip(last.tracks.track_id, last.tracks.xyxy.astype(int)):
        color = np.array(id_color(int(tid)), np.uint8)
        left_edge_on = on[y1 + 5:y2 - 5, x1]  # below the label, above the bottom corner
        left_edge_off = off[y1 + 5:y2 - 5, x1]
        assert (left_edge_on == color).all(axis=1).all()
        assert not (left_edge_off == color).all(axis=1).any()
        np.testing.assert_array_equal(left_edge_off, last.frame.image[y1 + 5:y2 - 5, x1])


def test_colour_belongs_to_the_id_not_to_position_or_order(frames):
    boxes_a = [[50, 50, 120, 150], [300, 60, 380, 200]]
    boxes_b = [[400, 100, 470, 220], [100, 40, 180, 180]]  # swapped order, other places, another frame
    draw = Annotator(replace(ALL_OFF, boxes=True)).draw
    first = draw(make_result(frames[0], make_tracks([4, 9], boxes_a)))
    second = draw(make_result(frames[5], make_tracks([9, 4], boxes_b)))
    for image, ids, boxes in ((first, [4, 9], boxes_a), (second, [9, 4], boxes_b)):
        for tid, (x1, y1, _, y2) in zip(ids, boxes):
            assert tuple(image[(y1 + y2) // 2, x1]) == id_color(tid)
    palette = {id_color(i) for i in range(1, 61)}
    assert len(palette) == 60, "neighbouring ids must get different colours"


@pytest.mark.parametrize("box", [[600, 120, 700, 200], [-30, -20, 40, 60]])  # past the right / top-left edge
def test_labels_of_boxes_at_the_frame_edge_stay_readable(frames, box):
    image = frames[0]
    out = Annotator(replace(ALL_OFF, labels=True)).draw(
        make_result(image, make_tracks([12], [box], class_ids=[1])))
    changed = (out != image).any(axis=2)
    columns, rows = np.flatnonzero(changed.any(axis=0)), np.flatnonzero(changed.any(axis=1))
    assert columns.max() - columns.min() >= 100, "the '#12 bicycle 0.90' tag must not be cut off"
    assert rows.max() - rows.min() >= 10


def test_annotator_never_changes_the_input_frame(frames):
    results = _history(frames, masks=True)
    originals = [r.frame.image.copy() for r in results]
    for r in results:
        r.frame.image.flags.writeable = False  # a read-only frame must still be drawable
    annotator = Annotator(ALL_ON)
    outputs = [annotator.draw(r) for r in results]
    for result, original, out in zip(results, originals, outputs):
        np.testing.assert_array_equal(result.frame.image, original)
        assert out is not result.frame.image and (out != original).any()


def test_trail_shows_only_the_last_trail_seconds_of_motion(frames):
    step, fps, seconds = 4.0, 25.0, 0.4  # 0.4 s at 25 fps = 10 frames = 40 px of trail
    image = frames[0]
    results = [make_result(image, make_tracks([3], [[20 + i * step, 100, 60 + i * step, 160]]), index=i,
                           fps=fps) for i in range(60)]
    config = replace(ALL_OFF, trails=True, trail_seconds=seconds)
    trail = (_draw_last(results, config) != image).any(axis=2)
    columns = np.flatnonzero(trail.any(axis=0))
    last_centre = 40 + 59 * step
    assert columns.max() <= last_centre + LW + 1
    oldest_kept = last_centre - seconds * fps * step  # 10 frames back
    assert oldest_kept - LW - 1 <= columns.min() <= oldest_kept + step


def test_trail_shows_only_for_tracks_in_the_frame_and_returns_after_a_short_gap(frames):
    image = frames[0]
    config = replace(ALL_OFF, trails=True, trail_seconds=1.0)
    annotator = Annotator(config)
    box = lambda i: [[20 + i * 5.0, 100, 60 + i * 5.0, 160]]  # noqa: E731
    for i in range(10):
        annotator.draw(make_result(image, make_tracks([3], box(i)), index=i))
    gap = annotator.draw(make_result(image, make_tracks([], []), index=10))  # track 3 occluded
    np.testing.assert_array_equal(gap, image)
    back = annotator.draw(make_result(image, make_tracks([3], box(11)), index=11))
    columns = np.flatnonzero((back != image).any(axis=2).any(axis=0))
    assert columns.min() <= 40 + LW and columns.max() >= 40 + 11 * 5 - LW  # whole trail, first to last centre


def test_trail_memory_stays_bounded_with_churning_ids():
    image = np.zeros((96, 128, 3), np.uint8)
    annotator = Annotator(replace(ALL_OFF, trails=True, trail_seconds=0.4))  # 10 frames at 25 fps
    seen_recently: list[set[int]] = []
    for f in range(1000):
        ids = [f * 3 + k for k in range(6)]  # every id lives two frames, 3 new ids per frame
        boxes = [[10 + k * 15, 20, 20 + k * 15, 40] for k in range(6)]
        ended = [f * 3 - 3 + k for k in range(3)] if f % 2 else []
        annotator.draw(make_result(image, make_tracks(ids, boxes, removed=ended), index=f))
        seen_recently = (seen_recently + [set(ids)])[-11:]
        remembered = set(annotator.trail_ids)
        assert remembered <= set().union(*seen_recently)
        assert not remembered & set(ended)
    assert len(annotator.trail_ids) <= 11 * 3 + 3


def test_trails_restart_when_pts_goes_back(frames):
    annotator = Annotator(OverlayConfig())
    for i in range(5):
        annotator.draw(make_result(frames[0], make_tracks([1], [[10 + i, 10, 50 + i, 60]]), index=i))
    annotator.draw(make_result(frames[0], make_tracks([2], [[10, 10, 50, 60]]), index=0))  # stream restarted
    assert annotator.trail_ids == (2,)


@pytest.mark.parametrize("visibility, drawn", [(0.9, True), (0.5, True), (0.3, False)])
def test_keypoints_below_half_visibility_are_not_drawn(frames, visibility, drawn):
    tracks = make_tracks([5], [[100, 40, 180, 240]], keypoints=True)
    kpts = tracks.keypoints.copy()
    kpts[..., 2] = visibility
    tracks = replace(tracks, keypoints=kpts)
    result = make_result(frames[0], tracks)
    out = Annotator(replace(ALL_OFF, keypoints=True)).draw(result)
    assert (out != frames[0]).any() == drawn


@pytest.mark.parametrize("mask_arrays", [False, True])
def test_mask_is_the_track_colour_blended_at_mask_alpha(frames, mask_arrays):
    image = frames[3]
    h, w = image.shape[:2]
    tracks = make_tracks([8], [[200, 50, 300, 250]], polygons=True, mask_size=(w, h) if mask_arrays else None)
    alpha = 0.6
    out = Annotator(replace(ALL_OFF, masks=True, mask_alpha=alpha)).draw(make_result(image, tracks))
    inside = (slice(140, 160), slice(240, 260))  # centre of the diamond
    expected = image[inside] * (1 - alpha) + np.array(id_color(8)) * alpha
    assert np.abs(out[inside].astype(float) - expected).max() <= 1.0
    outside = (slice(55, 65), slice(205, 215))  # box corner: outside the diamond
    np.testing.assert_array_equal(out[outside], image[outside])


@pytest.mark.parametrize("data, key", [
    ({"mask_alpha": 1.5}, "overlay.mask_alpha"),
    ({"line_width": 0}, "overlay.line_width"),
    ({"trail_seconds": -1.0}, "overlay.trail_seconds"),
    ({"boxes": "yes"}, "overlay.boxes"),
    ({"box": True}, "overlay.box"),
])
def test_overlay_config_rejects_bad_values_naming_the_key(data, key):
    with pytest.raises(ConfigError) as info:
        from_mapping(OverlayConfig, data, "overlay")
    assert str(info.value).startswith(f"{key}:")


def test_overlay_config_defaults_match_the_documented_keys():
    config = from_mapping(OverlayConfig, {}, "overlay")
    assert (config.boxes, config.labels, config.trails, config.predicted_path, config.masks,
            config.keypoints) == (True,) * 6
    assert (config.trail_seconds, config.mask_alpha, config.line_width) == (2.0, 0.4, 2)


def test_zones_and_lines_are_drawn_with_their_live_counts(frames):
    """The annotated video shows each zone and counting line with its current count, and --no-zones hides them."""
    from pipelines.frames import Counts, LineCount, ZoneCount
    from pipelines.processing.overlays import LINE_COLOR, ZONE_COLOR
    from pipelines.processing.zones import LineConfig, ZoneConfig

    zone = ZoneConfig("door", ((40.0, 60.0), (200.0, 60.0), (200.0, 200.0), (40.0, 200.0)))
    line = LineConfig("gate", ((400.0, 20.0), (400.0, 250.0)))
    result = make_result(frames[0], make_tracks([], []))

    def drawn(config: OverlayConfig, counts) -> np.ndarray:  # type: ignore[no-untyped-def]
        return Annotator(config, [zone], [line]).draw(replace(result, counts=counts))

    few = Counts({"door": ZoneCount(1, 1, 0)}, {"gate": LineCount(2, 0)}, 3)
    more = Counts({"door": ZoneCount(3, 5, 2)}, {"gate": LineCount(7, 4)}, 9)
    on, later = drawn(OverlayConfig(), few), drawn(OverlayConfig(), more)
    off = drawn(OverlayConfig(zones=False), few)
    assert np.array_equal(off, frames[0])                       # switched off: the picture is untouched
    assert (on[130, 40] == ZONE_COLOR).all() and (on[130, 200] == ZONE_COLOR).all()   # zone outline
    assert (on[150, 400] == LINE_COLOR).all()                   # the counting line
    changed = np.argwhere((on != later).any(axis=2))
    assert len(changed), "the counts on screen did not change with the counts"
    assert changed[:, 0].max() < 60 and changed[:, 0].min() >= 0   # only the tags above the shapes changed

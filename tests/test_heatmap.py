"""Heatmaps (``pipelines/processing/heatmap.py``): heat where tracks' ground points walked and nowhere else,
halved after the half-life, kept per class, in bounded memory; drawn over a picture.

Hand-made tracks (``tests/synthetic_tracks.py``) on a 640 x 360 frame; no model needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.frames import VideoFrame
from pipelines.processing.heatmap import Heatmap, HeatmapConfig, blend, grid_shape
from pipelines.processing.processor import StreamProcessor
from pipelines.settings import SourceSettings
from tests.synthetic_tracks import CLASS_NAMES, make_tracks
from tracker.configutil import ConfigError, from_mapping

W, H = 640, 360


def walker(x: float, y: float, track_id: int = 1, class_id: int = 0):
    """A 40 x 100 px box whose bottom centre (its ground point) is at (x, y)."""
    return make_tracks([track_id], [[x - 20, y - 100, x + 20, y]], class_ids=[class_id])


def hot_cells(heat: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(heat > 0))}


def cell_of(x: float, y: float, shape: tuple[int, int]) -> tuple[int, int]:
    rows, cols = shape
    return min(int(y * rows / H), rows - 1), min(int(x * cols / W), cols - 1)


def test_heat_lies_where_a_track_walked_and_nowhere_else():
    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    path = [(100 + 10 * i, 300 - 2 * i) for i in range(40)]   # a walk to the right, slowly up the picture
    for i, (x, y) in enumerate(path):
        heatmap.add(walker(x, y), i / 25, W, H)
    total = heatmap.snapshot().total
    assert total.shape == grid_shape(W, H, 256) == (144, 256)
    assert hot_cells(total) == {cell_of(x, y, total.shape) for x, y in path}
    assert total.sum() == pytest.approx(40)           # one per frame: the track counted once per cell and frame


def test_a_standing_person_heats_their_spot_in_proportion_to_time():
    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    for i in range(100):
        tracks = make_tracks([1, 2], [[80, 200, 120, 300], [380 + 2 * i, 200, 420 + 2 * i, 300]])
        heatmap.add(tracks, i / 25, W, H)
    total = heatmap.snapshot().total
    stand = total[cell_of(100, 300, total.shape)]
    assert stand == pytest.approx(100)                 # 100 frames on one spot
    assert total.max() == stand and np.sort(total.ravel())[-2] <= 2   # the walker spreads over many cells


def test_heat_halves_after_the_half_life():
    heatmap = Heatmap(HeatmapConfig(enabled=True, half_life_seconds=2.0), CLASS_NAMES)
    heatmap.add(walker(320, 300), 0.0, W, H)
    spot = cell_of(320, 300, heatmap.snapshot().total.shape)
    empty = make_tracks([], [])
    for t in (0.5, 1.0, 2.0):
        heatmap.add(empty, t, W, H)
    assert heatmap.snapshot().total[spot] == pytest.approx(0.5, rel=1e-5)
    for t in np.arange(2.5, 200.0, 0.5):              # past the renormalisation of the running scale
        heatmap.add(empty, float(t), W, H)
    heatmap.add(walker(320, 300), 200.0, W, H)
    assert heatmap.snapshot().total[spot] == pytest.approx(1.0 + 0.5 ** 100, rel=1e-5)


def test_classes_are_kept_apart_and_add_up_to_the_total():
    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    for i in range(10):
        tracks = make_tracks([1, 2], [[80, 200, 120, 300], [500, 100, 600, 150]], class_ids=[0, 2])
        heatmap.add(tracks, i / 25, W, H)
    snap = heatmap.snapshot()
    assert set(snap.by_class) == {"person", "car"}
    assert hot_cells(snap.by_class["person"]) == {cell_of(100, 300, snap.total.shape)}
    assert hot_cells(snap.by_class["car"]) == {cell_of(550, 150, snap.total.shape)}
    np.testing.assert_allclose(snap.by_class["person"] + snap.by_class["car"], snap.total)


def test_memory_stays_the_same_however_long_the_run():
    heatmap = Heatmap(HeatmapConfig(enabled=True, max_side=128), CLASS_NAMES)
    rng = np.random.default_rng(0)
    sizes = []
    for i in range(3000):
        x, y = rng.uniform(0, W, 2)
        heatmap.add(walker(x, y * H / W, track_id=i, class_id=i % 3), i / 25, W, H)
        if i in (100, 2999):
            sizes.append(heatmap.nbytes)
    assert sizes[0] == sizes[1] == 4 * 72 * 128 * 4   # total + three classes, float32, 128 x 72 cells
    assert heatmap.snapshot().total.dtype == np.float32


def test_ground_points_off_the_frame_add_nothing():
    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    heatmap.add(make_tracks([1, 2], [[-90, 100, -50, 200], [300, 300, 340, H + 40]]), 0.0, W, H)
    heatmap.add(walker(W, H), 0.04, W, H)              # on the frame's corner: counts, in the last cell
    total = heatmap.snapshot().total
    assert hot_cells(total) == {(total.shape[0] - 1, total.shape[1] - 1)}


@pytest.mark.parametrize("data, key", [({"half_life_seconds": 0}, "heatmap.half_life_seconds"),
                                       ({"max_side": 1000}, "heatmap.max_side"),
                                       ({"decay": 3}, "heatmap.decay")])
def test_bad_heatmap_settings_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_mapping(HeatmapConfig, data, "heatmap")


def test_the_processor_hands_the_heat_to_the_sinks_with_each_frame():
    from tracker.types import Detections

    settings = SourceSettings(url="clip.mp4", heatmap=HeatmapConfig(enabled=True))
    processor = StreamProcessor(settings, CLASS_NAMES)
    image = np.zeros((H, W, 3), np.uint8)
    results = []
    for i in range(6):
        dets = Detections(np.array([[300, 200, 340, 300]], np.float32), np.array([0.9], np.float32),
                          np.array([0]))
        results.append(processor.process(VideoFrame(image, i, i / 25, "clip", 0.0), dets))
    heat = results[-1].heat
    assert heat is not None and heat.frames == 6 and heat.total.sum() > 0
    assert results[0].heat is not None and results[0].heat.total is not heat.total   # each its own arrays
    assert StreamProcessor(SourceSettings(url="clip.mp4"), CLASS_NAMES).process(
        VideoFrame(image, 0, 0.0, "clip", 0.0), None).heat is None   # off by default


def test_blend_colours_hot_places_and_leaves_cold_ones_alone():
    image = np.full((H, W, 3), 90, np.uint8)
    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    for i in range(20):
        heatmap.add(walker(160, 180), i / 25, W, H)
    out = blend(image, heatmap.snapshot().total, 0.6)
    assert out.shape == image.shape and (image == 90).all()          # the picture itself is not changed
    changed = np.abs(out.astype(int) - image).sum(axis=2) > 30
    ys, xs = np.nonzero(changed)
    assert changed.any() and abs(xs.mean() - 160) < 5 and abs(ys.mean() - 180) < 5
    assert not changed[:, 300:].any()                                 # far from the spot: untouched


def test_the_sinks_copy_is_renewed_every_fifth_of_a_second_of_video():
    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    copies = []
    for i in range(12):
        heatmap.add(walker(100 + 5 * i, 300), i / 25, W, H)
        copies.append(heatmap.latest(i / 25))
    assert len({id(c) for c in copies}) == 3                  # at 0, 0.2 and 0.4 s
    assert copies[-1].frames == 11 and copies[-1].total.sum() == pytest.approx(11)
    before = copies[-1].total.copy()
    heatmap.add(walker(600, 300), 0.5, W, H)
    np.testing.assert_array_equal(copies[-1].total, before)    # a copy handed out never changes


def test_the_annotated_picture_shows_the_heat_under_the_tracks_when_asked():
    import dataclasses

    from pipelines.processing.overlays import Annotator, OverlayConfig
    from tests.synthetic_tracks import make_result

    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    for i in range(20):
        heatmap.add(walker(160, 300), i / 25, W, H)
    image = np.full((H, W, 3), 90, np.uint8)
    res = dataclasses.replace(make_result(image, make_tracks([], [])), heat=heatmap.snapshot())
    plain = Annotator(OverlayConfig()).draw(res)
    heated = Annotator(OverlayConfig(heatmap=True)).draw(res)
    assert (plain == 90).all()                                  # off by default
    changed = np.abs(heated.astype(int) - 90).sum(axis=2) > 30
    ys, xs = np.nonzero(changed)
    assert abs(xs.mean() - 160) < 6 and abs(ys.mean() - 300) < 6


def test_a_source_may_have_its_own_heatmap_settings_and_outputs_switch_it_on():
    from pipelines.api import build_api_config
    from pipelines.config import build_config

    config = build_config({"heatmap": {"half_life_seconds": 60},
                           "sources": [{"url": "a.mp4", "heatmap": {"enabled": True, "max_side": 64}}, "b.mp4"]})
    a, b = config.sources
    assert (a.heatmap.enabled, a.heatmap.max_side, a.heatmap.half_life_seconds) == (True, 64, 60)
    assert (b.heatmap.enabled, b.heatmap.max_side) == (False, 256)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.heatmap\.max_side"):
        build_config({"sources": [{"url": "a.mp4", "heatmap": {"max_side": 0}}]})
    on = build_config({"output": {"heatmap": "h.png"}, "sources": ["a.mp4"]})
    assert on.sources[0].heatmap.enabled and build_config({"overlay": {"heatmap": True}}).heatmap.enabled
    api = build_api_config(["a.mp4"], heatmap="maps/{source}.png")     # the Python API: as --heatmap
    assert api.output.heatmap == "maps/{source}.png" and api.sources[0].heatmap.enabled
    assert build_api_config(["a.mp4"], heatmap=True).sources[0].heatmap.enabled
    assert build_api_config(["a.mp4"], heatmap=True).output.heatmap is None


def test_the_command_line_switches_the_heatmap_on_with_any_of_its_flags():
    import argparse

    from pipelines.commands.run import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert not config_from_args(parser.parse_args(["a.mp4"])).sources[0].heatmap.enabled
    for flags in (["--heatmap", "h.png"], ["--heatmap-overlay"], ["--heatmap-half-life", "30"]):
        config = config_from_args(parser.parse_args(["a.mp4", *flags]))
        assert config.sources[0].heatmap.enabled, flags
    config = config_from_args(parser.parse_args(["a.mp4", "--heatmap", "h.png", "--heatmap-overwrite",
                                                 "--heatmap-half-life", "30"]))
    assert config.output.heatmap_overwrite and config.sources[0].heatmap.half_life_seconds == 30

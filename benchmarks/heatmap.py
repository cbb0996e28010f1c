"""What a heatmap costs the processing thread per frame: ``Heatmap.add`` and the ``snapshot`` handed to the sinks.

N tracks of three classes walk across a 1920 x 1080 frame (256 x 144 cells) with a half-life set (the
decay path); the tracks are built before timing, so only the heatmap's work is timed. Prints ms per frame
(the median of 5 rounds) for add alone and for add + the copy the sinks get (``latest``: renewed every 0.2 s
of video), and the grids' memory. Also what the video
sink pays to draw it (``overlay.heatmap``) on a 1080p frame: colouring a new copy, and laying it over.

    python benchmarks/heatmap.py [--tracks 50] [--frames 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

W, H = 1920, 1080


def main() -> None:
    from pipelines.processing.heatmap import Heatmap, HeatmapConfig, apply, layer
    from tests.synthetic_tracks import CLASS_NAMES, make_tracks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=50)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    start = rng.uniform([0, 100], [W, H], (args.tracks, 2))
    step = rng.uniform(-6, 6, (args.tracks, 2))
    frames = []
    for i in range(200):   # 200 distinct frames, cycled
        feet = np.clip(start + step * i, 0, [W, H])
        boxes = np.c_[feet[:, 0] - 25, feet[:, 1] - 120, feet[:, 0] + 25, feet[:, 1]]
        frames.append(make_tracks(list(range(1, args.tracks + 1)), boxes.tolist(),
                                  class_ids=[k % 3 for k in range(args.tracks)]))

    def per_frame(snapshot: bool) -> float:
        rounds = []
        for _ in range(5):
            heatmap = Heatmap(HeatmapConfig(enabled=True, half_life_seconds=60.0), CLASS_NAMES)
            began = time.perf_counter()
            for i in range(args.frames):
                heatmap.add(frames[i % len(frames)], i / 30.0, W, H)
                if snapshot:
                    heatmap.latest(i / 30.0)
            rounds.append((time.perf_counter() - began) / args.frames * 1000.0)
        print(f"  memory: {heatmap.nbytes / 1024:.0f} KiB in {1 + len(heatmap.snapshot().by_class)} grids")
        return statistics.median(rounds)

    print(f"heatmap: {args.tracks} tracks, 3 classes, {W}x{H} frames, {args.frames} frames x 5 rounds")
    add = per_frame(False)
    both = per_frame(True)
    print(f"add: {add:.3f} ms/frame   add + the sinks' copy every 0.2 s (what the processor does): {both:.3f} ms/frame")

    heatmap = Heatmap(HeatmapConfig(enabled=True), CLASS_NAMES)
    for i in range(200):
        heatmap.add(frames[i], i / 30.0, W, H)
    total = heatmap.snapshot().total
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    began = time.perf_counter()
    for _ in range(10):
        held = layer(total, (W, H), 0.5)
    colour_ms = (time.perf_counter() - began) / 10 * 1000.0
    began = time.perf_counter()
    for _ in range(10):
        apply(image, held)
    apply_ms = (time.perf_counter() - began) / 10 * 1000.0
    print(f"overlay (video sink thread, 1080p): colouring {colour_ms:.1f} ms (per new copy, every 0.2 s), "
          f"laying it over {apply_ms:.1f} ms/frame")


if __name__ == "__main__":
    main()

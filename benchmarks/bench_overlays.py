"""Cost of drawing overlays and of the annotated-video sink at 1280x720, against Ultralytics' Annotator.

Usage: python benchmarks/bench_overlays.py [--tracks 10] [--frames 60] [--video PATH]

Prints per-frame CPU milliseconds for:
  - trackstream boxes + labels + keypoints   vs   Ultralytics Annotator.box_label + kpts (same elements)
  - trackstream with every overlay on (masks from polygons, trails, predicted paths)
  - AnnotatedVideoSink draw + encode (libx264 veryfast, crf 23): frames per second of CPU time
Tracks are synthetic (no model), frames are real when a 1280x720 video is given or found.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from pipelines.processing.overlays import Annotator, OverlayConfig, id_color, label_text  # noqa: E402
from tests.clips import decode_frames  # noqa: E402
from tests.synthetic_tracks import CLASS_NAMES, make_result, make_tracks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRACKSTREAM_DATA", REPO.parent / "shared" / "data"))
DEFAULT_VIDEO = DATA / "videos" / "people-walking_1280x720.mp4"


def _frames(video: Path, count: int) -> list[np.ndarray]:
    if video.is_file():
        return [cv2.resize(f, (1280, 720)) for f in decode_frames(video, count)]
    print(f"({video} not found: using noise frames)")
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(count)]


def _results(frames: list[np.ndarray], n: int) -> list:
    out = []
    for f, image in enumerate(frames):
        boxes = [[40 + 120 * i + 2 * f, 120 + (i % 3) * 160, 130 + 120 * i + 2 * f, 380 + (i % 3) * 100]
                 for i in range(n)]
        tracks = make_tracks(list(range(1, n + 1)), boxes, keypoints=True, polygons=True)
        out.append(make_result(image, tracks, index=f))
    return out


def _cpu_ms(fn, results) -> float:
    fn(results[0])  # warm up (imports, first-call setup) outside the timing
    start = time.process_time()
    for r in results:
        fn(r)
    return (time.process_time() - start) / len(results) * 1000


def _ultralytics_draw(result) -> np.ndarray:
    from ultralytics.utils.plotting import Annotator as UltralyticsAnnotator

    image = result.frame.image.copy()
    ann = UltralyticsAnnotator(image, line_width=2)
    t = result.tracks
    for tid, cls, conf, box, kpts in zip(t.track_id, t.class_id, t.confidence, t.xyxy, t.keypoints):
        text = label_text(int(tid), CLASS_NAMES[int(cls)], float(conf))
        ann.box_label(box.tolist(), text, color=id_color(int(tid)))
        ann.kpts(kpts, shape=image.shape[:2], kpt_line=True, conf_thres=0.5)
    return ann.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # compare single-threaded drawing cost
    results = _results(_frames(args.video, args.frames), args.tracks)

    same = OverlayConfig(trails=False, predicted_path=False, masks=False)
    ours_same = _cpu_ms(Annotator(same).draw, results)
    theirs = _cpu_ms(_ultralytics_draw, results)
    ours_all = _cpu_ms(Annotator(OverlayConfig()).draw, results)
    print(f"1280x720, {args.tracks} tracks, {len(results)} frames (CPU ms per frame)")
    print(f"  boxes+labels+keypoints  trackstream {ours_same:6.2f}   ultralytics {theirs:6.2f}   "
          f"ratio {ours_same / theirs:.2f}x")
    print(f"  every overlay on        trackstream {ours_all:6.2f}")

    from pipelines.sinks.video import AnnotatedVideoSink

    cv2.setNumThreads(0)
    with tempfile.TemporaryDirectory() as tmp:
        sink = AnnotatedVideoSink(Path(tmp) / "bench.mp4", 25.0, (1280, 720))
        wall, cpu = time.perf_counter(), time.process_time()
        for r in results:
            sink.write(r)
        sink.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  draw+encode (libx264 veryfast): {len(results) / wall:5.1f} fps wall, "
          f"{cpu / len(results) * 1000:5.1f} CPU ms per frame (all threads)")


if __name__ == "__main__":
    main()

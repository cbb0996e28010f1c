"""Speed of trackstream's Tracker against Ultralytics' BYTETracker on synthetic scenes, in one run.

Each scene has N boxes moving at constant velocity (bouncing off the edges of a canvas whose area grows with
N, so crowding stays the same), with position/size noise, about 10% missed detections per frame and a few
low-score false positives; detection order is shuffled every frame. Both trackers get the same detections,
built before timing in each tracker's own input type, and only ``update`` is timed. The two trackers
alternate frame by frame, so load from other processes slows both alike.

Also prints a sanity check so a fast but broken tracker shows: ``cover`` = share of true detections that
come back in a track, ``switches`` = times an object's track id changed.

    python benchmarks/tracker_speed.py [--sizes 10 100 500 1000] [--frames-scale 1.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# One thread for numpy's BLAS/LAPACK, so the thread CPU time below is all the work (a tracker runs one
# stream per thread in trackstream anyway).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_OFFLINE", "true")

FPS = 30.0
# frames per scene: fewer at large N keeps the whole run to a couple of minutes
FRAMES = {10: 500, 100: 400, 500: 200, 1000: 100}


@dataclass(frozen=True)
class Frame:
    """One frame: xyxy float32 (D, 4), conf float32 (D,), truth int (D,) object id, -1 for false positives."""

    xyxy: np.ndarray
    conf: np.ndarray
    truth: np.ndarray


def make_scene(n: int, frames: int, seed: int) -> list[Frame]:
    """N constant-velocity boxes with noise, 10% misses and ~5% false positives per frame."""
    rng = np.random.default_rng(seed)
    side = 250.0 * np.sqrt(n)
    w = rng.uniform(20, 60, n)
    size = np.column_stack([w, w * rng.uniform(2.0, 2.5, n)])
    pos = rng.uniform(0, 1, (n, 2)) * (side - size)
    speed, angle = rng.uniform(1, 5, n), rng.uniform(0, 2 * np.pi, n)
    vel = np.column_stack([speed * np.cos(angle), speed * np.sin(angle)])
    scene = []
    for _ in range(frames):
        pos += vel
        out_low, out_high = pos < 0, pos > side - size
        vel[out_low | out_high] *= -1
        pos = np.clip(pos, 0, side - size)
        seen = np.flatnonzero(rng.random(n) >= 0.10)
        tl = pos[seen] + rng.normal(0, 1.5, (len(seen), 2))
        wh = size[seen] + rng.normal(0, 1.0, (len(seen), 2))
        n_fp = rng.poisson(0.05 * n)
        fp_wh = rng.uniform(20, 120, (n_fp, 2))
        fp_tl = rng.uniform(0, 1, (n_fp, 2)) * (side - fp_wh)
        xyxy = np.concatenate([np.hstack([tl, tl + wh]), np.hstack([fp_tl, fp_tl + fp_wh])])
        conf = np.concatenate([rng.uniform(0.5, 1.0, len(seen)), rng.uniform(0.1, 0.5, n_fp)])
        truth = np.concatenate([seen, np.full(n_fp, -1)])
        order = rng.permutation(len(truth))
        scene.append(Frame(xyxy[order].astype(np.float32), conf[order].astype(np.float32), truth[order]))
    return scene


@dataclass(frozen=True)
class Result:
    cpu_us: float
    wall_us: float
    cover: float
    switches: int


class _Runner:
    """One tracker stepping through a scene: times ``update`` and keeps the sanity counters."""

    def __init__(self, prepare: Callable[[Frame], object],
                 update: Callable[[object, float], tuple[np.ndarray, np.ndarray]], n: int) -> None:
        self.prepare, self.update = prepare, update
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.last_id = np.full(n, -1)
        self.covered = self.true_dets = self.switches = 0

    def step(self, frame: Frame, inp: object, t: float) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        det_index, track_id = self.update(inp, t)
        self.cpu.append(time.thread_time() - start_cpu)
        self.wall.append(time.perf_counter() - start)
        det_index = det_index.astype(np.int64)
        matched = det_index >= 0  # a tracker may also report coasting tracks without a detection (-1)
        obj = np.full(len(det_index), -1)
        obj[matched] = frame.truth[det_index[matched]]
        real = obj >= 0
        obj, tid = obj[real], track_id[real].astype(np.int64)
        self.true_dets += int((frame.truth >= 0).sum())
        self.covered += len(obj)
        self.switches += int(((self.last_id[obj] >= 0) & (self.last_id[obj] != tid)).sum())
        self.last_id[obj] = tid

    def result(self, warmup: int) -> Result:
        return Result(1e6 * float(np.mean(self.cpu[warmup:])), 1e6 * float(np.mean(self.wall[warmup:])),
                      self.covered / max(self.true_dets, 1), self.switches)


def trackstream_runner(n: int) -> _Runner:
    from tracker import Detections, Tracker, TrackerConfig

    trk = Tracker(TrackerConfig())

    def prepare(f: Frame) -> Detections:
        return Detections(f.xyxy, f.conf, np.zeros(len(f.conf), np.int64))

    def update(dets: object, t: float) -> tuple[np.ndarray, np.ndarray]:
        tracks = trk.update(dets, timestamp=t)  # type: ignore[arg-type]
        return tracks.det_index, tracks.track_id

    return _Runner(prepare, update, n)


def bytetrack_runner(n: int) -> _Runner:
    from pipelines.evaluation.peers import UltralyticsByteTrack, _Boxes

    trk = UltralyticsByteTrack()._tracker

    def prepare(f: Frame) -> _Boxes:
        return _Boxes(f.xyxy, f.conf, np.zeros(len(f.conf)))

    def update(boxes: object, t: float) -> tuple[np.ndarray, np.ndarray]:
        out = trk.update(boxes)
        if len(out) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return out[:, 7].astype(np.int64), out[:, 4].astype(np.int64)

    return _Runner(prepare, update, n)


def measure(scene: list[Frame], n: int) -> tuple[Result, Result]:
    """Run both trackers over the scene, alternating frame by frame so machine load hits both alike."""
    runners = (trackstream_runner(n), bytetrack_runner(n))
    inputs = [[r.prepare(f) for f in scene] for r in runners]
    for i, frame in enumerate(scene):
        for runner, inp in zip(runners, inputs):
            runner.step(frame, inp[i], i / FPS)
    warmup = min(20, len(scene) // 10)
    return runners[0].result(warmup), runners[1].result(warmup)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(FRAMES))
    parser.add_argument("--frames-scale", type=float, default=1.0, help="multiply the frames per scene")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import ultralytics  # noqa: F401 - imported before timing so its start-up cost is not counted

    print(f"{'N':>5} {'frames':>6} | {'ours cpu us':>11} {'bytetrack cpu us':>16} {'speed-up':>8} | "
          f"{'ours wall us':>12} {'bt wall us':>10} {'speed-up':>8} | "
          f"{'cover ours/bt':>13} {'switches ours/bt':>16}")
    ours_us: dict[int, float] = {}
    for n in args.sizes:
        frames = max(20, int(FRAMES.get(n, 200) * args.frames_scale))
        ours, peer = measure(make_scene(n, frames, args.seed), n)
        ours_us[n] = ours.cpu_us
        print(f"{n:>5} {frames:>6} | {ours.cpu_us:>11.0f} {peer.cpu_us:>16.0f} "
              f"{peer.cpu_us / ours.cpu_us:>7.1f}x | "
              f"{ours.wall_us:>12.0f} {peer.wall_us:>10.0f} {peer.wall_us / ours.wall_us:>7.1f}x | "
              f"{ours.cover:>6.1%}/{peer.cover:>6.1%} {ours.switches:>8}/{peer.switches:<7}", flush=True)
    if 100 in ours_us and 1000 in ours_us:
        print(f"growth of ours (cpu) from N=100 to N=1000: {ours_us[1000] / ours_us[100]:.1f}x "
              "(linear would be 10x)")
    print("us = mean microseconds per update() (cpu = this thread's CPU time, wall = elapsed; "
          "the two trackers "
          "alternate frame by frame); speed-up = bytetrack / trackstream; cover = true detections reported "
          "in a track; switches = track id changes of an object")
    return 0


if __name__ == "__main__":
    sys.exit(main())

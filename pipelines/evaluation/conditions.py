"""Evaluation conditions: the same sequences at a lower frame rate and/or with a worse detector.

A ``Condition`` turns a MOTChallenge sequence into a derived one, written as an ordinary sequence folder so
the rest of the evaluation (trackers, TrackEval) treats it like any other:

* ``stride`` K keeps frames 1, 1+K, 1+2K, ... of both ``det.txt`` and ``gt.txt``, renumbers them 1, 2, 3,
  ... and divides ``frameRate`` by K: the video as a camera filming at 1/K of the rate would give it.
* ``drop`` removes each detection with that probability; ``jitter`` moves each box centre by a Gaussian of
  ``jitter`` box widths/heights and scales its width and height by ``1 + N(0, jitter)``. Both are seeded
  per sequence (``seed`` and the sequence name), so every tracker sees the very same perturbed detections.
* ``score_power`` p replaces every detection score c by c**p: a detector that is more (p < 1) or less
  (p > 1) confident than the one the thresholds were set for, with the same ranking.
* ``oracle`` feeds the ground-truth pedestrians (``read_gt_people``: the rows TrackEval scores) as the
  detections, confidence 1, instead of ``det.txt``: a detector that finds everyone, hidden people included,
  so what the tracker and the counting rule lose on their own shows apart from what the detector misses;
  ``drop``/``jitter`` then make it a synthetic detector of known recall and box noise.
* ``pan`` A pans a virtual camera: every box of a frame at time t (detections *and* ground truth) moves by
  ``W * (A sin(2 pi t / PAN_PERIOD + phase), A/4 sin(2 pi t / (PAN_PERIOD / 2)))`` pixels, W the image width
  (1920 when seqinfo.ini has none), the phase seeded per sequence. Objects then share a moving image motion
  that no constant-velocity model predicts -- what a hand-held or vehicle camera adds to static footage.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.errors import OutputError, UserError
from pipelines.evaluation.motio import MotSequence, SeqInfo, read_detections
from pipelines.evaluation.paths import read_gt_people


@dataclass(frozen=True)
class Condition:
    """How to derive the sequences: frame stride (>= 1) and detection noise (drop fraction, jitter, seed)."""

    stride: int = 1
    drop: float = 0.0
    jitter: float = 0.0
    seed: int = 0
    score_power: float = 1.0
    pan: float = 0.0
    oracle: bool = False

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise UserError(f"--frame-stride must be >= 1, got {self.stride}")
        if not 0.0 <= self.drop < 1.0:
            raise UserError(f"detection drop fraction must be in [0, 1), got {self.drop}")
        if not 0.0 <= self.jitter <= 1.0:
            raise UserError(f"box jitter must be in [0, 1] box sizes, got {self.jitter}")
        if not 0.0 <= self.pan <= 1.0:
            raise UserError(f"--camera-pan must be in [0, 1] image widths, got {self.pan}")
        if not 0.1 <= self.score_power <= 10.0:
            raise UserError(f"--score-power must be in [0.1, 10], got {self.score_power}")
        if self.seed < 0:    # NumPy's generator takes no negative seed: one line, not its traceback
            raise UserError(f"--noise-seed must be >= 0, got {self.seed}")

    @property
    def noisy(self) -> bool:
        return self.drop > 0.0 or self.jitter > 0.0 or self.score_power != 1.0 or self.pan > 0.0

    @property
    def identity(self) -> bool:
        return self.stride == 1 and not self.noisy and not self.oracle

    @property
    def name(self) -> str:
        """Short label used in tables and folder names: ``stride1``, ``stride2``, ``stride1-noise``, and
        ``-gt`` after it when the ground truth is the detector."""
        return f"stride{self.stride}" + ("-noise" if self.noisy else "") + ("-gt" if self.oracle else "")


def perturb_detections(dets: np.ndarray, cond: Condition, seq_name: str) -> np.ndarray:
    """Drop and jitter (N, 6) ``frame, x, y, w, h, conf`` rows as ``cond`` says; returns new rows."""
    if not cond.noisy or len(dets) == 0:
        return dets
    rng = np.random.default_rng([cond.seed, zlib.crc32(seq_name.encode())])
    keep = rng.random(len(dets)) >= cond.drop
    out: np.ndarray = dets[keep].copy()
    out[:, 5] = np.clip(out[:, 5], 0.0, 1.0) ** cond.score_power
    if cond.jitter > 0.0:
        n = len(out)
        w, h = out[:, 3].copy(), out[:, 4].copy()
        cx = out[:, 1] + 0.5 * w + rng.normal(0.0, cond.jitter, n) * w
        cy = out[:, 2] + 0.5 * h + rng.normal(0.0, cond.jitter, n) * h
        w = np.maximum(w * (1.0 + rng.normal(0.0, cond.jitter, n)), 1.0)
        h = np.maximum(h * (1.0 + rng.normal(0.0, cond.jitter, n)), 1.0)
        out[:, 1], out[:, 2], out[:, 3], out[:, 4] = cx - 0.5 * w, cy - 0.5 * h, w, h
    return out


PAN_PERIOD = 4.0  # s


def pan_offsets(frames: np.ndarray, info: SeqInfo, cond: Condition) -> np.ndarray:
    """(N, 2) pixel offsets of the virtual camera pan at the original video's 1-based ``frames``."""
    if cond.pan <= 0.0:
        return np.zeros((len(frames), 2))
    phase = np.random.default_rng([cond.seed, zlib.crc32(info.name.encode()), 1]).uniform(0, 2 * np.pi)
    t = (np.asarray(frames, np.float64) - 1) / info.frame_rate
    amplitude = cond.pan * (info.width or 1920)
    return np.column_stack([amplitude * np.sin(2 * np.pi * t / PAN_PERIOD + phase),
                            0.25 * amplitude * np.sin(4 * np.pi * t / PAN_PERIOD)])


def subsample_frames(frames: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, new 1-based frame numbers) for 1-based ``frames`` at ``stride``."""
    f = frames.astype(np.int64) - 1
    return f % stride == 0, f // stride + 1


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


def _derive_gt(src: Path, dst: Path, cond: Condition, info: SeqInfo) -> None:
    """gt rows of the kept frames, renumbered, shifted by the pan (``info`` of the original video)."""
    lines = []
    for line in src.read_text().splitlines():
        if not line.strip():
            continue
        cells = line.split(",")
        frame = int(float(cells[0]))
        if (frame - 1) % cond.stride:
            continue
        cells[0] = str((frame - 1) // cond.stride + 1)
        if cond.pan > 0.0:
            dx, dy = pan_offsets(np.array([frame]), info, cond)[0]
            cells[2], cells[3] = f"{float(cells[2]) + dx:.2f}", f"{float(cells[3]) + dy:.2f}"
        lines.append(",".join(cells))
    _write(dst, "\n".join(lines) + ("\n" if lines else ""))


def derive_sequence(seq: MotSequence, cond: Condition, split_dir: Path) -> MotSequence:
    """Write ``seq`` under ``split_dir/<name>/`` as ``cond`` makes it; returns the derived sequence."""
    if cond.identity:
        return seq
    folder = split_dir / seq.name
    if cond.oracle:
        if seq.gt is None:
            raise UserError(f"--detections gt: {seq.name} has no gt/gt.txt (choose sequences with --seqs)")
        people = read_gt_people(seq.gt)
        dets = np.column_stack([people[:, 0], people[:, 2:6], np.ones(len(people))])
        dets = dets[np.argsort(dets[:, 0], kind="stable")]
    else:
        dets = read_detections(seq.det, seq.info.length)
    keep, renumbered = subsample_frames(dets[:, 0], cond.stride)
    dets = dets[keep].copy()
    dets[:, 1:3] += pan_offsets(dets[:, 0], seq.info, cond)
    dets[:, 0] = renumbered[keep]
    dets = perturb_detections(dets, cond, seq.name)
    det_path = folder / "det" / "det.txt"
    _write(det_path, "".join(f"{int(r[0])},-1,{r[1]:.3f},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.5f}\n"
                             for r in dets))
    gt_path = None
    if seq.gt is not None:
        gt_path = folder / "gt" / "gt.txt"
        _derive_gt(seq.gt, gt_path, cond, seq.info)
    length = math.ceil(seq.info.length / cond.stride)
    rate = seq.info.frame_rate / cond.stride
    size = "".join(f"{k}={v}\n" for k, v in (("imWidth", seq.info.width), ("imHeight", seq.info.height))
                   if v is not None)
    _write(folder / "seqinfo.ini",
           f"[Sequence]\nname={seq.name}\nframeRate={rate:g}\nseqLength={length}\n{size}")
    info = SeqInfo(seq.name, rate, length, seq.info.width, seq.info.height)
    return MotSequence(seq.name, folder, det_path, gt_path, info)

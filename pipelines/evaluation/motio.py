"""MOTChallenge files: find sequences, read ``seqinfo.ini`` / ``det.txt`` / ``gt.txt``, write results.

Layout (as published by MOTChallenge and TrackEval)::

    MOT_ROOT/<benchmark>/<split>/<seq>/seqinfo.ini
                                       det/det.txt    frame,-1,x,y,w,h,conf   (1-based frames, top-left x/y)
                                       gt/gt.txt      optional; only sequences with it are scored

Results are written as ``frame,id,x,y,w,h,conf,-1,-1,-1`` (one row per tracked box, sorted by frame then id).
"""

from __future__ import annotations

import configparser
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.errors import OutputError, UserError


@dataclass(frozen=True)
class SeqInfo:
    """What ``seqinfo.ini`` says about a sequence: name, frames per second, number of frames, image size."""

    name: str
    frame_rate: float
    length: int
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class MotSequence:
    """Paths of one sequence folder; ``gt`` is None when the sequence has no ground truth."""

    name: str
    folder: Path
    det: Path
    gt: Path | None
    info: SeqInfo


def read_seqinfo(path: Path) -> SeqInfo:
    """Parse ``seqinfo.ini``; a missing file or key raises UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: seqinfo.ini not found (needed for frameRate and seqLength)")
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
        section = parser["Sequence"]
        rate = float(section["frameRate"])
        length = int(section["seqLength"])
        width = int(section["imWidth"]) if "imWidth" in section else None
        height = int(section["imHeight"]) if "imHeight" in section else None
    except (configparser.Error, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a valid seqinfo.ini ({exc!s:.80})") from None
    if rate <= 0 or length < 1:
        raise UserError(f"{path}: frameRate must be > 0 and seqLength >= 1, got {rate} and {length}")
    return SeqInfo(section.get("name", path.parent.name), rate, length, width, height)


def split_folder(mot_root: Path, benchmark: str, split: str) -> Path:
    """``MOT_ROOT/<benchmark>/<split>``; raises UserError when it does not exist."""
    if not mot_root.is_dir():
        raise UserError(f"MOT root folder not found: {mot_root}")
    folder = mot_root / benchmark / split
    if not folder.is_dir():
        raise UserError(f"{folder} not found: expected MOT_ROOT/{benchmark}/{split}/<sequence>/det/det.txt")
    return folder


def find_sequences(mot_root: Path, benchmark: str, split: str = "train",
                   names: Sequence[str] | None = None) -> list[MotSequence]:
    """The sequences to evaluate: ``names`` in that order, or every folder of the split that has det.txt."""
    folder = split_folder(mot_root, benchmark, split)
    if names:
        chosen = list(dict.fromkeys(names))
        for name in chosen:
            if not (folder / name).is_dir():
                known = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_dir())) or "none"
                raise UserError(f"unknown sequence {name!r} in {folder} (available: {known})")
    else:
        chosen = sorted(p.name for p in folder.iterdir() if (p / "det" / "det.txt").is_file())
        if not chosen:
            raise UserError(f"no sequence with det/det.txt found in {folder}")
    result = []
    for name in chosen:
        seq_dir = folder / name
        det = seq_dir / "det" / "det.txt"
        if not det.is_file():
            raise UserError(f"{name}: detections not found: {det}")
        gt = seq_dir / "gt" / "gt.txt"
        result.append(MotSequence(name, seq_dir, det, gt if gt.is_file() else None,
                                read_seqinfo(seq_dir / "seqinfo.ini")))
    return result


def _read_table(path: Path, min_columns: int) -> np.ndarray:
    """Comma-separated numbers as float64 (N, C); UserError names the file on bad content."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    rows = [line for line in text.splitlines() if line.strip()]
    if not rows:
        return np.zeros((0, min_columns))
    try:
        table = np.array([[float(v) for v in line.split(",")[:min_columns]] for line in rows])
    except ValueError:
        bad = next(i for i, line in enumerate(rows) if not _is_numeric_row(line, min_columns))
        raise UserError(f"{path}: line {bad + 1} is not {min_columns} comma-separated numbers: "
                        f"{rows[bad][:60]!r}") from None
    if table.ndim != 2 or table.shape[1] < min_columns:
        raise UserError(f"{path}: expected at least {min_columns} comma-separated columns per line")
    return table


def _numbered_row(path: Path, row: int) -> tuple[int, str]:
    """The 1-based line number and text of the ``row``-th non-blank line of ``path`` (as ``_read_table`` counts)."""
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    return lines[row]


def _is_numeric_row(line: str, columns: int) -> bool:
    parts = line.split(",")[:columns]
    try:
        [float(v) for v in parts]
    except ValueError:
        return False
    return len(parts) == columns


def read_detections(path: Path, length: int | None = None) -> np.ndarray:
    """Read a MOT ``det.txt`` and sort it by frame (rows in the file may come in any order).

    Returns float64 (N, 6): ``frame, x, y, w, h, conf`` with 1-based frames and top-left x/y in pixels.
    Rows of one frame keep their file order (stable sort). Frames outside ``1..length`` raise UserError.
    """
    table = _read_table(path, 7)
    dets = table[:, [0, 2, 3, 4, 5, 6]]
    bad = ~np.isfinite(dets).all(axis=1) | (dets[:, 3] < 0) | (dets[:, 4] < 0)
    if bad.any():   # the tracker's Detections refuses such a box: a traceback at the frame holding it
        number, line = _numbered_row(path, int(np.argmax(bad)))
        raise UserError(f"{path}: line {number} is not a detection (a NaN or infinite number, or a negative "
                        f"width or height): {line[:60]!r}")
    order = np.argsort(dets[:, 0], kind="stable")
    dets = dets[order]
    if len(dets):
        first, last = int(dets[0, 0]), int(dets[-1, 0])
        if first < 1 or (length is not None and last > length):
            raise UserError(f"{path}: frame numbers {first}..{last} fall outside 1..{length} (seqinfo.ini)")
    return dets


def frames(dets: np.ndarray, length: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame, rows)`` for every frame 1..length of frame-sorted ``dets`` (empty rows when none)."""
    frame_col = dets[:, 0].astype(np.int64)
    bounds = np.searchsorted(frame_col, np.arange(1, length + 2))
    for frame in range(1, length + 1):
        yield frame, dets[bounds[frame - 1]:bounds[frame], 1:]


def write_results(path: Path, rows: np.ndarray) -> None:
    """Write tracker output ``rows`` float (M, 7) ``frame, id, x, y, w, h, conf`` in MOTChallenge format.

    Rows are sorted by frame then id; each line gets the three ``-1`` world-coordinate columns.
    """
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4f},-1,-1,-1"
             for r in rows]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + ("\n" if lines else ""))
    except OSError as exc:
        raise OutputError(f"cannot write results to {path}: {exc.strerror}") from None


"""Start-up on an archive: how many times ``trackstream run 'ARCHIVE/*.mp4'`` opens each file before the first
frame comes out, the time spent in those opens, and the time from launch to that first frame.

The archive is ``--files`` copies of a clip (default the bundled bikes.mp4) in a temporary folder; each run is a
fresh ``python -m pipelines.cli run`` (``--max-frames 1 --jsonl``), counted by ``tests/open_counter.py``
(``av.open`` and ``open()`` wrapped to note the files of the archive; with ``--latency-ms`` each noted open first
sleeps that long, as an open on a network share waits for its round trip). Runs go without and with ``--state``
(which fingerprints each file), each with no added latency and with ``--latency-ms``.

With ``--baseline REV`` the same runs are made on the tree of that git revision (``git archive``, into a
temporary folder), in the same rounds, and the ratios baseline / this tree are printed. Rounds alternate the
trees (best of ``--repeat`` kept), so load from other work on a shared machine hits both. Usage::

    python benchmarks/archive_opens.py [--files 20] [--repeat 3] [--latency-ms 10] [--baseline 4a23fc5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.open_counter import opens_at_start  # noqa: E402


def _tree(revision: str, into: Path) -> Path:
    """The files of git ``revision`` written into ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _measure(tree: Optional[Path], archive: Path, model: str, state: Optional[Path], latency: float,
             out: Path) -> dict[str, Any]:
    """One fresh run on ``tree`` (None: this one): opens per file before the first frame, by kind."""
    shutil.rmtree(out, ignore_errors=True)
    if state is not None:
        shutil.rmtree(state, ignore_errors=True)
    args = ["run", str(archive / "*.mp4"), "--model", model, "--imgsz", "160", "--max-frames", "1",
            "--jsonl", str(out / "{source}.jsonl"), "--quiet", *(["--state", str(state)] if state else [])]
    data = opens_at_start(archive, args, latency, pythonpath=tree)
    if data["exit"] != 0 or data["first_frame"] is None:
        sys.exit(f"the run failed ({data['exit']}):\n{data['stderr'][-3000:]}")
    files = len(list(archive.glob("*.mp4")))
    before = [row for row in data["opens"] if row[0] < data["first_frame"]]
    return {"av.open": sum(1 for row in before if row[1] == "av.open") / files,
            "open": sum(1 for row in before if row[1] == "open") / files,
            "in_opens": data["seconds_in_opens"], "first": data["first_frame"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20, help="files in the archive (default 20)")
    parser.add_argument("--video", type=Path, default=None, help="default: the bundled bikes.mp4")
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled YOLO11n-pose .pt")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=10.0, help="added to every open of an archive file in "
                        "the second set of runs (default 10)")
    parser.add_argument("--baseline", metavar="REV", help="also run the tree of this git revision, for ratios")
    args = parser.parse_args()
    from pipelines.assets import demo_pose_model, demo_video

    video, model = args.video or demo_video(), str(args.model or demo_pose_model())
    with tempfile.TemporaryDirectory(prefix="archive-opens-") as tmp:
        work = Path(tmp)
        archive = work / "archive"
        archive.mkdir()
        for i in range(args.files):
            shutil.copyfile(video, archive / f"clip{i:05d}{video.suffix}")
        trees: dict[str, Optional[Path]] = {"this tree": None}
        if args.baseline:
            trees[f"baseline {args.baseline}"] = _tree(args.baseline, Path(tempfile.mkdtemp(dir=work)))
        cases = [(state, latency) for state in (False, True) for latency in (0.0, args.latency_ms / 1000)]
        _measure(None, archive, model, None, 0.0, work / "out")   # the model cache and the OS's file cache: not timed
        best: dict[tuple[str, bool, float], dict[str, Any]] = {}
        for _ in range(args.repeat):
            for state, latency in cases:
                for name, tree in trees.items():
                    got = _measure(tree, archive, model, work / "state" if state else None, latency, work / "out")
                    key = (name, state, latency)
                    if key not in best or got["first"] < best[key]["first"]:
                        best[key] = got
    print(f"{args.files} copies of {video.name}, best of {args.repeat}, load average {os.getloadavg()[0]:.1f} "
          "(opens per file before the first frame; seconds from launch)")
    for state, latency in cases:
        print(f"{'--state' if state else 'no state'}, {latency * 1000:.0f} ms added per open:")
        for name in trees:
            got = best[(name, state, latency)]
            print(f"  {name:22s} av.open {got['av.open']:4.1f}  open() {got['open']:4.1f}   in opens "
                  f"{got['in_opens']:6.3f} s   first frame {got['first']:6.2f} s")
        if len(trees) == 2:
            this, base = (best[(name, state, latency)] for name in trees)
            opens = (base["av.open"] + base["open"]) / max(this["av.open"] + this["open"], 1e-9)
            print(f"  ratio baseline / this: opens {opens:.1f}x, time in opens "
                  f"{base['in_opens'] / max(this['in_opens'], 1e-9):.1f}x, first frame "
                  f"{base['first'] / this['first']:.2f}x")


if __name__ == "__main__":
    main()

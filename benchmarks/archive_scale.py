"""An archive's size against what a run over it needs: peak memory (RSS) and wall time of
``trackstream run 'ARCHIVE/*.mp4' --max-frames 1 --imgsz 160 --jsonl 'out/{source}.jsonl'`` for archives of
``--files`` hard links of one clip (default the bundled bikes.mp4), each run a fresh process under a limit of
``--open-files`` open files, soft and hard (default 1024: ``ulimit -n 1024``, which the CLI cannot lift).

With ``--baseline REV`` the same runs are made on the tree of that git revision (``git archive``, into a temporary
folder, as ``archive_opens.py`` does), alternating with this tree in every round (best of ``--repeat`` kept), so
load from other work on a shared machine hits both; a run that fails says how (its last stderr line). Usage::

    python benchmarks/archive_scale.py [--files 20 200 500 1100] [--open-files 1024] [--baseline 9d39c1e]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from archive_opens import _tree  # noqa: E402 - the baseline's tree, written as archive_opens.py writes it


def _limit(files: int) -> Callable[[], None]:
    def set_limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    return set_limit


def _measure(tree: Optional[Path], archive: Path, model: str, out: Path, open_files: int) -> dict[str, Any]:
    """One fresh run on ``tree`` (None: this one): exit code, peak RSS (MiB), wall seconds, outputs written."""
    shutil.rmtree(out, ignore_errors=True)
    root = tree or REPO
    args = [sys.executable, "-m", "pipelines.cli", "run", str(archive / "*.mp4"), "--model", model, "--imgsz", "160",
            "--max-frames", "1", "--jsonl", str(out / "{source}.jsonl"), "--quiet"]
    log = out.parent / "stderr.txt"
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_limit(open_files),
                                env={**os.environ, "PYTHONPATH": str(root)}, cwd=str(root))
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    written = len(list(out.glob("*.jsonl"))) if out.exists() else 0
    return {"exit": code, "rss_mib": usage.ru_maxrss / 1024, "wall": wall, "written": written,
            "why": lines[-1] if code and lines else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[20, 200, 500, 1100],
                        help="archive sizes (default 20 200 500 1100)")
    parser.add_argument("--open-files", type=int, default=1024, help="limit on open files, soft and hard "
                        "(default 1024)")
    parser.add_argument("--video", type=Path, default=None, help="default: the bundled bikes.mp4")
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled YOLO11n-pose .pt")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline", metavar="REV", help="also run the tree of this git revision, for ratios")
    args = parser.parse_args()
    from pipelines.assets import demo_pose_model, demo_video

    video, model = args.video or demo_video(), str(args.model or demo_pose_model())
    with tempfile.TemporaryDirectory(prefix="archive-scale-") as tmp:
        work = Path(tmp)
        trees: dict[str, Optional[Path]] = {"this tree": None}
        if args.baseline:
            trees[f"baseline {args.baseline}"] = _tree(args.baseline, Path(tempfile.mkdtemp(dir=work)))
        clip = work / f"clip{video.suffix}"
        shutil.copyfile(video, clip)
        for tree in trees.values():   # the model cache and the OS's file cache: not timed
            warm = work / "warm"
            warm.mkdir(exist_ok=True)
            if not (warm / clip.name).exists():
                os.link(clip, warm / clip.name)
            _measure(tree, warm, model, work / "out", args.open_files)
        best: dict[tuple[str, int], dict[str, Any]] = {}
        for count in args.files:
            archive = work / f"archive{count}"
            archive.mkdir()
            for i in range(count):
                os.link(clip, archive / f"c{i:05d}{clip.suffix}")
            for _ in range(args.repeat):
                for name, tree in trees.items():
                    got = _measure(tree, archive, model, work / "out", args.open_files)
                    key = (name, count)
                    if key not in best or got["wall"] < best[key]["wall"]:
                        best[key] = got
            shutil.rmtree(archive)
    print(f"hard links of {video.name}, --max-frames 1 --imgsz 160 --jsonl, ulimit -n {args.open_files}, best of "
          f"{args.repeat}, load average {os.getloadavg()[0]:.1f}")
    for count in args.files:
        print(f"{count} files:")
        for name in trees:
            got = best[(name, count)]
            state = "ok" if got["exit"] == 0 else f"exit {got['exit']}: {got['why'][:90]}"
            print(f"  {name:22s} peak RSS {got['rss_mib']:7.0f} MiB   wall {got['wall']:6.1f} s   "
                  f"outputs {got['written']:5d}   {state}")
        if len(trees) == 2:
            this, base = (best[(name, count)] for name in trees)
            print(f"  ratio baseline / this: peak RSS {base['rss_mib'] / this['rss_mib']:.2f}x, wall "
                  f"{base['wall'] / this['wall']:.2f}x" + ("" if base["exit"] == 0 else " (the baseline failed)"))


if __name__ == "__main__":
    main()

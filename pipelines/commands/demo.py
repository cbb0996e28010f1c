"""`trackstream demo`: track the bundled bikes.mp4 with the bundled YOLO11n-pose model, fully offline.

Writes an annotated video and a JSONL file into ``./trackstream-demo/`` (or ``--out-dir``) and says where;
running it again replaces them, and only them: files of those names the demo did not write are never replaced
(a folder is the demo's once it wrote there: ``MARK`` says so).
With ``--http [HOST:]PORT`` the clip plays at its own pace (like a camera) with a counting line, and the live
view is served while it plays (``docs/web.md``). ``trackstream`` with no arguments runs this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.assets import demo_pose_model, demo_video
from pipelines.commands.run import execute
from pipelines.config import build_config
from pipelines.errors import UserError
from tracker.configutil import ConfigError

DEFAULT_DIR = "trackstream-demo"
MARK = ".trackstream-demo"   # left in a folder the demo wrote into: its files there are the demo's to replace


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    parser = sub.add_parser(name, help="track the bundled demo video offline (default command)",
                            description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", default=DEFAULT_DIR, metavar="DIR",
                        help="folder for the annotated video and JSONL (default: ./trackstream-demo)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="process only N frames")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--http", default=None, metavar="[HOST:]PORT",
                        help="watch it live in a browser: play the clip at its own pace and serve the view at "
                             "http://HOST:PORT/ (HOST defaults to 127.0.0.1)")


def main(args: argparse.Namespace) -> int:
    """``args`` comes from this command's parser (``trackstream`` alone is parsed as ``trackstream demo``):
    every flag is read by its name, so a flag renamed in one place and not the other fails loudly."""
    video, model = demo_video(), demo_pose_model()
    out_dir = Path(args.out_dir)
    max_frames: int | None = args.max_frames
    if max_frames is not None and max_frames < 1:
        raise ConfigError("--max-frames", f"must be >= 1, got {max_frames}")
    listen: str | None = args.http
    outputs = (out_dir / "bikes_tracked.mp4", out_dir / "bikes.jsonl")
    if args.out_dir != DEFAULT_DIR and not (out_dir / MARK).is_file():   # a folder of the user's
        for path in outputs:
            if path.exists() and path.is_file() and path.stat().st_size > 0:
                raise UserError(f"--out-dir {args.out_dir}: {path.name} exists and was not written by trackstream "
                                "demo; refusing to replace it (choose another --out-dir)")
    data = {
        "sources": [{"url": str(video), "id": "bikes"}],
        "detector": {"model": str(model)},
        # the demo's own folder: running it again replaces what it wrote there before
        "output": {"video": str(outputs[0]), "jsonl": str(outputs[1]), "overwrite": True},
        "metrics": {"log_interval": 0},  # a short clip: the progress bar and the summary say enough
    }
    if listen is not None:  # a view to watch: the clip plays like a camera, cyclists cross a counting line
        data.update(source={"realtime": True}, http={"listen": listen},
                    lines=[{"name": "crossing", "points": [[400, 0], [400, 300]]}])
    config = build_config(data)
    print(f"trackstream demo: tracking {video.name} with {model.name} (offline)", file=sys.stderr)
    if config.http.enabled:
        host = "127.0.0.1" if config.http.host in ("0.0.0.0", "::") else config.http.host
        print(f"trackstream demo: watch it live at http://{host}:{config.http.port}/ (the clip plays for about "
              "10 s once the model is loaded)", file=sys.stderr)
    else:
        print("trackstream demo: to watch it live in a browser, run: trackstream demo --http 8080", file=sys.stderr)
    code = execute(config, max_frames=max_frames, quiet=bool(args.quiet))
    if out_dir.is_dir():
        (out_dir / MARK).touch()
    print(f"trackstream demo: annotated video and JSONL are in {out_dir.resolve()}/", file=sys.stderr)
    return code

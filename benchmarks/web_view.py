"""What the live web view costs a run: frames/s without ``--http``, and with it and 0, 1 or 5 viewers.

Every mode processes the same clip with the same model (loaded once), in the same process, as fast as the
pipeline goes (a file, not realtime); a viewer is an MJPEG client (``/video/ID``) in its own process, as a
browser would be, reading every picture the server sends (at most ``http.max_fps`` a second). Usage::

    python benchmarks/web_view.py [--video FILE] [--model FILE] [--imgsz 320] [--frames N] [--repeat 2]

Prints, per mode, frames/s and the pipeline process's CPU time per frame (which includes the server's
drawing and encoding; the viewers' own processes are not counted), each as the median over rounds of its
ratio to the run without ``--http`` in the same round, and the pictures each viewer got. Rounds alternate
the modes, so a burst of load from elsewhere on a shared machine moves one round, not a ratio.
Targets: 0 viewers unchanged (within noise), 1 viewer <= 5% slower.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRACKSTREAM_DATA", REPO.parent / "shared" / "data"))
DEFAULT_VIDEO = DATA / "videos" / "people-walking_1280x720.mp4"
MODES = (("no --http", None), ("--http, 0 viewers", 0), ("--http, 1 viewer", 1), ("--http, 5 viewers", 5))


def viewer(port: int, path: str) -> None:
    """An MJPEG client that reads every picture it is sent until stdin closes; prints how many it got."""
    stop = threading.Event()
    pictures = 0

    def wait_for_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_stdin, daemon=True).start()
    while not stop.is_set():   # the viewer sink exists once the source's sinks are open
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            response = conn.getresponse()
            if response.status != 200:
                conn.close()
                time.sleep(0.02)
                continue
            while not stop.is_set():
                line = response.fp.readline()
                if not line:
                    break
                if line.startswith(b"Content-Length:"):
                    response.fp.readline()  # X-Frame-Seq
                    response.fp.readline()  # blank line
                    response.fp.read(int(line.split(b":")[1]))
                    pictures += 1
            conn.close()
        except OSError:
            time.sleep(0.02)
    print(pictures, flush=True)


def start_viewers(count: int, port: int, path: str) -> list[subprocess.Popen[str]]:
    return [subprocess.Popen([sys.executable, __file__, "--viewer", f"{port}{path}"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True) for _ in range(count)]


def stop_viewers(viewers: list[subprocess.Popen[str]]) -> list[int]:
    got = []
    for proc in viewers:
        out, _ = proc.communicate("", timeout=10)
        got.append(int(out.strip() or 0))
    return got


def one_run(video: str, detector: object, imgsz: int, frames: Optional[int],
            viewers: Optional[int]) -> tuple[float, float, list[int]]:
    from pipelines.engine.launch import open_sources
    from pipelines.config import build_config
    from pipelines.engine.runner import Runner
    from pipelines.web.server import WebView
    from pipelines.web.status import runner_views
    from tests.conftest import free_port

    port = free_port()
    data: dict[str, object] = {"sources": [{"url": video, "id": "clip"}], "detector": {"imgsz": imgsz}}
    if viewers is not None:
        data["http"] = {"listen": f"127.0.0.1:{port}"}
    config = build_config(data)
    runner = Runner(open_sources(config), detector, config, max_frames=frames)  # type: ignore[arg-type]
    web = WebView(config.http, runner_views(runner)).start() if viewers is not None else None
    clients = start_viewers(viewers or 0, port, "/video/clip")
    time.sleep(0.5 if clients else 0.0)   # the viewers' interpreters start before the clock does
    start, cpu = time.perf_counter(), time.process_time()
    stats = runner.run()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if web is not None:
        web.stop()
    frames = stats[0].frames_out
    return frames / elapsed, cpu / frames * 1000, stop_viewers(clients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--model", default=None, help="weights (default: the bundled YOLO11n-pose)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default: the whole clip)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best of each mode is kept")
    parser.add_argument("--viewer", metavar="PORT/PATH", help=argparse.SUPPRESS)  # a viewer process
    args = parser.parse_args()
    if args.viewer:
        port, _, path = args.viewer.partition("/")
        viewer(int(port), "/" + path)
        return
    import logging

    logging.getLogger("trackstream.web").setLevel(logging.ERROR)  # no "the view is open" per run
    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector

    video = args.video
    if not Path(video).is_file():
        from pipelines.assets import demo_video

        video = str(demo_video())
        print(f"({args.video} not found: using {video})")
    model = args.model
    if model is None:
        from pipelines.assets import demo_pose_model

        model = str(demo_pose_model())
    detector = Detector(DetectorConfig(imgsz=args.imgsz), model)
    fps: dict[str, list[float]] = {name: [] for name, _ in MODES}
    cpu: dict[str, list[float]] = {name: [] for name, _ in MODES}
    pictures: dict[str, list[int]] = {}
    one_run(video, detector, args.imgsz, min(args.frames or 30, 30), None)  # warm up caches and threads
    for round_ in range(args.repeat):
        for name, viewers in MODES:
            rate, cpu_ms, got = one_run(video, detector, args.imgsz, args.frames, viewers)
            fps[name].append(rate)
            cpu[name].append(cpu_ms)
            pictures[name] = got
            print(f"round {round_ + 1}: {name:20s} {rate:6.1f} frames/s {cpu_ms:6.1f} CPU ms/frame"
                  + (f"  pictures per viewer {got}" if got else ""), flush=True)
    base = MODES[0][0]
    print(f"\n{Path(video).name}, {Path(model).name} imgsz {args.imgsz}, {detector.workers} detector workers, "
          f"{os.cpu_count()} CPUs; {args.repeat} rounds; median of the per-round ratios to '{base}'")
    for name, _ in MODES:
        speed = statistics.median(f / b for f, b in zip(fps[name], fps[base]))
        cost = statistics.median(c / b for c, b in zip(cpu[name], cpu[base]))
        print(f"{name:20s} {statistics.median(fps[name]):6.1f} frames/s ({speed:6.1%})  "
              f"{statistics.median(cpu[name]):5.1f} CPU ms/frame ({cost:6.1%})"
              + (f"  pictures per viewer (last round): {pictures[name]}" if pictures[name] else ""))


if __name__ == "__main__":
    main()

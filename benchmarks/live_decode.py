"""CPU a live camera costs before its frames reach the detector: decode, replay fingerprint, BGR conversion.

A live source decodes every frame (it must), but hands on only the newest one when the detector asks: with
a 30 fps camera and a detector taking a few frames per second, most decoded frames are dropped. What a
dropped frame costs is therefore what matters per camera. Measured on the first ``--frames`` frames of a
720p clip, each step timed on its own (CPU time of this thread, best of ``--repeat`` rounds):

- decode (PyAV, software, one thread);
- fingerprint as it was (``frame.reformat`` to a 16 x 16 grey thumbnail, then a hash) and as it is now
  (``pipelines/sources/replay.frame_key``: a 32 x 32 grid of luma bytes read in place, then a hash);
- BGR conversion as it was (``frame.to_ndarray(format="bgr24")``: a scaler made for every frame, with a pool
  of FFmpeg threads) and as it is now (``pipelines/sources/rotation.ToBgr``: the stream's one scaler, one
  thread).

CPU time is the whole process's, so the work of FFmpeg's threads counts.

Then per camera at ``--camera-fps`` with the detector taking ``--taken-fps`` of its frames: CPU per second
of video (ms, = thousandths of a core) for every frame converted and thumbnailed (the naive reader), for the
reader before this change (only taken frames converted, every frame thumbnailed) and now. Usage::

    python benchmarks/live_decode.py [--video FILE] [--frames 150] [--camera-fps 30] [--taken-fps 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRACKSTREAM_DATA", REPO.parent / "shared" / "data"))


def thumbnail_key(frame: Any, stream_time: float | None) -> tuple[int | None, bytes]:
    """The fingerprint as it was before: a 16 x 16 grey thumbnail scaled by swscale, hashed."""
    thumb = frame.reformat(width=16, height=16, format="gray8").to_ndarray()
    return (round(stream_time * 1000) if stream_time is not None else None,
            hashlib.blake2b(thumb.tobytes(), digest_size=8).digest())


def _cpu_per_frame(step: Callable[[Any], object], frames: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for frame in frames:
            step(frame)
        best = min(best, (time.process_time() - start) / len(frames))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DATA / "videos" / "people-walking_1280x720.mp4")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--camera-fps", type=float, default=30.0)
    parser.add_argument("--taken-fps", type=float, default=2.0, help="frames per second the detector takes")
    args = parser.parse_args()
    if not args.video.exists():
        sys.exit(f"missing {args.video} (set TRACKSTREAM_DATA to the shared data folder)")
    sys.path.insert(0, str(REPO))
    import av

    from pipelines.sources.replay import frame_key
    from pipelines.sources.rotation import ToBgr

    def decoded() -> list[Any]:
        with av.open(str(args.video)) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.codec_context.thread_count = "SLICE", 1
            return [f for _, f in zip(range(args.frames), container.decode(stream))]

    decode_best = float("inf")
    frames: list[Any] = []
    for _ in range(args.repeat):
        start = time.process_time()
        frames = decoded()
        decode_best = min(decode_best, (time.process_time() - start) / len(frames))
    old_key = _cpu_per_frame(lambda f: thumbnail_key(f, f.time), frames, args.repeat)
    new_key = _cpu_per_frame(lambda f: frame_key(f, f.time), frames, args.repeat)
    # freshly decoded frames for each round: a frame keeps the scaler its first conversion made
    old_bgr = min(_cpu_per_frame(lambda f: f.to_ndarray(format="bgr24"), decoded(), 1) for _ in range(args.repeat))
    bgr = min(_cpu_per_frame(ToBgr(), decoded(), 1) for _ in range(args.repeat))
    w, h = frames[0].width, frames[0].height
    print(f"{args.video.name} ({w}x{h}), {len(frames)} frames, CPU ms per frame (best of {args.repeat}):")
    print(f"  decode {1000 * decode_best:.2f}   thumbnail fingerprint {1000 * old_key:.3f}   "
          f"sampled fingerprint {1000 * new_key:.3f} (x{old_key / new_key:.0f} cheaper)   "
          f"BGR conversion {1000 * old_bgr:.2f} as it was, {1000 * bgr:.2f} now (x{old_bgr / bgr:.1f} cheaper)")
    fps, taken = args.camera_fps, min(args.taken_fps, args.camera_fps)
    naive = fps * (decode_best + old_key + old_bgr)
    before = fps * (decode_best + old_key) + taken * old_bgr
    now = fps * (decode_best + new_key) + taken * bgr
    print(f"per camera at {fps:g} fps, detector taking {taken:g} frames/s (CPU ms per second of video):")
    print(f"  every frame converted: {1000 * naive:.0f}   before (taken frames converted by a scaler each, "
          f"every frame thumbnailed): {1000 * before:.0f}   now: {1000 * now:.0f}   "
          f"(now / every frame converted: {now / naive:.2f}, now / before: {now / before:.2f})")
    print(f"  cameras per core on decoding alone: {1 / now:.1f} now, {1 / naive:.1f} if every frame were converted")


if __name__ == "__main__":
    main()

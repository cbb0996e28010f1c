"""A real RTSP server for tests and benchmarks: GStreamer's gst-rtsp-server serving a looping H.264 video.

Run it with the SYSTEM python (``/usr/bin/python3``), which has ``python3-gi`` and the GStreamer typelibs; the
project's virtual environment does not. Debian packages it needs::

    python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav

What it serves: the frames of ``--video`` (decoded once into memory) in a loop, at the video's real frame rate,
re-encoded with x264 (zero-latency tuning, one key frame per second so a client that (re)connects gets a picture
within a second). Every client gets its own stream starting at the first frame.

Each frame carries a **wall-clock stamp**: the first 2 x 24 blocks of 16x16 pixels in the top-left corner encode,
as black/white luma blocks, the ``time.time()`` in milliseconds at which the frame was handed to the encoder
(48 bits, most significant first). ``read_stamp(image)`` (importable from the venv: it needs numpy only when
called) decodes it, so a client can measure how old a frame is when its result comes out -- the honest
camera-to-output latency, including encoding, network, decoding and any queue in the client.

With ``--encode-once LOGDIR`` the server encodes the loop once at start instead of once per frame served, as a
real camera encodes on its own chip: a benchmark on a small machine then does not give the server's x264 the
cores it measures. A wall-clock stamp cannot be encoded in advance, so each frame carries its **index** in the
loop instead (``read_index``) and the server appends ``<index> <milliseconds>`` to ``LOGDIR/<mount>.log`` (the
mount without slashes) as it hands each frame to the network; the latest line for an index, before the frame
came out, gives the frame's capture time.

Once listening it prints ``READY <port>`` on stdout. With ``--user``/``--password`` every mount requires HTTP basic
authentication (``rtsp://user:password@host:port/mount``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

STAMP_BITS = 48
STAMP_BLOCK = 16
STAMP_COLUMNS = 24          # blocks per row; 2 rows -> 48 bits in a 384 x 32 pixel corner
LUMA_ZERO, LUMA_ONE = 16, 235


def read_stamp(image: "object") -> float | None:
    """Wall-clock seconds encoded in a served frame, from a uint8 (H, W, 3) BGR image or its (H, W) luma plane
    (``VideoFrame.luma``: read without converting the frame); None if unreadable."""
    value = read_index(image)
    return None if value is None else stamp_seconds(value)


def stamp_seconds(value: int) -> float | None:
    """The wall-clock seconds a stamp's number (milliseconds) stands for; None when not within an hour of now
    (a misread corner)."""
    seconds = value / 1000.0
    return seconds if abs(seconds - time.time()) < 3600 else None


def read_index(image: "object") -> int | None:
    """The 48-bit number in a served frame's corner: the frame's index in the loop with ``--encode-once``
    (``read_stamp`` reads it as a wall-clock time otherwise); None if the picture is too small."""
    import numpy as np

    img = np.asarray(image)
    rows = STAMP_BITS // STAMP_COLUMNS
    if img.ndim not in (2, 3) or img.shape[0] < rows * STAMP_BLOCK or img.shape[1] < STAMP_COLUMNS * STAMP_BLOCK:
        return None
    corner = img[: rows * STAMP_BLOCK, : STAMP_COLUMNS * STAMP_BLOCK].astype(np.float64)
    gray = corner.mean(axis=2) if img.ndim == 3 else corner
    half, quarter = STAMP_BLOCK // 2, STAMP_BLOCK // 4
    value = 0
    for bit in range(STAMP_BITS):
        r, c = divmod(bit, STAMP_COLUMNS)
        y, x = r * STAMP_BLOCK + half, c * STAMP_BLOCK + half
        level = float(gray[y - quarter: y + quarter, x - quarter: x + quarter].mean())
        value = (value << 1) | int(level > (LUMA_ZERO + LUMA_ONE) / 2)
    return value


def _stamp(frame: bytes, width: int, height: int, millis: int) -> bytes:
    """A copy of one I420 frame with ``millis`` written into the top-left blocks (see module docstring)."""
    out = bytearray(frame)
    rows = STAMP_BITS // STAMP_COLUMNS
    for r in range(rows):
        pattern = bytearray()
        for c in range(STAMP_COLUMNS):
            bit = (millis >> (STAMP_BITS - 1 - (r * STAMP_COLUMNS + c))) & 1
            pattern += bytes([LUMA_ONE if bit else LUMA_ZERO]) * STAMP_BLOCK
        for y in range(r * STAMP_BLOCK, (r + 1) * STAMP_BLOCK):
            out[y * width: y * width + len(pattern)] = pattern
    chroma_w, chroma_rows, chroma_cols = width // 2, rows * STAMP_BLOCK // 2, STAMP_COLUMNS * STAMP_BLOCK // 2
    for plane_start in (width * height, width * height + chroma_w * (height // 2)):
        for y in range(chroma_rows):
            start = plane_start + y * chroma_w
            out[start: start + chroma_cols] = b"\x80" * chroma_cols
    return bytes(out)


def _decode_all(Gst: "object", path: str) -> tuple[list[bytes], int, int, float]:
    """Every frame of ``path`` as I420 bytes, with width, height and frame rate."""
    pipeline = Gst.parse_launch(  # type: ignore[attr-defined]
        f'filesrc location="{path}" ! decodebin ! videoconvert ! video/x-raw,format=I420 '
        "! appsink name=sink sync=false")
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)  # type: ignore[attr-defined]
    frames: list[bytes] = []
    width = height = 0
    fps = 25.0
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        caps = sample.get_caps().get_structure(0)
        width, height = caps.get_value("width"), caps.get_value("height")
        ok, num, den = caps.get_fraction("framerate")
        if ok and num > 0 and den > 0:
            fps = num / den
        buf = sample.get_buffer()
        frames.append(buf.extract_dup(0, buf.get_size()))
    pipeline.set_state(Gst.State.NULL)  # type: ignore[attr-defined]
    if not frames:
        raise SystemExit(f"rtsp_server: no frames decoded from {path}")
    return frames, width, height, fps


class _Pacer:
    """Pushes one buffer per frame into one client's appsrc at the video's rate, looping, until ``stop``; what
    each buffer holds, whether frames may be skipped and what a not-yet-playing pipeline means is the
    subclass's."""

    may_skip = True   # fell behind (client blocked): skip frames like a camera does

    def __init__(self, Gst: "object", appsrc: "object", count: int, fps: float) -> None:
        self.Gst, self.appsrc, self.count, self.period = Gst, appsrc, count, 1.0 / fps
        self.start = time.monotonic()
        self.sent = 0
        self.stop = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def buffer(self, index: int, millis: int) -> bytes:
        raise NotImplementedError

    def not_playing(self) -> None:
        """The client's pipeline is not playing yet (or no longer): wait for it rather than give up, else a
        feeder that starts before its pipeline would never send anything."""
        self.stop.wait(0.01)

    def pushed(self, index: int, millis: int) -> None:
        """Frame ``index`` went out at ``millis``."""

    def run(self) -> None:
        Gst = self.Gst
        while not self.stop.is_set():
            delay = self.start + self.sent * self.period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self.period and self.may_skip:
                self.sent += int(-delay / self.period)
                continue
            index, millis = self.sent % self.count, int(time.time() * 1000)
            ret = self.appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(self.buffer(index, millis)))  # type: ignore[attr-defined]
            if ret == Gst.FlowReturn.FLUSHING:  # type: ignore[attr-defined]
                self.not_playing()
                continue
            if ret != Gst.FlowReturn.OK:  # type: ignore[attr-defined]
                return
            self.pushed(index, millis)
            self.sent += 1


class _Feeder(_Pacer):
    """Raw frames, each stamped with the wall-clock time it is handed to the encoder."""

    def __init__(self, Gst: "object", appsrc: "object", frames: list[bytes], width: int, height: int,
                 fps: float) -> None:
        self.frames, self.width, self.height = frames, width, height
        super().__init__(Gst, appsrc, len(frames), fps)

    def buffer(self, index: int, millis: int) -> bytes:
        return _stamp(self.frames[index], self.width, self.height, millis)


X264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={rate} bitrate=1500 threads=1"
H264_CAPS = "video/x-h264,profile=constrained-baseline"


def _encode_loop(Gst: "object", frames: list[bytes], width: int, height: int, rate: int) -> list[bytes]:
    """Every frame, stamped with its index, encoded once: one H.264 access unit (byte-stream) per frame."""
    pipeline = Gst.parse_launch(  # type: ignore[attr-defined]
        f"appsrc name=src format=time block=true max-bytes={len(frames[0]) * 4} "
        f"caps=video/x-raw,format=I420,width={width},height={height},framerate={rate}/1 "
        f"! {X264.format(rate=rate)} ! {H264_CAPS},stream-format=byte-stream,alignment=au "
        "! appsink name=sink sync=false")
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)  # type: ignore[attr-defined]

    def push() -> None:
        for i, raw in enumerate(frames):
            buf = Gst.Buffer.new_wrapped(_stamp(raw, width, height, i))  # type: ignore[attr-defined]
            buf.pts = buf.dts = i * Gst.SECOND // rate  # type: ignore[attr-defined]
            buf.duration = Gst.SECOND // rate  # type: ignore[attr-defined]
            src.emit("push-buffer", buf)
        src.emit("end-of-stream")

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    units: list[bytes] = []
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        units.append(buf.extract_dup(0, buf.get_size()))
    pusher.join()
    pipeline.set_state(Gst.State.NULL)  # type: ignore[attr-defined]
    if len(units) != len(frames):
        raise SystemExit(f"rtsp_server: encoded {len(units)} access units from {len(frames)} frames")
    return units


class _EncodedFeeder(_Pacer):
    """The access units encoded once, looping from the first (a key frame), each logged as it goes out. It
    never skips a unit: a later one would not decode without it."""

    may_skip = False

    def __init__(self, Gst: "object", appsrc: "object", units: list[bytes], fps: float, log_path: str) -> None:
        self.units = units
        self.log = open(log_path, "a", buffering=1)
        super().__init__(Gst, appsrc, len(units), fps)

    def buffer(self, index: int, millis: int) -> bytes:
        return self.units[index]

    def not_playing(self) -> None:
        super().not_playing()
        self.start, self.sent = time.monotonic(), 0   # start again from the key frame when it plays

    def pushed(self, index: int, millis: int) -> None:
        self.log.write(f"{index} {millis}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", required=True, help="video file to serve in a loop")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", default=None, help="path to serve (repeatable; /stream)")
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--fps", type=float, default=None, help="serve at this rate instead of the file's")
    parser.add_argument("--encode-once", default=None, metavar="LOGDIR",
                        help="encode the loop once, stamp frame indices and log when each went out (see above)")
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    frames, width, height, fps = _decode_all(Gst, args.video)
    fps = args.fps or fps
    rate = max(1, round(fps))
    units = _encode_loop(Gst, frames, width, height, rate) if args.encode_once else []
    if units:
        launch = (
            f"( appsrc name=src is-live=true format=time do-timestamp=true block=false "
            f"caps={H264_CAPS},stream-format=byte-stream,alignment=au,width={width},height={height},"
            f"framerate={rate}/1 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )")
    else:
        launch = (
            f"( appsrc name=src is-live=true format=time do-timestamp=true block=false max-bytes={len(frames[0]) * 2} "
            f"caps=video/x-raw,format=I420,width={width},height={height},framerate={rate}/1 "
            f"! queue max-size-buffers=2 leaky=downstream "
            f"! {X264.format(rate=rate)} ! {H264_CAPS} ! rtph264pay name=pay0 pt=96 config-interval=-1 )")

    server = GstRtspServer.RTSPServer()
    server.set_service(str(args.port))
    server.get_thread_pool().set_max_threads(16)  # a stalled client must not hold up the others
    mounts = server.get_mount_points()
    feeders: list[_Feeder] = []

    def on_configure(_factory: object, media: object, mount: str) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")  # type: ignore[attr-defined]
        feeder: _Pacer
        if units:
            log_path = f"{args.encode_once}/{mount.strip('/').replace('/', '_')}.log"
            feeder = _EncodedFeeder(Gst, appsrc, units, fps, log_path)
        else:
            feeder = _Feeder(Gst, appsrc, frames, width, height, fps)
        feeders.append(feeder)
        media.connect("unprepared", lambda *_: feeder.stop.set())  # type: ignore[attr-defined]

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
    for mount in args.mount or ["/stream"]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(False)
        factory.connect("media-configure", on_configure, mount)
        if args.user:
            factory.add_role_from_structure(Gst.Structure.from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
        mounts.add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on port {args.port}", file=sys.stderr)
        return 1
    print(f"READY {args.port}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

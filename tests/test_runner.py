"""Runner: stage failures reach the caller as one clean error, and what was processed is still written.

A detector that fails mid-stream (e.g. a GPU running out of memory) cannot be produced for real on a CPU
test machine, so these tests inject that one fault with a small stand-in detector; the source, tracker
and sinks are the real ones.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from pipelines.config import build_config
from pipelines.engine.runner import PipelineError, Runner
from pipelines.sources import open_source
from tracker.types import Detections


class FaultyDetector:
    """Finds one fixed box per frame and reports ``invalid`` invalid rows dropped per call; raises on call
    number ``fail_on`` (None = never)."""

    class_names = {0: "person"}
    workers = 1
    device = "cpu"

    def __init__(self, fail_on: int | None = None, delay: float = 0.0, invalid: int = 0) -> None:
        self.fail_on, self.delay, self.invalid, self.calls = fail_on, delay, invalid, 0
        self.batches: list[int] = []

    def detect_counted(self, frames):
        self.calls += 1
        self.batches.append(len(frames))
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("CUDA out of memory\nsecond line of a long report")
        if self.delay:
            threading.Event().wait(self.delay)
        box = np.array([[100, 50, 200, 250]], np.float32)
        dets = [Detections(box + f.index, np.array([0.9], np.float32), np.array([0])) for f in frames]
        return dets, self.invalid


class TwoWorkerDetector(FaultyDetector):
    """Runs two batches at once, like ``Detector`` on a 2-core CPU; the batch starting at frame
    ``slow_frame`` takes longest, so a later batch finishes first. A stand-in for the model because real
    inference times cannot be made to finish out of order on demand."""

    workers = 2

    def __init__(self, slow_frame: int = 0, fail_frame: int | None = None) -> None:
        super().__init__()
        self.slow_frame, self.fail_frame = slow_frame, fail_frame
        self.running = self.most_running = 0
        self.lock = threading.Lock()

    def detect_counted(self, frames):
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            threading.Event().wait(0.3 if frames[0].index == self.slow_frame else 0.02)
            if frames[0].index == self.fail_frame:
                raise RuntimeError("CUDA out of memory")
            return super().detect_counted(frames)
        finally:
            with self.lock:
                self.running -= 1


def make_runner(tmp_path, bikes_video, detector, batch=4, **kwargs):
    config = build_config({"sources": [{"url": str(bikes_video)}], "detector": {"batch": batch},
                           "output": {"jsonl": str(tmp_path / "out.jsonl"), "video": str(tmp_path / "out.mp4")}})
    settings = config.sources[0]
    return Runner([(settings, open_source(settings))], detector, config, **kwargs)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_detector_failure_is_one_clean_error_and_earlier_frames_are_kept(tmp_path, bikes_video):
    runner = make_runner(tmp_path, bikes_video, FaultyDetector(fail_on=3))
    with pytest.raises(PipelineError) as info:
        runner.run()
    assert str(info.value) == "detector stage failed: RuntimeError: CUDA out of memory"
    records = lines(tmp_path / "out.jsonl")
    assert [r["frame_index"] for r in records] == list(range(8))   # the two batches before the failure
    import av

    with av.open(str(tmp_path / "out.mp4")) as container:          # the video was finalised
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_file_batches_are_full_and_never_depend_on_timing(tmp_path, bikes_video):
    detector = FaultyDetector(invalid=1)
    stats = make_runner(tmp_path, bikes_video, detector, batch=4, max_frames=30).run()
    assert detector.batches == [4] * 7 + [2]
    assert stats[0].frames_out == 30 and stats[0].tracks == 1
    assert stats[0].invalid_detections == 8           # what the detector dropped reaches the summary


def test_stop_from_another_thread_drains_and_closes(tmp_path, bikes_video):
    runner = make_runner(tmp_path, bikes_video, FaultyDetector(delay=0.02), batch=2)
    timer = threading.Timer(0.5, runner.stop)
    timer.start()
    stats = runner.run()
    timer.join()
    records = lines(tmp_path / "out.jsonl")
    assert 0 < len(records) == stats[0].frames_out < 250
    assert [r["frame_index"] for r in records] == list(range(len(records)))


def _camera_copies(tmp_path, bikes_video, n):
    copies = []
    for i in range(n):
        path = tmp_path / f"cam{i}.mp4"
        path.write_bytes(bikes_video.read_bytes())
        copies.append(path)
    return copies


def test_more_cameras_than_batch_slots_all_get_their_turn(tmp_path, bikes_video):
    """Three files played like cameras (latest-frame, real rate) into batches of 2: none is starved."""
    copies = _camera_copies(tmp_path, bikes_video, 3)
    config = build_config({"sources": [{"url": str(p), "realtime": True} for p in copies],
                           "detector": {"batch": 2}, "output": {"jsonl": str(tmp_path / "{source}.jsonl")}})
    pairs = [(e, open_source(e)) for e in config.sources]
    stats = Runner(pairs, FaultyDetector(delay=0.05), config, max_frames=25).run()
    processed = {s.source_id: s.frames_out for s in stats}
    assert all(n >= 5 for n in processed.values()), processed
    assert all(s.dropped > 0 for s in stats)          # 75 frames/s offered, about 40/s taken


class CudaReportingDetector(FaultyDetector):
    """Reports a CUDA device: there is no GPU on this machine, and what is tested is only how the runner
    sizes its batches from the device a detector reports."""

    device = "cuda:0"


@pytest.mark.parametrize("detector, most", [
    (CudaReportingDetector(delay=0.1), 6),   # on CUDA one call takes the newest frame of all six cameras
    (FaultyDetector(delay=0.1), 4),          # on a CPU the automatic batch stays 4
])
def test_automatic_batch_follows_the_live_streams_on_cuda(tmp_path, bikes_video, detector, most):
    copies = _camera_copies(tmp_path, bikes_video, 6)
    config = build_config({"sources": [{"url": str(p), "realtime": True} for p in copies],
                           "output": {"jsonl": str(tmp_path / "{source}.jsonl")}})
    assert config.detector.batch is None
    pairs = [(e, open_source(e)) for e in config.sources]
    stats = Runner(pairs, detector, config, max_frames=40).run()
    assert max(detector.batches) == most and all(s.frames_out > 0 for s in stats)


@pytest.mark.parametrize("schedule, most", [("interval:2", 1), ("every", 4)])
def test_scheduled_cameras_on_a_cpu_are_detected_one_per_call(tmp_path, bikes_video, schedule, most):
    """With a schedule, every frame a camera shows after a detected one waits for that call: four cameras in one
    CPU call made each wait four inferences. ``every`` cameras keep the batch of 4."""
    copies = _camera_copies(tmp_path, bikes_video, 6)
    config = build_config({"sources": [{"url": str(p), "realtime": True} for p in copies],
                           "detector": {"schedule": schedule}})
    detector = FaultyDetector(delay=0.1)
    stats = Runner([(e, open_source(e)) for e in config.sources], detector, config, max_frames=40).run()
    assert max(detector.batches) == most and all(s.frames_detected > 0 for s in stats)


def test_automatic_batch_of_a_file_on_cuda_is_16_frames(tmp_path, bikes_video):
    detector = CudaReportingDetector()
    make_runner(tmp_path, bikes_video, detector, batch=None, max_frames=40).run()
    assert detector.batches == [16, 16, 8]


def test_two_workers_overlap_and_results_keep_frame_order(tmp_path, bikes_video):
    detector = TwoWorkerDetector(slow_frame=8)
    stats = make_runner(tmp_path, bikes_video, detector, batch=4, max_frames=40).run()
    assert detector.most_running == 2                    # two batches were detected at once
    records = lines(tmp_path / "out.jsonl")
    assert [r["frame_index"] for r in records] == list(range(40)) and stats[0].frames_out == 40
    assert {t["id"] for r in records for t in r["tracks"]} == {1}   # one object, one ID: tracked in order


def test_two_workers_failure_keeps_every_frame_before_the_failed_batch(tmp_path, bikes_video):
    runner = make_runner(tmp_path, bikes_video, TwoWorkerDetector(slow_frame=4, fail_frame=8), batch=4)
    with pytest.raises(PipelineError, match="^detector stage failed: RuntimeError: CUDA out of memory$"):
        runner.run()
    records = lines(tmp_path / "out.jsonl")
    assert [r["frame_index"] for r in records] == list(range(8))  # later batches detected meanwhile are not
    import av

    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 8


def test_a_source_that_ends_early_keeps_its_own_rate(tmp_path, bikes_video):
    """A 1 s clip run beside a 10 s one was reported at a tenth of its rate: its fps (summary, progress, web
    view) divided its frames by the whole run's time. Its clock now stops when its stream ends."""
    from fractions import Fraction

    import av

    from pipelines.engine.progress import summary_lines

    short = tmp_path / "short.mp4"
    with av.open(str(bikes_video)) as inp, av.open(str(short), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 25:
                break
            if i == 0:
                stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    config = build_config({"sources": [{"url": str(short), "id": "short"}, {"url": str(bikes_video), "id": "long"}],
                           "detector": {"batch": 1}})
    pairs = [(e, open_source(e)) for e in config.sources]
    stats = {s.source_id: s for s in Runner(pairs, FaultyDetector(delay=0.01), config).run()}
    assert stats["short"].frames_out == 25 and stats["long"].frames_out == 250
    assert stats["short"].ended and stats["long"].ended
    assert stats["short"].elapsed_s < 0.5 * stats["long"].elapsed_s      # it stopped when its stream ended
    assert stats["short"].fps > 0.5 * stats["long"].fps                  # was 0.1x: 25 frames over the long run
    [line] = [x for x in summary_lines(list(stats.values()), [], 99.0) if x.startswith("short:")]
    assert f"in {stats['short'].elapsed_s:.1f} s" in line


def test_a_status_ahead_of_a_file_s_frames_never_cuts_its_batch(bikes_video):
    """CI once saw batches [3, 16, 16, 5] instead of [16, 16, 8]: the detector found the stream's start status at
    the head of the inbox while only 3 frames stood behind it, and took them with it."""
    import time

    from pipelines.engine.inbox import Inbox
    from pipelines.engine.stats import SourceStats
    from pipelines.frames import StatusKind, StreamStatus
    from tests.conftest import frames_at

    inbox = Inbox(threading.Condition(), capacity=32, latest=False, stats=SourceStats("bikes"))
    frames = frames_at(bikes_video, range(16))
    with inbox._cond:
        inbox.put(StreamStatus(StatusKind.STARTED, "bikes", time.time()), lambda: False)
        for frame in frames[:3]:
            inbox.put(frame, lambda: False)
        assert inbox.ready(16)                                     # the status goes on at once ...
        assert [type(i).__name__ for i in inbox.take(16)] == ["StreamStatus"]   # ... alone
        assert not inbox.ready(16)
        for frame in frames[3:]:
            inbox.put(frame, lambda: False)
        assert [i.index for i in inbox.take(16)] == list(range(16))  # the frames in one full batch


class SlowOnceForA(FaultyDetector):
    """Two workers; the first call with a frame of camera ``a`` takes 1 s (a stand-in: a slow call cannot be
    made on demand with the real model) and measures how far camera ``b`` got meanwhile."""

    workers = 2

    def __init__(self) -> None:
        super().__init__()
        self.b_stats = None
        self.slowed = False
        self.b_progress: int | None = None

    def detect_counted(self, frames):
        if not self.slowed and any(f.source_id == "a" for f in frames) and self.b_stats is not None:
            self.slowed = True
            before = self.b_stats.frames_out
            threading.Event().wait(1.0)
            self.b_progress = self.b_stats.frames_out - before
        return super().detect_counted(frames)


def test_a_camera_is_not_held_up_by_another_camera_s_detection(tmp_path, bikes_video):
    """Results went to processing in the global order of detector calls: while one camera's call ran long, every
    other camera's frames waited behind it, detected or predicted. Each camera now waits only for its own."""
    copies = _camera_copies(tmp_path, bikes_video, 2)
    config = build_config({"sources": [{"url": str(p), "id": name, "realtime": True}
                                       for name, p in zip("ab", copies)],
                           "detector": {"schedule": "interval:5"}})
    detector = SlowOnceForA()
    runner = Runner([(e, open_source(e)) for e in config.sources], detector, config, max_frames=150)
    detector.b_stats = next(lane.stats for lane in runner.lanes if lane.settings.id == "b")
    stats = {s.source_id: s for s in runner.run()}
    assert detector.b_progress is not None and detector.b_progress >= 10, detector.b_progress  # ~25 frames/s
    assert stats["a"].frames_out > 0 and stats["b"].frames_out > 0


def test_interval_1_runs_as_every(tmp_path, bikes_video):
    """``interval:1`` detects every frame, as ``every`` does, but ran a third slower: it was treated as a
    schedule that waits for each detection's plan, one frame per call on one detector copy."""
    batches = {}
    for schedule in ("every", "interval:1"):
        detector = FaultyDetector()
        config = build_config({"sources": [{"url": str(bikes_video)}], "detector": {"batch": 4, "schedule": schedule},
                               "output": {"jsonl": str(tmp_path / f"{schedule[:5]}.jsonl")}})
        settings = config.sources[0]
        Runner([(settings, open_source(settings))], detector, config, max_frames=40).run()
        batches[schedule] = detector.batches
    assert batches["interval:1"] == batches["every"] == [4] * 10
    every, interval = lines(tmp_path / "every.jsonl"), lines(tmp_path / "inter.jsonl")
    assert [r["tracks"] for r in interval] == [r["tracks"] for r in every] and all(r["detected"] for r in interval)


class FailsWhileAnEarlierBatchRuns(FaultyDetector):
    """Three workers; two files ``a`` and ``b``: a's batch from frame 4 takes 2 s, a's next batch
    fails before it ends (stand-ins: a failure and a slow call cannot be made on demand with the real model)."""

    workers = 3

    def __init__(self) -> None:
        super().__init__()
        self.slow_started = threading.Event()
        self.started_at = 0.0

    def detect_counted(self, frames):
        first = frames[0]
        if first.source_id == "a" and first.index == 4:
            self.started_at = time.monotonic()
            self.slow_started.set()
            threading.Event().wait(2.0)
        elif first.source_id == "a" and first.index == 8:
            self.slow_started.wait(5)
            threading.Event().wait(max(0.0, self.started_at + 1.9 - time.monotonic()))
            raise RuntimeError("CUDA out of memory")
        return super().detect_counted(frames)


def test_a_failure_keeps_every_batch_before_it_while_the_processing_lags(tmp_path, bikes_video):
    """A failing call no longer waited for the source's earlier batch, still running on another worker: the run
    aborted, and that batch's results were then dropped whenever the processing thread's queue was full, leaving
    holes (frames 0-3 and 7 of 0-7)."""
    config = build_config({"sources": [{"url": str(bikes_video), "id": "a"}, {"url": str(bikes_video), "id": "b"}],
                           "detector": {"batch": 4}, "output": {"jsonl": str(tmp_path / "{source}.jsonl")}})
    runner = Runner([(e, open_source(e)) for e in config.sources], FailsWhileAnEarlierBatchRuns(), config,
                    max_frames=60)
    for lane in runner.lanes:    # processing slower than detection: its queue stays full
        process = lane.processor.process
        lane.processor.process = lambda frame, dets, schedule=None, _p=process: (time.sleep(0.4),
                                                                                 _p(frame, dets, schedule))[1]
    with pytest.raises(PipelineError, match="CUDA out of memory"):
        runner.run()
    assert [r["frame_index"] for r in lines(tmp_path / "a.jsonl")] == list(range(8))


def test_a_failure_of_the_processing_thread_ends_the_run(tmp_path, bikes_video):
    """When the processing thread failed with its queue full, the last detector worker waited forever to queue
    the end marker there, and ``run()`` never returned. (A stand-in fault: processing cannot be made to fail on
    demand.)"""
    config = build_config({"sources": [{"url": str(bikes_video)}], "detector": {"batch": 4}})
    runner = Runner([(e, open_source(e)) for e in config.sources], TwoWorkerDetector(), config, max_frames=120)
    [lane] = runner.lanes
    process = lane.processor.process

    def failing(frame, dets, schedule=None):
        time.sleep(0.05)                          # slower than detection: the queue is full when it fails
        if frame.index == 20:
            raise RuntimeError("disk controller reset")
        return process(frame, dets, schedule)

    lane.processor.process = failing
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(PipelineError, runner.run).value),
                              daemon=True)   # a regression hangs here, not pytest at its exit
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "run() did not return after the processing thread failed"
    assert "disk controller reset" in str(errors[0])

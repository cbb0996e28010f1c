"""The metrics endpoint and log line show per-source figures, and never a URL or a password."""

from __future__ import annotations

import logging
import re
import time
import urllib.request
from pathlib import Path
from typing import Callable

from pipelines.engine.metrics import Monitor, Reading
from pipelines.engine.stats import LatencyHistogram, StatsSnapshot
from tests.conftest import free_port

LIVE_MD = Path(__file__).resolve().parents[2] / "docs" / "live.md"


def scraped(readings: Callable[[], list[Reading]], log_interval: float = 60.0, after: float = 2.5) -> str:
    """The metrics endpoint's page once a Monitor of ``readings`` has run ``after`` seconds (2.5: two one-second
    samples)."""
    port = free_port()
    monitor = Monitor(readings, log_interval=log_interval, port=port).start()
    try:
        time.sleep(after)
        return str(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    finally:
        monitor.stop()


def test_endpoint_and_log_line_show_each_source(caplog):
    latency = LatencyHistogram()
    for ms in range(10, 110, 10):  # 10 .. 100 ms
        latency.observe(ms / 1000)
    counts = {"frames_in": 0}

    def readings() -> list[Reading]:
        counts["frames_in"] += 25
        return [Reading("cam1", StatsSnapshot("cam1", frames_in=counts["frames_in"], frames_out=7, dropped=18,
                                              reconnects=2), queues={"inbox": 1}, latency=latency),
                Reading("cam2", StatsSnapshot("cam2"), up=False)]

    caplog.set_level(logging.INFO, logger="pipelines.engine.metrics")
    body = scraped(readings, log_interval=1.0)
    assert 'trackstream_frames_dropped_total{source="cam1"} 18.0' in body
    assert 'trackstream_reconnects_total{source="cam1"} 2.0' in body
    assert 'trackstream_source_up{source="cam2"} 0.0' in body
    assert 'trackstream_latency_seconds_bucket{le="0.05",source="cam1"} 5.0' in body
    assert 'trackstream_queue_depth{queue="inbox",source="cam1"} 1.0' in body
    fps_line = [line for line in body.splitlines() if line.startswith('trackstream_fps_in{source="cam1"}')]
    assert 20 <= float(fps_line[0].split()[-1]) <= 30  # 25 new frames per one-second sample
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats ")]
    assert lines and "cam1: in" in lines[-1] and "dropped 18" in lines[-1] and "cam2" in lines[-1]
    assert "latency p50 50 ms p95 100 ms" in lines[-1] or "latency p50 60 ms p95 100 ms" in lines[-1]


def test_summary_and_metrics_show_the_same_dropped_frames(bikes_fast, pose_weights):
    """Frames dropped by the newest-frame policy are counted in one place: the end-of-run summary and the
    metrics endpoint report the same number, and it accounts for every frame the detector never saw."""
    from pipelines.config import build_config
    from pipelines.detection.detector import Detector
    from pipelines.engine.metrics import runner_readings
    from pipelines.engine.progress import summary_lines
    from pipelines.engine.runner import Runner
    from pipelines.sources import open_source

    config = build_config({"sources": [{"url": str(bikes_fast), "id": "fast", "realtime": True}],
                           "detector": {"imgsz": 160, "batch": 1, "workers": 1}})
    settings = config.sources[0]
    runner = Runner([(settings, open_source(settings))], Detector(config.detector, str(pose_weights)), config)
    stats = runner.run()
    [reading] = runner_readings(runner)
    snap = stats[0]
    assert reading.stats.dropped == snap.dropped > 0
    assert reading.stats.frames_in == snap.frames_in == 250
    assert snap.frames_out + snap.dropped == 250           # every frame was processed or counted dropped
    [line] = [x for x in summary_lines(stats, [], 1.0) if x.startswith("fast:")]
    assert f"{reading.stats.dropped} dropped" in line


def test_endpoint_and_summary_show_the_detector_duty_of_a_scheduled_source():
    """With a detection schedule, Prometheus shows the frames detected and their recent share (the duty), and
    the end-of-run summary says how many frames were predicted instead."""
    from pipelines.engine.progress import summary_lines
    from pipelines.engine.stats import SourceStats

    counts = {"out": 0}

    def readings() -> list[Reading]:
        counts["out"] += 25
        return [Reading("cam1", StatsSnapshot("cam1", frames_in=counts["out"], frames_out=counts["out"],
                                              frames_detected=counts["out"] // 5))]

    body = scraped(readings)
    duty = [line for line in body.splitlines() if line.startswith('trackstream_detector_duty{source="cam1"}')]
    assert abs(float(duty[0].split()[-1]) - 0.2) < 0.01
    assert 'trackstream_frames_detected_total{source="cam1"}' in body
    stats = SourceStats("cam1")
    for i in range(100):
        stats.processed(i / 25, 0.01, 1)
    stats.add(frames_detected=20)
    [line] = summary_lines([stats.snapshot()], [], 4.0)
    assert "detector on 20 (20%), 80 frames predicted" in line


def test_the_metrics_table_of_docs_live_md_lists_every_metric_served():
    """The detector's duty and frames detected (detection schedules) and a failed output were served but
    missing from the table a user reads to write Prometheus queries and alerts."""
    body = scraped(lambda: [Reading("cam1", StatsSnapshot("cam1"))], after=0.0)
    names = set(re.findall(r"^# TYPE (trackstream_\w+) ", body, re.MULTILINE))
    table = LIVE_MD.read_text(encoding="utf-8").split("| metric | type | labels | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`(trackstream_\w+)`", table))
    assert names - documented == set()

"""Webcams: how a webcam spec is opened, and a missing device as the user sees it."""

from __future__ import annotations

import sys

import pytest

from pipelines.errors import SourceError
from pipelines.sources.base import SourceConfig
from pipelines.sources.live import LiveSource, ffmpeg_input


@pytest.mark.skipif(sys.platform != "linux", reason="Video4Linux2 devices")
@pytest.mark.parametrize("spec, device", [("webcam:0", "/dev/video0"), ("webcam:3", "/dev/video3"),
                                          ("/dev/video2", "/dev/video2")])
def test_webcam_specs_open_video4linux_devices(spec, device):
    assert ffmpeg_input(spec, SourceConfig())[:2] == (device, "v4l2")


def test_bad_webcam_index_is_refused_in_one_line():
    with pytest.raises(SourceError, match="webcam index must be a number"):
        LiveSource("webcam:front")


@pytest.mark.skipif(sys.platform != "linux", reason="Video4Linux2 devices")
def test_missing_webcam_gives_up_after_the_configured_attempts():
    source = LiveSource("/dev/video97", {"reconnect_max_attempts": 2, "reconnect_initial_delay": 0.05,
                                         "open_timeout": 2.0, "read_timeout": 1.0})
    with pytest.raises(SourceError) as err:
        list(source.frames())
    message = str(err.value)
    assert "/dev/video97" in message and "gave up after 2 attempts" in message and "\n" not in message

"""On a CUDA machine: the GPU paths really work (NVDEC decodes like software, NVENC writes a playable video, the
detector runs batched half precision). Not part of the CPU suite (testpaths is tests/): run by
``benchmarks/gpu_run.sh`` on a GPU machine, where a missing GPU is a failure, not a skip."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

import pipelines.sinks.video as video
from pipelines.frames import VideoFrame
from pipelines.sources.base import SourceConfig
from pipelines.sources.file import FileSource
from tests.conftest import decoded_frames


def test_cuda_is_there():
    import torch

    assert torch.cuda.is_available(), "these checks need an NVIDIA GPU with CUDA"


def test_cuda_nvdec_decodes_bikes_like_software(bikes_video):
    software = decoded_frames(FileSource(bikes_video, options=SourceConfig(decoder="cpu")))
    source = FileSource(bikes_video, options=SourceConfig(decoder="cuda"))
    assert source.decoder.hardware
    hardware = decoded_frames(source)
    assert [f[:2] for f in hardware] == [f[:2] for f in software]  # same frames, same timestamps
    # pictures agree up to the colour conversion: compare the sampled sums within 2 %
    assert all(abs(h[2] - s[2]) <= 0.02 * max(s[2], 1) for h, s in zip(hardware, software))


def test_cuda_nvenc_writes_a_playable_video_when_the_gpu_has_nvenc(tmp_path):
    video._nvenc_usable.cache_clear()
    if video.select_encoder("libx264", "auto", 23, "veryfast", Fraction(30)) != "h264_nvenc":
        pytest.skip("this GPU has no usable NVENC (H100/H200 have NVDEC only)")
    path = tmp_path / "nv.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("h264_nvenc", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((1080, 1920, 3), i * 8, np.uint8), format="bgr24")
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    with av.open(str(path)) as inp:
        assert sum(1 for _ in inp.decode(video=0)) == 30


def test_cuda_detector_runs_batched_half_precision(pose_weights):
    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector
    detector = Detector(DetectorConfig(model=str(pose_weights), batch=16))
    assert detector.device.startswith("cuda") and detector.half and detector.workers == 1
    frames = [VideoFrame(np.zeros((1080, 1920, 3), np.uint8), i, i / 30, f"cam{i}", 0.0) for i in range(16)]
    assert len(detector.detect(frames)) == 16

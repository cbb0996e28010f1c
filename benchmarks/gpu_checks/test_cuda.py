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
    assert detector.preprocess == "device"          # auto on CUDA: the batch is letterboxed on the GPU
    frames = [VideoFrame(np.zeros((1080, 1920, 3), np.uint8), i, i / 30, f"cam{i}", 0.0) for i in range(16)]
    assert len(detector.detect(frames)) == 16


def test_cuda_letterbox_on_the_gpu_finds_what_the_cpu_letterbox_finds(pose_weights, bikes_video):
    """16 frames at 1080p: letterboxed on the GPU (the CUDA default) and by Ultralytics on the CPU, same
    half-precision model: every confident person is found by both, in the same frame pixels."""
    import cv2

    from pipelines.config import DetectorConfig
    from pipelines.detection.detector import Detector
    from tests.test_letterbox import matching_rows

    source = FileSource(bikes_video, options=SourceConfig(decoder="cpu"))
    pictures = [f.image for f in source.frames() if isinstance(f, VideoFrame) and 100 <= f.index < 116]
    source.close()
    frames = [VideoFrame(cv2.resize(p, (1920, 1080)), i, i / 30, f"cam{i}", 0.0) for i, p in enumerate(pictures)]
    gpu = Detector(DetectorConfig(model=str(pose_weights)))
    cpu = Detector(DetectorConfig(model=str(pose_weights), preprocess="cpu"))
    assert (gpu.preprocess, cpu.preprocess) == ("device", "cpu")
    found = 0
    for a, b in zip(cpu.detect(frames), gpu.detect(frames)):
        for i, j in matching_rows(a, b) + [(i, j) for j, i in matching_rows(b, a)]:
            np.testing.assert_allclose(b.xyxy[j], a.xyxy[i], atol=4.0)  # 1080p pixels, fp16
            found += 1
    assert found >= 16

"""GPU decode/encode selection: what a user sees on a machine without CUDA (software, one log line), what
``cuda`` does when the GPU is missing (one error line).

The CPU tests simulate "no GPU" / "GPU present" by replacing the open step. The checks that need a real GPU
live in ``benchmarks/gpu_checks/`` (outside the CPU suite) and are run by ``benchmarks/gpu_run.sh``.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from types import SimpleNamespace

import av
import pytest

import pipelines.sinks.video as video
import pipelines.sources.hwdecode as hwdecode
from pipelines.config import load_config
from pipelines.errors import OutputError, SourceError
from pipelines.sources.base import SourceConfig
from pipelines.sources.file import FileSource
from pipelines.sources.hwdecode import choose_decoder, open_decoder
from tests.conftest import decoded_frames
from tracker.configutil import ConfigError


def _no_gpu(name: str, stream: object) -> object:
    raise PermissionError(1, "Operation not permitted")


def _software_as_cuvid(name: str, stream: "av.VideoStream") -> object:
    """Stands in for an opened NVDEC decoder: a separate software context opened exactly like one."""
    return open_decoder(stream.codec_context.name, stream)


def _stream(codec: str) -> SimpleNamespace:
    return SimpleNamespace(codec_context=SimpleNamespace(name=codec))


def _records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == hwdecode.__name__]


# --- decoder --------------------------------------------------------------------------------------------------

def test_no_cuda_means_software_decode_and_one_log_line(bikes_video, monkeypatch, caplog):
    monkeypatch.setattr(hwdecode, "open_cuvid", _no_gpu)
    caplog.set_level(logging.INFO, hwdecode.__name__)
    source = FileSource(bikes_video, "cam1")
    assert not source.decoder.hardware and source.decoder.name == "h264"
    (line,) = _records(caplog)
    assert line.startswith("cam1: decoding h264 in software") and "h264_cuvid cannot be opened" in line
    assert len(decoded_frames(source)) == 250  # and it still plays every frame


def test_decoder_cpu_probes_nothing_and_stays_quiet(bikes_video, monkeypatch, caplog):
    def fail(*_: object) -> object:
        raise AssertionError("cpu must not probe the GPU")

    monkeypatch.setattr(hwdecode, "open_cuvid", fail)
    caplog.set_level(logging.INFO, hwdecode.__name__)
    source = FileSource(bikes_video, "cam1", SourceConfig(decoder="cpu"))
    assert not source.decoder.hardware and _records(caplog) == []
    source.close()


def test_decoder_cuda_without_gpu_is_one_clear_error(bikes_video, monkeypatch):
    monkeypatch.setattr(hwdecode, "open_cuvid", _no_gpu)
    with pytest.raises(SourceError) as err:
        FileSource(bikes_video, "cam1", SourceConfig(decoder="cuda"))
    message = str(err.value)
    assert "\n" not in message and "source.decoder is cuda" in message and "decoder: auto or cpu" in message


def test_no_nvidia_device_means_no_probe_and_no_ffmpeg_error(bikes_video, monkeypatch, caplog, capfd):
    """Without an NVIDIA device node, NVDEC/NVENC are not probed at all: FFmpeg prints no "cannot be opened"
    error on stderr, and the one log line says why software is used."""
    monkeypatch.setattr(hwdecode, "nvidia_device_present", lambda: False)
    monkeypatch.setattr(video, "nvidia_device_present", lambda: False)
    monkeypatch.setattr(hwdecode, "open_decoder", lambda *_: pytest.fail("NVDEC probed without a device"))
    monkeypatch.setattr(av.CodecContext, "create", lambda *_: pytest.fail("NVENC probed without a device"))
    video._nvenc_usable.cache_clear()
    caplog.set_level(logging.INFO)
    source = FileSource(bikes_video, "cam1")
    chosen = video.select_encoder("libx264", "auto", 23, "veryfast", Fraction(30), "video output cam1")
    video._nvenc_usable.cache_clear()
    assert not source.decoder.hardware and chosen == "libx264"
    assert _records(caplog) == ["cam1: decoding h264 in software (no NVIDIA device)"]
    assert "video output cam1: encoding with libx264 on the CPU (no NVIDIA device)" in caplog.messages
    source.close()
    assert "cannot be opened" not in capfd.readouterr().err


def test_hardware_path_decodes_the_same_frames_as_software(bikes_video, monkeypatch, caplog):
    """The NVDEC code path (a separate decoder context fed the demuxed packets, flushed at the end) gives the
    same frames, timestamps and pictures as the stream's own decoder."""
    software = decoded_frames(FileSource(bikes_video, options=SourceConfig(decoder="cpu")))
    monkeypatch.setattr(hwdecode, "open_cuvid", _software_as_cuvid)
    caplog.set_level(logging.INFO, hwdecode.__name__)
    source = FileSource(bikes_video, "cam1")
    assert source.decoder.hardware and source.decoder.name == "h264_cuvid"
    assert _records(caplog) == ["cam1: decoding h264 on the GPU with h264_cuvid (NVDEC)"]
    assert decoded_frames(source) == software


@pytest.mark.parametrize("codec, available, mode, expected", [
    ("h264", {"h264_cuvid"}, "auto", ("h264", False, "h264_cuvid cannot be opened (Operation not permitted)")),
    ("h264", set(), "auto", ("h264", False, "h264_cuvid is not in this FFmpeg build")),
    ("rawvideo", {"h264_cuvid"}, "auto", ("rawvideo", False, "no NVDEC decoder for rawvideo")),
    ("hevc", {"hevc_cuvid"}, "cpu", ("hevc", False, "decoder: cpu")),
    ("h264", set(), "cuda", SourceError),
    ("rawvideo", set(), "cuda", SourceError),
    ("h264", set(), "gpu", SourceError),
])
def test_decoder_choice_table(codec, available, mode, expected):
    if isinstance(expected, type):
        with pytest.raises(expected):
            choose_decoder(_stream(codec), mode, "cam", available=available, opener=_no_gpu)  # type: ignore[arg-type]
        return
    choice = choose_decoder(_stream(codec), mode, "cam", available=available, opener=_no_gpu)  # type: ignore[arg-type]
    assert (choice.name, choice.hardware, choice.reason) == expected


def test_decoder_key_is_validated_and_defaults_to_auto(tmp_path):
    assert SourceConfig().decoder == "auto"
    path = tmp_path / "c.yaml"
    path.write_text("source: {decoder: gpu}\n")
    with pytest.raises(ConfigError, match="source.decoder"):
        load_config(path)


# --- encoder --------------------------------------------------------------------------------------------------

@pytest.fixture
def nvenc(monkeypatch):
    """Set whether NVENC opens: call with None (it opens) or a reason (it does not)."""
    calls: list[str] = []

    def set_reason(reason):
        monkeypatch.setattr(video, "_nvenc_usable", lambda name, *_: calls.append(name) or reason)
        return calls
    return set_reason


@pytest.mark.parametrize("codec, mode, reason, expected", [
    ("libx264", "auto", "h264_nvenc cannot be opened (Operation not permitted)", "libx264"),
    ("libx264", "auto", None, "h264_nvenc"),
    ("libx265", "auto", None, "hevc_nvenc"),
    ("libx264", "cpu", None, "libx264"),
    ("mpeg4", "auto", None, "mpeg4"),          # a codec named on purpose is kept
    ("libx264", "cuda", None, "h264_nvenc"),
    ("libx264", "cuda", "h264_nvenc cannot be opened (Operation not permitted)", OutputError),
    ("mpeg4", "cuda", None, OutputError),
    ("libx264", "gpu", None, OutputError),
])
def test_encoder_choice_table(nvenc, codec, mode, reason, expected):
    nvenc(reason)
    if isinstance(expected, type):
        with pytest.raises(expected):
            video.select_encoder(codec, mode, 23, "veryfast", Fraction(30))
        return
    assert video.select_encoder(codec, mode, 23, "veryfast", Fraction(30)) == expected


def test_no_nvenc_means_libx264_and_one_log_line(nvenc, caplog):
    calls = nvenc("h264_nvenc cannot be opened (Operation not permitted)")
    caplog.set_level(logging.INFO, video.__name__)
    assert video.select_encoder("libx264", "auto", 23, "veryfast", Fraction(30), "video output cam1") == "libx264"
    assert [r.getMessage() for r in caplog.records] == [
        "video output cam1: encoding with libx264 on the CPU (h264_nvenc cannot be opened (Operation not permitted))"]
    assert calls == ["h264_nvenc"]


def test_cpu_encoder_probes_nothing(nvenc, caplog):
    calls = nvenc(None)
    caplog.set_level(logging.INFO, video.__name__)
    assert video.select_encoder("libx264", "cpu", 23, "veryfast", Fraction(30)) == "libx264"
    assert calls == [] and caplog.records == []


def test_real_probe_on_this_machine_never_raises_for_auto():
    video._nvenc_usable.cache_clear()
    chosen = video.select_encoder("libx264", "auto", 23, "veryfast", Fraction(30))
    assert chosen in ("libx264", "h264_nvenc")
    assert (chosen == "h264_nvenc") == (video._nvenc_usable("h264_nvenc", tuple(sorted(
        {**video._encoder_options("h264_nvenc", 23, "veryfast"), "bf": "0"}.items())), Fraction(30)) is None)


def test_encoder_key_is_validated_and_defaults_to_auto(tmp_path):
    assert load_config().output.video_encoder == "auto"
    path = tmp_path / "c.yaml"
    path.write_text("output: {video_encoder: nvenc}\n")
    with pytest.raises(ConfigError, match="output.video_encoder"):
        load_config(path)

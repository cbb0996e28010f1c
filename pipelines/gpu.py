"""Whether this machine has an NVIDIA GPU, answered without loading CUDA or opening an FFmpeg codec.

NVDEC and NVENC are probed by opening a real decoder/encoder context (``sources/hwdecode.py``,
``sinks/video.py``). On a machine without an NVIDIA device that probe only fails, and FFmpeg prints its
failure to stderr on every run, so the probe is skipped when no device node exists.
"""

from __future__ import annotations

import functools
import os
import sys

# device nodes of the NVIDIA driver (Linux), and of the GPU paravirtualisation of WSL 2
_NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")


@functools.lru_cache(maxsize=1)
def nvidia_device_present() -> bool:
    """False when this machine surely has no NVIDIA GPU (Linux without the driver's device nodes, macOS);
    True when it may have one (the nodes exist, or another OS where only opening a codec can tell)."""
    if sys.platform.startswith("linux"):
        return any(os.path.exists(node) for node in _NVIDIA_NODES)
    return sys.platform != "darwin"

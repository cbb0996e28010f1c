"""trackstream pipelines: sources, detector, sinks, overlays and the command line.

``from pipelines import process`` is the Python API (``pipelines/api.py``): a generator of the output
value of every processed frame. It is imported on first use, so importing ``pipelines`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.version import __version__

__all__ = ["__version__", "process"]

if TYPE_CHECKING:
    from pipelines.api import process


def __getattr__(name: str) -> Any:
    if name == "process":
        from pipelines.api import process

        return process
    raise AttributeError(f"module 'pipelines' has no attribute {name!r}")

"""``trackstream eval``: track MOTChallenge detections with trackstream and peers, score with TrackEval.

Submodules import each other directly (``pipelines.evaluation.motio``, ...), never through this package, and
this package imports none of them until one of its public names is used, so importing any submodule first
works and ``trackstream --help`` does not load the scoring stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.evaluation.runner import EvalOptions, EvalReport, evaluate

__all__ = ["EvalOptions", "EvalReport", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipelines.evaluation import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

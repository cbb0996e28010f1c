"""``trackstream eval``: track MOTChallenge detections with trackstream and peers, score with TrackEval.

Submodules import each other directly (``pipelines.evaluation.motio``, ...), never through this package, so
importing any one of them first works; the names below are the package's public API.
"""

from pipelines.evaluation.runner import EvalOptions, EvalReport, evaluate

__all__ = ["EvalOptions", "EvalReport", "evaluate"]

"""``trackstream eval``: track MOTChallenge detections with trackstream and peers, score with TrackEval."""

from pipelines.evaluation.runner import EvalOptions, EvalReport, evaluate

__all__ = ["EvalOptions", "EvalReport", "evaluate"]

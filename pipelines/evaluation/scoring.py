"""Score MOTChallenge result files with TrackEval (HOTA, CLEAR MOT, Identity metrics).

TrackEval 1.3 (the maintained PyPI release) runs on NumPy 2 as is. Releases before 1.3 still call the
aliases NumPy 2 removed (``np.float``, ``np.int``, ``np.bool``) inside their metric code; for those,
``_import_trackeval`` restores the aliases before importing, without forking or vendoring TrackEval.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pipelines.errors import UserError

log = logging.getLogger(__name__)

COMBINED = "COMBINED"


@dataclass(frozen=True)
class SeqScore:
    """Scores of one sequence (or all combined). Percentages in [0, 100] (MOTA may be negative)."""

    hota: float
    deta: float
    assa: float
    mota: float
    idf1: float
    idsw: int
    fp: int
    fn: int
    gt_ids: int
    pred_ids: int


def require_trackeval() -> str:
    """TrackEval's version; one clear ``UserError`` when it is not installed (checked before any tracking)."""
    try:
        return metadata.version("trackeval")
    except metadata.PackageNotFoundError:
        raise UserError("scoring needs TrackEval: pip install 'trackstream[eval]' (or 'trackeval>=1.0')") from None


def _import_trackeval() -> ModuleType:
    """Import TrackEval; for releases < 1.3 put back the NumPy aliases they use (removed in NumPy 2)."""
    version = require_trackeval()
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if major_minor < (1, 3):
        for alias, builtin in (("float", float), ("int", int), ("bool", bool)):
            if alias not in np.__dict__:
                setattr(np, alias, builtin)
    import trackeval

    module: ModuleType = trackeval
    return module


def _score_from(res: Mapping[str, Any]) -> SeqScore:
    hota, clear, ident, count = res["HOTA"], res["CLEAR"], res["Identity"], res["Count"]
    return SeqScore(
        hota=100 * float(np.mean(hota["HOTA"])), deta=100 * float(np.mean(hota["DetA"])),
        assa=100 * float(np.mean(hota["AssA"])), mota=100 * float(clear["MOTA"]),
        idf1=100 * float(ident["IDF1"]), idsw=int(clear["IDSW"]), fp=int(clear["CLR_FP"]),
        fn=int(clear["CLR_FN"]), gt_ids=int(count["GT_IDs"]), pred_ids=int(count["IDs"]))


def score(gt_folder: Path, results_folder: Path, seq_lengths: Mapping[str, int],
          benchmark: str = "MOT17") -> dict[str, SeqScore]:
    """Score ``results_folder/<seq>.txt`` against ``gt_folder/<seq>/gt/gt.txt`` for each sequence.

    Args:
        gt_folder: folder holding one sub-folder per sequence (``MOT_ROOT/<benchmark>/<split>``).
        results_folder: folder of MOTChallenge result files, one ``<seq>.txt`` per sequence.
        seq_lengths: sequence name -> number of frames.
        benchmark: MOTChallenge benchmark name; decides which gt classes count as distractors.

    Returns:
        sequence name -> scores, plus ``COMBINED`` over all of them (TrackEval's combination rules).
    """
    trackeval = _import_trackeval()
    eval_config = {**trackeval.Evaluator.get_default_eval_config(),
                   "USE_PARALLEL": False, "BREAK_ON_ERROR": True, "LOG_ON_ERROR": None,
                   "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                   "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False}
    data_config = {**trackeval.datasets.MotChallenge2DBox.get_default_dataset_config(),
                   "GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(results_folder.parent.parent),
                   "TRACKERS_TO_EVAL": [results_folder.parent.name],
                   "TRACKER_SUB_FOLDER": results_folder.name,
                   "OUTPUT_FOLDER": None, "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True,
                   "SEQ_INFO": dict(seq_lengths), "PRINT_CONFIG": False}
    chatter = io.StringIO()  # TrackEval prints progress to stdout; keep our table the only output
    try:
        with contextlib.redirect_stdout(chatter):
            evaluator = trackeval.Evaluator(eval_config)
            dataset = trackeval.datasets.MotChallenge2DBox(data_config)
            # Count (number of ids) is always added by the evaluator.
            metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
            results, _ = evaluator.evaluate([dataset], metrics)
    except trackeval.utils.TrackEvalException as exc:
        raise UserError(f"TrackEval could not score {results_folder}: {exc}") from None
    finally:
        log.debug("TrackEval output:\n%s", chatter.getvalue())
    per_seq = results["MotChallenge2DBox"][results_folder.parent.name]
    return {(COMBINED if seq == "COMBINED_SEQ" else seq): _score_from(res["pedestrian"])
            for seq, res in per_seq.items()}

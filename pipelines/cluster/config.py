"""The ``cluster:`` section: which engine runs the sources, and how a Ray cluster is used (docs/cluster.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass(frozen=True)
class ClusterConfig:
    """``engine: local`` runs everything in this process; ``engine: ray`` runs sources in Ray actors.

    Attributes:
        engine: ``local`` (default) or ``ray``.
        address: a running Ray cluster (``host:port`` of its GCS, or ``auto``); None = ``RAY_ADDRESS``, else
            an embedded local Ray is started for the run.
        namespace: the Ray namespace of trackstream's named actors.
        cameras_per_actor: most cameras one actor of ``run --engine ray`` runs; cameras of one actor share
            one model copy and detector batches (on a GPU: the most cameras per GPU share). Default 4:
            measured on CPU, four cameras in one actor cost 0.98x the local engine's CPU per frame, four
            actors of one camera 1.47x (benchmarks/cluster_overhead.py). ``cluster add`` gives each camera
            an actor of its own.
        cpus_per_actor: CPUs Ray reserves for each camera actor and file worker; its detector computes on
            that many cores (at least one).
        gpus_per_actor: GPU fraction Ray reserves for each actor (0 = CPU; 0.25 = four actors per GPU).
        file_workers: actors processing recorded files at once (each keeps its model loaded); None = as
            many as the cluster's CPUs (or GPUs) allow, at most one per file.
    """

    engine: Literal["local", "ray"] = "local"
    address: Optional[str] = None
    namespace: str = "trackstream"
    cameras_per_actor: int = field(default=4, metadata={"min": 1, "max": 256})
    cpus_per_actor: float = field(default=1.0, metadata={"min": 0.0})
    gpus_per_actor: float = field(default=0.0, metadata={"min": 0.0, "max": 8.0})
    file_workers: Optional[int] = field(default=None, metadata={"min": 1, "max": 100000})

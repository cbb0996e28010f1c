"""Ray, imported and joined: the one place trackstream touches Ray's process-level API.

Ray is an optional extra (``pip install 'trackstream[ray]'``); without it ``import_ray`` raises one clear
``UserError``. ``connect`` joins the cluster named by ``cluster.address`` / ``RAY_ADDRESS`` or starts an
embedded local Ray for this run (dashboard off, node on 127.0.0.1). Usage-stats reporting is always off.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Optional, cast

from pipelines.cluster.config import ClusterConfig
from pipelines.errors import UserError, first_line

if TYPE_CHECKING:
    from pipelines.cluster.handles import RayAPI

log = logging.getLogger(__name__)

# Health checks of the embedded Ray (and what docs/cluster.md and docker/ ship for clusters): a node that
# misses 3 checks 1 s apart is declared dead, so its actors restart elsewhere within about 5 s (Ray's
# defaults take ~30 s). Measured by benchmarks/cluster_failover.py.
HEALTH_CHECKS: dict[str, int] = {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
                                 "health_check_failure_threshold": 3}
EMBEDDED_OBJECT_STORE = 256 * 2**20  # frames never travel through the object store: a small one is enough


class ClusterError(UserError):
    """Ray is missing, or the cluster cannot be joined or used."""


def import_ray() -> "RayAPI":
    """The ``ray`` module, with usage stats off; ``ClusterError`` (one line) when the extra is missing.

    Handed out as the slice trackstream uses (``handles.RayAPI``): Ray's own signatures are wider (overloads
    over lists of references, untyped actor handles), so the module is cast to it here, once."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ClusterError("--engine ray needs Ray, an optional extra: pip install 'trackstream[ray]'") from None
    return cast("RayAPI", ray)


def cluster_address(config: ClusterConfig) -> Optional[str]:
    """The cluster to join (``cluster.address``, else ``RAY_ADDRESS``); None: start an embedded one."""
    return config.address or os.environ.get("RAY_ADDRESS") or None


def _check_reachable(address: str) -> None:
    """Fail in one line, at once, when nothing listens at ``host:port`` (Ray itself retries for a minute)."""
    if address in ("auto", "local") or "://" in address:
        return
    if "@" in address:   # a head's address takes no user or password: never echo what came before the @
        raise ClusterError(f"--ray-address {address.rpartition('@')[2]}: expected HOST:PORT of the cluster's head "
                           "(GCS), without a user or password")
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ClusterError(f"--ray-address {address}: expected HOST:PORT of the cluster's head (GCS)")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def connect(config: ClusterConfig, *, embedded: bool = True, quiet: bool = False) -> "RayAPI":
    """Join the cluster (or start an embedded Ray when ``embedded`` and no address is given); returns ``ray``."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = cluster_address(config)
    common: dict[str, object] = {"namespace": config.namespace, "log_to_driver": not quiet,
                              "logging_level": logging.WARNING}
    if address is None:
        if not embedded:
            raise ClusterError("no Ray cluster given: pass --ray-address HOST:PORT (or set RAY_ADDRESS)")
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                 _system_config=dict(HEALTH_CHECKS),
                 object_store_memory=EMBEDDED_OBJECT_STORE, **common)
        log.info("started an embedded Ray for this run (%s CPUs)", int(ray.cluster_resources().get("CPU", 0)))
        return ray
    _check_reachable(address)
    try:
        ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {first_line(exc)}") from None
    return ray


def failure(exc: BaseException) -> str:
    """One line for an error that came back from an actor: the original exception's ``Name: message`` (Ray
    wraps it with its traceback), else the first line."""
    import re

    text = str(exc)
    found = re.findall(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    found = [(name, msg) for name, msg in found if not name.startswith(("Ray", "Actor", "Task"))]
    if found:
        name, msg = found[-1]
        return msg.strip() if name in ("UserError", "ModelError", "SourceError", "OutputError", "ClusterError",
                                       "StateError", "ConfigError") else f"{name}: {msg.strip()}"
    return first_line(exc)


def node_address() -> str:
    """This worker's node address (inside an actor)."""
    ray = import_ray()
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return str(node.get("NodeManagerAddress", node_id[:8]))
    return str(node_id)[:8]

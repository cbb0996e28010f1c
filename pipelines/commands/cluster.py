"""`trackstream cluster add|remove|list`: cameras on a running Ray cluster, changed without restarting it.

``add`` starts each camera in its own named, detached actor (``camera:<id>``) that Ray restarts on any node
when its process or node dies; ``remove`` stops it (outputs flushed, last snapshot saved) and removes it;
``list`` shows every camera's node, state, fps, latency and restarts. See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines.cluster.actors import CameraActor
from pipelines.cluster.engine import CAMERA_PREFIX, actor_options, camera_actor_name, warn_folder_state
from pipelines.cluster.handles import CameraActorHandle, RayAPI
from pipelines.cluster.ray_env import ClusterError, connect, failure
from pipelines.commands.run import add_arguments, config_from_args
from pipelines.config import PipelineConfig
from pipelines.engine.launch import preflight, warn_unsaved


def _address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", dest="ray_address", metavar="HOST:PORT",
                        help="the running Ray cluster (default: RAY_ADDRESS)")
    parser.add_argument("--namespace", default=None, help="Ray namespace of the camera actors (default trackstream)")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str) -> None:
    parser = sub.add_parser(name, help="add, remove and list cameras on a running Ray cluster",
                            description=__doc__.splitlines()[0] if __doc__ else None)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="start cameras on the cluster (takes every flag of run)")
    add_arguments(add)  # SOURCE..., --source-id, outputs, --state, --config, ... (--ray-address among them)
    add.add_argument("--namespace", default=None, help="Ray namespace of the camera actors (default trackstream)")
    remove = verbs.add_parser("remove", help="stop cameras (outputs flushed, state saved) and remove them")
    remove.add_argument("ids", nargs="+", metavar="ID", help="camera id as `cluster list` shows it")
    _address(remove)
    listing = verbs.add_parser("list", help="every camera: node, state, fps, latency, restarts")
    listing.add_argument("--json", action="store_true", help="one JSON object per camera instead of a table")
    _address(listing)


def _config(args: argparse.Namespace) -> PipelineConfig:
    if args.verb == "add":
        config = config_from_args(args)
    else:
        from pipelines.config import build_config

        config = build_config({"cluster": {"address": args.ray_address}} if args.ray_address else {})
    if args.namespace:
        import dataclasses

        config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, namespace=args.namespace))
    return config


def _cameras(ray: RayAPI) -> dict[str, CameraActorHandle]:
    """Actor name -> handle of every camera actor in the namespace."""
    return {name: ray.get_actor(name) for name in sorted(ray.util.list_named_actors())
            if name.startswith(CAMERA_PREFIX)}


def add(config: PipelineConfig) -> int:
    model = preflight(config)
    warn_unsaved(config)
    live = [s for s in config.sources if s.is_live]
    if len(live) != len(config.sources):
        raise ClusterError("cluster add takes cameras (rtsp://, http(s)://, ...); process files with "
                           "trackstream run --engine ray FILES")
    if not config.state.dir:
        raise ClusterError("cluster add needs --state redis://HOST:PORT/DB: a camera restarted on another node "
                           "continues its track IDs and counts from there")
    warn_folder_state(config)
    ray = connect(config.cluster, embedded=False, quiet=True)
    running = set(ray.util.list_named_actors())
    actor = ray.remote(CameraActor)
    for settings in live:
        name = camera_actor_name([settings.id])
        if name in running:
            raise ClusterError(f"camera {settings.id} already runs on the cluster (trackstream cluster remove "
                               f"{settings.id} first)")
        handle = actor.options(**actor_options(config, name=name, lifetime="detached", max_concurrency=4)).remote(
            config, [settings.id], model, name)
        try:
            statuses = ray.get(handle.status.remote(), timeout=300)  # started: model loaded, camera opened
        except Exception as exc:  # noqa: BLE001 - one line, and no actor left behind
            ray.kill(handle, no_restart=True)
            raise ClusterError(f"camera {settings.id} did not start: {failure(exc)}") from None
        errors = [status.error for status in statuses if status.error]
        if errors:
            ray.kill(handle, no_restart=True)
            raise ClusterError(f"camera {settings.id} did not start: {errors[0]}")
        print(f"added {settings.id}")
    return 0


def remove(config: PipelineConfig, ids: list[str]) -> int:
    ray = connect(config.cluster, embedded=False, quiet=True)
    cameras = _cameras(ray)
    for source_id in ids:
        matches = [n for n in cameras if source_id in n[len(CAMERA_PREFIX):].split("+")]
        if not matches:
            raise ClusterError(f"no camera {source_id} on the cluster (trackstream cluster list shows them)")
        for name in matches:
            handle = cameras[name]
            try:
                ray.get(handle.stop.remote(), timeout=60)
            finally:
                ray.kill(handle, no_restart=True)
        print(f"removed {source_id}")
    return 0


def listing(config: PipelineConfig, as_json: bool) -> int:
    ray = connect(config.cluster, embedded=False, quiet=True)
    rows: list[dict[str, Any]] = []
    for name, handle in _cameras(ray).items():
        try:
            rows.extend(status.doc() for status in ray.get(handle.status.remote(), timeout=5))
        except Exception:  # noqa: BLE001 - an actor being restarted does not answer
            rows.extend({"source_id": sid, "actor": name, "node": "-", "state": "restarting", "fps": 0.0,
                         "latency_s": 0.0, "frames_out": 0, "restarts": "-"}
                        for sid in name[len(CAMERA_PREFIX):].split("+"))
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    header = f"{'ID':<24} {'NODE':<16} {'STATE':<13} {'FPS':>6} {'LATENCY':>8} {'FRAMES':>8} {'RESTARTS':>8}"
    print(header)
    for row in rows:
        print(f"{str(row['source_id']):<24} {str(row['node']):<16} {str(row['state']):<13} "
              f"{float(row['fps']):>6.1f} {float(row['latency_s']) * 1000:>6.0f}ms {int(row['frames_out']):>8} "
              f"{str(row['restarts']):>8}")
    if not rows:
        print("(no cameras)", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.verb == "add":
        return add(config)
    if args.verb == "remove":
        return remove(config, args.ids)
    return listing(config, args.json)

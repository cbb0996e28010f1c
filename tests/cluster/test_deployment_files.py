"""What an operator relies on in docker/compose.yaml and docker/kuberay.yaml, read from the files themselves (no
Docker, Kubernetes or Ray needed): the default ``docker compose up`` is unchanged, Ray's GCS keeps off Redis's
port, the head runs no work, workers find the head, usage stats are off and the health-check settings are the
same wherever Ray runs, the GPU group asks Kubernetes for a GPU, and outputs sit on a volume every node shares."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
KUBERAY = REPO / "docker" / "kuberay.yaml"
REDIS_PORT = 6379
HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def kuberay_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(KUBERAY.read_text()) if doc]


def ray_cluster() -> dict[str, Any]:
    clusters = [doc for doc in kuberay_documents() if doc["kind"] == "RayCluster"]
    assert len(clusters) == 1, f"{KUBERAY.name} should hold one RayCluster, not {len(clusters)}"
    assert clusters[0]["apiVersion"] == "ray.io/v1"
    return clusters[0]


def argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    return [str(part) for part in [*entrypoint, *command]]


def flags(args: list[str]) -> dict[str, str]:
    """``--key=value`` and bare ``--flag`` (value "true") of a command line."""
    found: dict[str, str] = {}
    for arg in args:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            found[key] = value if value else "true"
    return found


def ray_compose_services() -> dict[str, dict[str, Any]]:
    """Every compose service that runs ``ray start``."""
    return {name: svc for name, svc in compose_services().items() if argv(svc)[:2] == ["ray", "start"]}


def compose_head() -> dict[str, str]:
    heads = [flags(argv(svc)) for svc in ray_compose_services().values() if "head" in flags(argv(svc))]
    assert len(heads) == 1, heads
    return heads[0]


def ray_groups() -> list[tuple[str, dict[str, Any]]]:
    """(name, group spec) of the head group and every worker group of the RayCluster."""
    spec = ray_cluster()["spec"]
    return [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = group["template"]["spec"]["containers"][0]  # KubeRay: the Ray container is first
    return container


def kube_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


# --- compose.yaml ---------------------------------------------------------------------------------------------


def test_default_up_still_starts_only_redis_and_trackstream() -> None:
    unprofiled = {name for name, svc in compose_services().items() if not svc.get("profiles")}
    assert unprofiled == {"redis", "trackstream"}


@pytest.mark.parametrize("name", ["ray-head", "ray-worker"])
def test_ray_services_exist_only_under_the_ray_profile(name: str) -> None:
    services = compose_services()
    assert name in services, f"compose.yaml has no {name} service"
    assert services[name].get("profiles") == ["ray"]
    assert name in ray_compose_services(), f"{name} does not run `ray start`: {argv(services[name])}"


@pytest.mark.parametrize("name", ["ray-head", "ray-worker"])
def test_ray_images_are_the_cpu_image_with_the_ray_extra(name: str) -> None:
    build = compose_services()[name]["build"]
    assert build["dockerfile"] == "docker/Dockerfile.cpu"
    extras = str(build.get("args", {}).get("EXTRAS", "")).split(",")
    assert "ray" in extras, f"{name} is built without the ray extra: {extras}"
    dockerfile = (REPO / "docker" / "Dockerfile.cpu").read_text()
    assert "ARG EXTRAS=demo\n" in dockerfile, "the default build should install the demo extra, as before"
    assert 'pip install ".[${EXTRAS}]"' in dockerfile


def test_compose_gcs_port_is_not_redis_port() -> None:
    port = int(compose_head()["port"])
    assert port != REDIS_PORT


def test_compose_head_runs_no_work_and_no_dashboard() -> None:
    head = compose_head()
    assert head.get("num-cpus") == "0"
    assert head.get("include-dashboard") == "false"
    assert "block" in head, "without --block the container exits as soon as Ray has started"


def test_compose_workers_point_at_the_head() -> None:
    services = ray_compose_services()
    head_names = [name for name, svc in services.items() if "head" in flags(argv(svc))]
    workers = [flags(argv(svc)) for name, svc in services.items() if name not in head_names]
    assert workers, "the ray profile has no worker service"
    for worker in workers:
        assert worker.get("address") == f"{head_names[0]}:{compose_head()['port']}"
        assert "block" in worker


def test_compose_worker_count_is_an_operator_setting() -> None:
    assert compose_services()["ray-worker"]["deploy"]["replicas"] == "${RAY_WORKERS:-2}"


@pytest.mark.parametrize("name", ["ray-head", "ray-worker"])
def test_compose_ray_settings(name: str) -> None:
    service = compose_services()[name]
    env = {key: str(value) for key, value in service.get("environment", {}).items()}
    assert env.get("RAY_USAGE_STATS_ENABLED") == "0"
    assert {key: env.get(key) for key in HEALTH_CHECKS} == HEALTH_CHECKS
    assert service.get("shm_size"), f"{name}: Ray's object store needs more than Docker's 64 MB of /dev/shm"
    assert "data:/data" in service.get("volumes", []), f"{name} does not mount the shared volume at /data"


def test_compose_shared_volume_and_redis() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert "data" in compose["volumes"]
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7-alpine" and "--appendonly" in redis["command"]
    for name in ray_compose_services():
        assert "redis" in compose["services"][name].get("depends_on", {}), f"{name} starts before Redis"


# --- kuberay.yaml ---------------------------------------------------------------------------------------------


def test_kuberay_gcs_port_is_not_redis_port_and_is_the_head_container_port() -> None:
    head = ray_cluster()["spec"]["headGroupSpec"]
    port = int(head["rayStartParams"]["port"])
    assert port != REDIS_PORT
    ports = {p["name"]: p["containerPort"] for p in ray_container(head).get("ports", [])}
    assert ports.get("gcs-server") == port, "KubeRay builds the head service from the gcs-server container port"


def test_kuberay_head_runs_no_work_and_no_dashboard() -> None:
    params = ray_cluster()["spec"]["headGroupSpec"]["rayStartParams"]
    assert params.get("num-cpus") == "0"
    assert params.get("include-dashboard") == "false"


def test_kuberay_workers_point_at_the_head() -> None:
    # KubeRay gives each worker --address=<cluster>-head-svc:<head port>; an address of our own must agree
    head_port = ray_cluster()["spec"]["headGroupSpec"]["rayStartParams"]["port"]
    for name, group in ray_groups()[1:]:
        address = group.get("rayStartParams", {}).get("address")
        assert address is None or address.endswith(f":{head_port}"), (name, address)


def test_kuberay_has_a_gpu_group_that_requests_a_gpu() -> None:
    gpu_groups = [
        (name, group) for name, group in ray_groups()[1:]
        if "nvidia.com/gpu" in ray_container(group).get("resources", {}).get("limits", {})
    ]
    assert gpu_groups, "no worker group asks Kubernetes for nvidia.com/gpu"
    for name, group in gpu_groups:
        limit = ray_container(group)["resources"]["limits"]["nvidia.com/gpu"]
        assert int(limit) >= 1
        assert group["rayStartParams"].get("num-gpus") == str(limit), name
    cpu_only = [name for name, group in ray_groups()[1:] if (name, group) not in gpu_groups]
    assert cpu_only, "no CPU worker group"


@pytest.mark.parametrize("group_index", [0, 1, 2])
def test_kuberay_ray_containers(group_index: int) -> None:
    name, group = ray_groups()[group_index]
    container = ray_container(group)
    env = kube_env(container)
    assert env.get("RAY_USAGE_STATS_ENABLED") == "0", name
    assert {key: env.get(key) for key in HEALTH_CHECKS} == HEALTH_CHECKS, name
    # KubeRay's default probes query the dashboard (off here): each Ray container brings its own
    assert "readinessProbe" in container and "livenessProbe" in container, name
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in group["template"]["spec"].get("volumes", [])}
    assert "/data" in mounts, f"{name} does not mount the shared volume at /data"
    claim = volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"]
    pvcs = {d["metadata"]["name"]: d for d in kuberay_documents() if d["kind"] == "PersistentVolumeClaim"}
    assert "ReadWriteMany" in pvcs[claim]["spec"]["accessModes"], f"{claim} is not shared between nodes"


def test_kuberay_every_ray_group_is_checked() -> None:
    assert len(ray_groups()) == 3, "a group was added or removed: update test_kuberay_ray_containers"


def test_kuberay_redis_deployment_and_service() -> None:
    docs = kuberay_documents()
    deployments = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "redis"]
    services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "redis"]
    assert len(deployments) == 1 and len(services) == 1
    container = deployments[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "redis:7-alpine"
    assert "--appendonly" in container["args"]
    assert [p["port"] for p in services[0]["spec"]["ports"]] == [REDIS_PORT]
    assert services[0]["spec"]["selector"].items() <= deployments[0]["spec"]["template"]["metadata"]["labels"].items()


# --- both -----------------------------------------------------------------------------------------------------


def test_both_files_ship_the_same_ray_settings() -> None:
    def settings(env: dict[str, str]) -> dict[str, str | None]:
        return {key: env.get(key) for key in [*HEALTH_CHECKS, "RAY_USAGE_STATS_ENABLED"]}

    compose = {
        name: settings({k: str(v) for k, v in svc.get("environment", {}).items()})
        for name, svc in ray_compose_services().items()
    }
    kuberay = {name: settings(kube_env(ray_container(group))) for name, group in ray_groups()}
    values = {tuple(sorted(s.items(), key=str)) for s in [*compose.values(), *kuberay.values()]}
    assert len(values) == 1, (compose, kuberay)
    assert compose_head()["port"] == ray_cluster()["spec"]["headGroupSpec"]["rayStartParams"]["port"]


def test_documented_ray_addresses_use_the_head_port() -> None:
    port = compose_head()["port"]
    texts = {path.name: path.read_text() for path in [COMPOSE, KUBERAY, REPO / "docs" / "cluster.md"]}
    addresses = {
        name: re.findall(r"--ray-address[ =]+\S+:(\d+)", text) for name, text in texts.items()
    }
    for name, found in addresses.items():
        assert found, f"{name} shows no --ray-address example"
        assert set(found) == {port}, f"{name} uses ports {found}; the head listens on {port}"


def test_every_ray_process_requires_the_cluster_token() -> None:
    """Token authentication on everywhere Ray runs: whoever reaches a Ray port still cannot run code."""
    compose = yaml.safe_load(COMPOSE.read_text())
    for name in ("ray-head", "ray-worker"):
        env = compose["services"][name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in env
    docs = list(yaml.safe_load_all(KUBERAY.read_text()))
    cluster = next(d for d in docs if d and d.get("kind") == "RayCluster")["spec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "trackstream-ray-token"

"""Fixtures of the Ray tests: one real multi-node cluster on loopback shared by a module's tests (starting one
takes ~15 s; it is gone before other modules' timing-sensitive tests run), and a real redis-server for
snapshots and outputs. See raycluster.py."""

from __future__ import annotations

import importlib.util
from typing import Iterator

import pytest

from tests.conftest import IN_CI
from tests.live.conftest import gst_ready  # noqa: F401 - the RTSP test server's check, shared
from tests.redis.conftest import RedisServer, _server


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator["object"]:
    if importlib.util.find_spec("ray") is None:
        if IN_CI:
            pytest.fail("Ray is not installed under CI (it is in the test extras)", pytrace=False)
        pytest.skip("Ray not installed (pip install -e '.[test]')")
    from tests.cluster.raycluster import RayCluster

    cluster = RayCluster(workers=2)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def cluster_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from _server(tmp_path_factory.mktemp("cluster-redis"))



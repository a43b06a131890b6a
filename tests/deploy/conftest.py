"""Fixtures of the deploy tests: one API server for the session, a namespace per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.cluster import Cluster, started_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with started_cluster(tmp_path_factory.mktemp("kapi")) as started:
        yield started


@pytest.fixture()
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, emptied afterwards (and deleted, on a cluster that has them)."""
    name = cluster.namespace()
    yield name
    cluster.kubectl("delete", "inferenceservices", "--all", "-n", name, "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)

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
def namespace(cluster: Cluster) -> str:
    return cluster.namespace()

"""Fixtures of the AWS ports' tests: the network, ALB and ECS cluster they need, on the
session's moto server (``moto_endpoint``, ``aws_client`` in tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowhost.lambdas.aws import AlbRoutes, EcsCompute
from tests.integration.aws.container_support import Package, make_package, make_platform
from tests.integration.aws.container_support import Platform as ServicePlatform
from tests.integration.aws.support import (
    Balancer,
    Cluster,
    Network,
    create_balancer,
    create_cluster,
    create_network,
)

ClientFactory = Callable[[str], Any]


@pytest.fixture
def network(aws_client: ClientFactory) -> Network:
    return create_network(aws_client("ec2"))


@pytest.fixture
def balancer(aws_client: ClientFactory, network: Network) -> Balancer:
    return create_balancer(aws_client("elbv2"), network)


@pytest.fixture
def cluster(aws_client: ClientFactory, network: Network) -> Cluster:
    return create_cluster(aws_client("ecs"), network)


@pytest.fixture
def routes(balancer: Balancer) -> AlbRoutes:
    return AlbRoutes(balancer.client, balancer.listener, balancer.activator)


@pytest.fixture
def compute(cluster: Cluster) -> EcsCompute:
    return EcsCompute(cluster.client, cluster.name, start_timeout=5, poll_interval=0.05)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The echo service of the container tests, as a code package."""
    return make_package(tmp_path_factory)


@pytest.fixture
def platform(aws_client: ClientFactory) -> ServicePlatform:
    """A bucket, a KMS key and a version's queues, as the platform gives a service."""
    return make_platform(aws_client)

"""EcsCompute through the real boto3 ECS client against moto: desired counts, what ECS
reports back, and the errors for a service or cluster that does not exist."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.aws import EcsCompute, ServiceStatus
from tests.integration.aws.support import Balancer, Cluster


def test_set_desired_and_read_back(
    compute: EcsCompute, cluster: Cluster, balancer: Balancer
) -> None:
    group = balancer.target_group()
    name = cluster.service("svc-v1", group)

    idle = compute.status(name)
    assert (idle.cluster, idle.name, idle.status) == (cluster.name, name, "ACTIVE")
    assert (idle.desired, idle.running, idle.pending) == (0, 0, 0)
    assert idle.at_zero
    assert idle.target_group_arns == (group,)
    assert idle.rollout == "COMPLETED"

    after = compute.set_desired(name, 2)
    assert after.desired == 2
    assert not after.at_zero
    again = compute.status(name)
    assert again.desired == 2
    assert again.running == 2  # moto starts tasks at once
    assert again.steady

    assert compute.set_desired(name, 0).desired == 0


def test_wait_until_running_reports_progress(compute: EcsCompute, cluster: Cluster) -> None:
    name = cluster.service("svc-v2", None)
    compute.set_desired(name, 1)
    said: list[str] = []
    status = asyncio.run(compute.wait_until_running(name, 1, progress=said.append))
    assert status.running == 1
    assert said == [f"{name}: 1/1 running, 0 pending, rollout COMPLETED"]


def test_wait_gives_up_with_what_ecs_said(cluster: Cluster) -> None:
    compute = EcsCompute(cluster.client, cluster.name, start_timeout=0.3, poll_interval=0.05)
    name = cluster.service("svc-v3", None)
    compute.set_desired(name, 1)
    with pytest.raises(DeployError) as caught:
        asyncio.run(compute.wait_until_running(name, 2))  # one task will never be two
    message = caught.value.message
    assert message.startswith(f"ECS service {name!r} in cluster {cluster.name!r}: ")
    assert "not running within 0.3s (got 1/1 running, 0 pending, rollout COMPLETED)" in message
    assert "Check the task's logs" in message


@pytest.mark.parametrize("call", ["status", "set_desired"])
def test_a_missing_service_names_cluster_service_and_fix(
    compute: EcsCompute, cluster: Cluster, call: str
) -> None:
    action = (
        (lambda: compute.status("nope-v1"))
        if call == "status"
        else (lambda: compute.set_desired("nope-v1", 1))
    )
    with pytest.raises(NotFoundError) as caught:
        action()
    message = caught.value.message
    assert message.startswith(f"ECS service 'nope-v1' in cluster {cluster.name!r}: not found (got ")
    assert "Create it with ServiceSpec in the user stack" in message


def test_a_missing_cluster_is_not_found_too(aws_client: Any) -> None:
    compute = EcsCompute(aws_client("ecs"), "no-such-cluster")
    with pytest.raises(NotFoundError, match=r"in cluster 'no-such-cluster': not found \(got "):
        compute.set_desired("svc-v1", 1)


def test_negative_counts_are_refused_before_any_call(compute: EcsCompute) -> None:
    with pytest.raises(ValueError, match=r"desired count must be >= 0 \(got -1\)"):
        compute.set_desired("svc-v1", -1)


def test_a_failed_rollout_is_read_from_the_primary_deployment() -> None:
    """moto never fails a rollout, so this reads a description shaped like ECS's own."""
    raw = {
        "serviceName": "svc-v4", "status": "ACTIVE",
        "desiredCount": 2, "runningCount": 0, "pendingCount": 0,
        "loadBalancers": [{"targetGroupArn": "arn:tg", "containerName": "app"}],
        "deployments": [
            {"status": "ACTIVE", "rolloutState": "COMPLETED"},
            {"status": "PRIMARY", "rolloutState": "FAILED",
             "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start."},
        ],
        "events": [{"message": f"event {i}"} for i in range(8)],
    }  # fmt: skip
    status = ServiceStatus.from_description("c", raw)
    assert status.failed
    assert not status.steady
    assert status.events == tuple(f"event {i}" for i in range(5))
    assert status.describe() == (
        "0/2 running, 0 pending, rollout FAILED "
        "(ECS deployment circuit breaker: tasks failed to start.)"
    )

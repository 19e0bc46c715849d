"""Arguments are checked before any child exists; messages name the service and fields."""

from __future__ import annotations

from typing import Any

import pytest

from flowhost.errors import DeployError
from tests.infra.observability.harness import ecs_args, eks_args, run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (ecs_args(target_group_arn=None), "a CPU (ECS) service needs target_group_arn (got None)"),
        (
            ecs_args(ecs_cluster_name=None, ecs_service_name=None),
            "needs ecs_cluster_name, ecs_service_name",
        ),
        (ecs_args(eks_namespace="x"), "a CPU (ECS) service does not use eks_namespace"),
        (eks_args(eks_cluster_name=None), "a GPU (EKS) service needs eks_cluster_name"),
        (eks_args(load_balancer_arn="arn"), "a GPU (EKS) service does not use load_balancer_arn"),
        (ecs_args(version=0), "version must be 1 or more (got 0)"),
    ],
)
def test_bad_arguments_create_nothing(args: Any, message: str) -> None:
    with pytest.raises(
        DeployError, match=r"ServiceObservability 'svc' \(service 'sentiment'\)"
    ) as info:
        run(args)
    assert message in str(info.value)

"""GPU instance types from the allow-list; autoscaled ECS services ignore desiredCount."""

from typing import Any

import pytest

from policies.engine import PolicyConfig, Resource
from policies.rules import compute
from policies.rules.compute import (
    EC2_INSTANCE,
    ECS_SERVICE,
    EKS_NODE_GROUP,
    LAUNCH_TEMPLATE,
    SCALING_TARGET,
    is_accelerated,
)
from tests.policies.support import res, run

GPU, ECS = compute.RULES


@pytest.mark.parametrize(
    ("instance_type", "accelerated"),
    [
        ("g5.xlarge", True),
        ("p4d.24xlarge", True),
        ("gr6.4xlarge", True),
        ("inf2.xlarge", True),
        ("trn1.2xlarge", True),
        ("dl1.24xlarge", True),
        ("m7g.large", False),
        ("c7gn.xlarge", False),
        ("t3.medium", False),
        ("r6i.large", False),
    ],
)
def test_accelerated_families(instance_type: str, accelerated: bool) -> None:
    assert is_accelerated(instance_type) is accelerated


def test_allowed_gpu_and_plain_types_pass() -> None:
    resources = [
        res(EKS_NODE_GROUP, "gpu", {"instanceTypes": ["g5.xlarge"]}),
        res(LAUNCH_TEMPLATE, "gpu-lt", {"instanceType": "g5.xlarge"}),
        res(EC2_INSTANCE, "bastion", {"instanceType": "t3.micro"}),
    ]
    assert run([GPU], resources) == []


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        (EKS_NODE_GROUP, {"instanceTypes": ["g5.xlarge", "p4d.24xlarge"]}),
        (LAUNCH_TEMPLATE, {"instanceType": "p4d.24xlarge"}),
        (EC2_INSTANCE, {"instanceType": "p4d.24xlarge"}),
    ],
)
def test_gpu_type_outside_the_allow_list_fails(type_: str, props: dict[str, Any]) -> None:
    found = run([GPU], [res(type_, "gpu", props)])
    assert len(found) == 1
    assert "'p4d.24xlarge'" in found[0].message
    assert "g5.xlarge" in found[0].message
    assert "allowedGpuInstanceTypes" in found[0].message


def test_no_allow_list_means_no_gpus() -> None:
    found = run(
        [GPU], [res(EKS_NODE_GROUP, "gpu", {"instanceTypes": ["g5.xlarge"]})], PolicyConfig()
    )
    assert len(found) == 1
    assert "allowed: none" in found[0].message


def service(name: str = "sentiment-v1", ignore: tuple[str, ...] = ("desiredCount",)) -> Resource:
    props = {"name": name, "cluster": "arn:aws:ecs:eu-west-1:1:cluster/flowhost", "desiredCount": 0}
    return res(
        ECS_SERVICE, name, props, id=f"arn:aws:ecs:::service/flowhost/{name}", ignore_changes=ignore
    )


def target(service_name: str = "sentiment-v1", **extra: Any) -> Resource:
    props = {
        "serviceNamespace": "ecs",
        "scalableDimension": "ecs:service:DesiredCount",
        "resourceId": f"service/flowhost/{service_name}",
        "minCapacity": 0,
        "maxCapacity": 8,
    }
    return res(SCALING_TARGET, f"{service_name}-scaling", props, **extra)


def test_autoscaled_service_that_ignores_desired_count_passes() -> None:
    assert run([ECS], [service(), target()]) == []


def test_autoscaled_service_without_ignore_changes_fails() -> None:
    found = run([ECS], [service(ignore=()), target()])
    assert [(v.policy, v.resource_name) for v in found] == [(ECS.name, "sentiment-v1")]
    assert "ignore_changes=['desiredCount']" in found[0].message
    assert "'sentiment-v1-scaling'" in found[0].message


def test_service_without_an_autoscaling_target_may_set_its_count() -> None:
    assert run([ECS], [service("batch", ignore=()), target("other")]) == []


def test_target_matches_by_dependency_when_names_are_unknown() -> None:
    svc = res(ECS_SERVICE, "svc", {"desiredCount": 1})
    scaling = target("unknown", property_dependencies={"resourceId": (svc.urn,)})
    assert [v.resource_name for v in run([ECS], [svc, scaling])] == ["svc"]


def test_target_matches_an_autonamed_service_by_its_arn() -> None:
    svc = res(ECS_SERVICE, "svc", {"desiredCount": 1}, id="arn:aws:ecs:::service/flowhost/svc-9a8b")
    assert [v.resource_name for v in run([ECS], [svc, target("svc-9a8b")])] == ["svc"]

"""Component tier: what one CPU ServiceSpec creates, under the recording mock."""

from __future__ import annotations

import json
from collections import Counter

from flowhost.infra.service_routes import FIRST_STACK_PRIORITY, LAST_STACK_PRIORITY
from flowhost.lambdas.aws.fleet import ecs_service_name
from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.routes import FIRST_PRIORITY, LAST_PRIORITY, path_patterns
from tests.infra.services.conftest import ServicesRun
from tests.infra.services.harness import ACTIVATOR_TG, BOUNDARY, KMS_KEY, LISTENER_ARN

SERVICE_CHILDREN = {
    "aws:s3/bucketObjectv2:BucketObjectv2": 1,
    "aws:sqs/queue:Queue": 2,
    "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:iam/role:Role": 2,
    "aws:iam/rolePolicy:RolePolicy": 2,
    "aws:lb/targetGroup:TargetGroup": 1,
    "aws:lb/listenerRule:ListenerRule": 2,  # v1 and production
    "aws:ecs/taskDefinition:TaskDefinition": 1,
    "aws:ecs/service:Service": 1,
    "aws:appautoscaling/target:Target": 1,
    "aws:appautoscaling/policy:Policy": 2,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 1,  # the backlog alarm (step scaling)
}


def test_exact_children_of_a_cpu_service(services: ServicesRun) -> None:
    children = services.children("tiny")
    custom = Counter(r.type for r in children if r.custom)
    assert dict(custom) == SERVICE_CHILDREN
    components = sorted(r.type for r in children if not r.custom)
    assert components == ["flowhost:service:Observability"]
    assert all(r.name.startswith("tiny-") for r in children)


def test_ecs_service_starts_at_min_and_leaves_the_count_to_autoscaling(
    services: ServicesRun,
) -> None:
    service = services.named("tiny-service")
    assert service.inputs["name"] == ecs_service_name("tiny", 1) == "tiny-v1"
    assert services.specs["tiny"].ecs_service_name == "tiny-v1"
    assert service.inputs["desiredCount"] == 0
    assert "desiredCount" in service.ignore_changes
    assert service.inputs["capacityProviderStrategies"] == [
        {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
        {"capacityProvider": "FARGATE_SPOT", "weight": 1},
    ]
    assert service.inputs["networkConfiguration"] == {
        "subnets": ["subnet-a", "subnet-b"],
        "securityGroups": ["sg-services"],
        "assignPublicIp": False,
    }
    (balancer,) = service.inputs["loadBalancers"]
    assert balancer["containerName"] == "service"
    assert balancer["containerPort"] == 8080
    rules = {services.named(f"tiny-route-{a}").urn for a in ("v1", "production")}
    assert rules <= set(service.dependencies)
    assert services.named("scored-v2-service").inputs["desiredCount"] == 1


def test_task_definition_sizes_and_roles(services: ServicesRun) -> None:
    task = services.named("tiny-task")
    assert (task.inputs["cpu"], task.inputs["memory"]) == ("512", "2048")  # 0.5 vCPU, 1.5 GiB
    assert task.inputs["requiresCompatibilities"] == ["FARGATE"]
    assert task.inputs["networkMode"] == "awsvpc"
    assert task.inputs["family"] == "flowhost-dev-tiny-v1"
    assert task.inputs["taskRoleArn"].endswith("/tiny-task-role")
    assert task.inputs["executionRoleArn"].endswith("/tiny-execution-role")
    log_group = services.named("tiny-logs")
    assert log_group.inputs["name"] == "/flowhost/dev/tiny/v1"
    assert log_group.inputs["retentionInDays"] == 30


def test_autoscaling_between_min_and_max(services: ServicesRun) -> None:
    target = services.named("tiny-scaling")
    assert target.inputs["minCapacity"] == 0
    assert target.inputs["maxCapacity"] == 6
    assert target.inputs["resourceId"] == "service/flowhost-dev/tiny-v1"
    assert target.inputs["scalableDimension"] == "ecs:service:DesiredCount"
    requests = services.named("tiny-requests").inputs
    tracking = requests["targetTrackingScalingPolicyConfiguration"]
    metric = tracking["predefinedMetricSpecification"]
    assert metric["predefinedMetricType"] == "ALBRequestCountPerTarget"
    assert metric["resourceLabel"].startswith("app/flowhost-dev-alb/50dc6c495c0c9188/")
    assert tracking["targetValue"] == 3 * 60  # target_concurrency 3, ~1 s requests
    step = services.named("tiny-backlog")
    assert step.inputs["policyType"] == "StepScaling"
    steps = step.inputs["stepScalingPolicyConfiguration"]["stepAdjustments"]
    assert [s["scalingAdjustment"] for s in steps] == [1, 2, 4]
    alarm = services.named("tiny-backlog-alarm")
    assert alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm.inputs["dimensions"] == {"QueueName": "flowhost-dev-tiny-v1"}
    assert step.urn in alarm.property_dependencies["alarmActions"]


def test_queue_and_dead_letter_queue_match_the_control_plane(services: ServicesRun) -> None:
    queue, dlq = services.named("tiny-queue"), services.named("tiny-dlq")
    names = SQSQueues.__new__(SQSQueues)
    names.prefix = "flowhost-dev-"
    assert queue.inputs["name"] == names.name("tiny", 1) == "flowhost-dev-tiny-v1"
    assert dlq.inputs["name"] == "flowhost-dev-tiny-v1-dlq"
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive["maxReceiveCount"] == 3
    assert redrive["deadLetterTargetArn"].endswith(":flowhost-dev-tiny-v1-dlq")
    for q in (queue, dlq):
        assert q.inputs["kmsMasterKeyId"] == KMS_KEY
    assert dlq.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert services.named("scored-v2-queue").inputs["name"] == "flowhost-dev-scored-v2"


def test_routes_have_the_alb_routes_shape_and_survive_a_park(services: ServicesRun) -> None:
    for alias in ("v1", "production"):
        rule = services.named(f"tiny-route-{alias}")
        assert rule.inputs["listenerArn"] == LISTENER_ARN
        (condition,) = rule.inputs["conditions"]
        assert condition["pathPattern"]["values"] == list(path_patterns("tiny", alias))
        (action,) = rule.inputs["actions"]
        groups = action["forward"]["targetGroups"]
        # min_instances 0: parked from the start, requests go to the activator
        assert [g["weight"] for g in groups] == [0, 1]
        assert groups[1]["arn"] == ACTIVATOR_TG
        assert rule.ignore_changes == ("actions",)
        assert FIRST_PRIORITY <= FIRST_STACK_PRIORITY <= rule.inputs["priority"]
        assert rule.inputs["priority"] <= LAST_STACK_PRIORITY == LAST_PRIORITY
    serving = services.named("scored-v2-route-v2")
    assert [g["weight"] for g in serving.inputs["actions"][0]["forward"]["targetGroups"]] == [1, 0]
    target_group = services.named("tiny-tg").inputs
    assert target_group["targetType"] == "ip"
    assert target_group["port"] == 8080
    assert target_group["healthCheck"]["path"] == "/readyz"
    assert len(target_group["name"]) <= 32


def test_two_services_in_one_program_do_not_collide(services: ServicesRun) -> None:
    mine = [r for r in services.run.resources if r.custom]
    assert len({r.urn for r in mine}) == len(mine)
    rules = [r for r in mine if r.type == "aws:lb/listenerRule:ListenerRule"]
    assert len(rules) == 2 + 3
    priorities = [r.inputs["priority"] for r in rules]
    assert len(set(priorities)) == len(priorities)
    for token in (
        "aws:sqs/queue:Queue",
        "aws:ecs/service:Service",
        "aws:lb/targetGroup:TargetGroup",
    ):
        names = [r.inputs["name"] for r in mine if r.type == token]
        assert len(set(names)) == len(names), token
    assert services.specs["scored"].rule_priorities.keys() == {"v2", "production", "canary"}


def test_every_role_has_the_boundary_and_every_resource_the_tags(services: ServicesRun) -> None:
    for role in services.run.of_type("aws:iam/role:Role"):
        assert role.inputs["permissionsBoundary"] == BOUNDARY
    tiny = [r for r in services.children("tiny") if "tags" in r.inputs]
    assert len(tiny) >= 10
    for r in tiny:
        tags = r.inputs["tags"]
        assert tags["flowhost:environment"] == "dev"
        assert tags["flowhost:service"] == "tiny"
        assert tags["owner"] == "platform-team"
    assert services.named("scored-v2-queue").inputs["tags"]["owner"] == "ml-team"


def test_code_package_is_uploaded_encrypted_at_its_content_key(services: ServicesRun) -> None:
    package = services.named("tiny-package").inputs
    assert package["key"] == services.specs["tiny"].package_key
    assert package["key"].startswith("packages/sha256-")
    assert package["key"].endswith(".tar.gz")
    assert package["serverSideEncryption"] == "aws:kms"
    assert package["kmsKeyId"] == KMS_KEY

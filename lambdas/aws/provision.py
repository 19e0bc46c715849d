"""Everything per version on ECS, created and removed by the control plane.

The control plane owns each version's resources (one owner for every resource): its
queue and dead-letter queue, target group, own listener rule (``S@vN``, parked), task
definition, ECS service (created at zero; ``EcsFleet`` sets the count) and its
autoscaling target and policy. They are made from the version record and the service's
envelope (``flowhost.services.envelope``), which the service's stack (``ServiceSpec``)
writes to SSM. Every step is idempotent and found again by name, so a deploy that is
advanced again after a crash or by another process finishes the same resources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from flowhost.errors import DeployError
from flowhost.lambdas.aws.errors import aws_errors, error_code
from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.routes import AlbRoutes
from flowhost.lambdas.aws.taskdef import SERVICE_PORT, SERVING, task_definition
from flowhost.lambdas.store import VersionRecord
from flowhost.services.envelope import ServiceEnvelope, envelope_parameter, version_environment

__all__ = ["EcsVersions", "VersionResources", "target_group_name"]

MAX_TARGET_GROUP_NAME = 32


def target_group_name(environment: str, service: str, number: int) -> str:
    """``<env>-<service>-v<N>``, or, past ALB's 32 characters, a prefix of it with a hash
    of the whole (unique per account and region)."""
    full = f"{environment}-{service}-v{number}"
    if len(full) <= MAX_TARGET_GROUP_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    head = full[: MAX_TARGET_GROUP_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def _resource_label(load_balancer_arn: str, target_group_arn: str) -> str:
    """``app/<alb>/<id>/targetgroup/<tg>/<id>`` (ALBRequestCountPerTarget's label)."""
    balancer = load_balancer_arn.split(":loadbalancer/", 1)[-1]
    return f"{balancer}/{target_group_arn.rsplit(':', 1)[-1]}"


@dataclass(frozen=True, slots=True)
class VersionResources:
    """What a version runs on, once provisioned."""

    ecs_service: str
    target_group_arn: str
    task_definition_arn: str
    queue_url: str


class EcsVersions:
    """Creates and removes versions' resources in one cluster, from their envelopes."""

    def __init__(
        self,
        *,
        ecs: Any,
        elbv2: Any,
        ssm: Any,
        autoscaling: Any,
        queues: SQSQueues,
        routes: AlbRoutes,
        environment: str,
        cluster: str,
    ) -> None:
        self.ecs: Any = ecs
        self.elbv2: Any = elbv2
        self.ssm: Any = ssm
        self.autoscaling: Any = autoscaling
        self.queues = queues
        self.routes = routes
        self.environment = environment
        self.cluster = cluster

    # the envelope

    def envelope(self, service: str) -> ServiceEnvelope:
        """The service's envelope as its stack last wrote it."""
        name = envelope_parameter(self.environment, service)
        with aws_errors(
            f"service {service!r}: envelope {name}",
            "GetParameter",
            missing=("ParameterNotFound",),
            missing_fix=(
                f"Create the service's envelope with ServiceSpec({service!r}, ...) in a user "
                "stack and run pulumi up, before deploying versions of it"
            ),
        ):
            found = self.ssm.get_parameter(Name=name)
        try:
            envelope = ServiceEnvelope.model_validate_json(str(found["Parameter"]["Value"]))
        except ValueError as error:
            raise DeployError(
                f"service {service!r}: envelope {name} is not a flowhost envelope ({error}). "
                "Write it with flowhost.infra.ServiceSpec (pulumi up)."
            ) from None
        if envelope.service != service or envelope.environment != self.environment:
            raise DeployError(
                f"service {service!r}: envelope {name} names {envelope.service!r} on "
                f"{envelope.environment!r}. Write it with flowhost.infra.ServiceSpec."
            )
        return envelope

    # creating

    def ensure(self, version: VersionRecord) -> VersionResources:
        """Create what ``version`` runs on (idempotent); its ECS service starts at zero."""
        envelope = self.envelope(version.service)
        ecs = envelope.ecs
        if ecs is None:
            raise DeployError(
                f"{version.service} {version.label}: a GPU service's versions run on EKS, "
                "which its stack manages; deploy it with ServiceSpec."
            )
        queue = self.queues.queue(version.service, version.number)
        self._queue_settings(queue.url, envelope)
        target_group = self._target_group(envelope, version.number)
        # ECS refuses a service whose target group no rule uses: route vN first, parked.
        own = self.routes.find(version.service, version.label)
        if own is None or own.target_group_arn != target_group:
            self.routes.point(version.service, version.label, target_group, parked=True)
        binding = version.definition.artifacts
        environment = version_environment(
            envelope,
            number=version.number,
            digest=version.code_digest,
            entrypoint=version.definition.entrypoint,
            run=version.artifact_run,
            artifact_flow=binding.flow_name if binding is not None else None,
            queue_name=queue.name,
            queue_url=queue.url,
            dead_letter_url=queue.dead_letter_url,
            environment_digest=(
                version.environment_digest if version.definition.environment else None
            ),
        )
        task = self._task_definition(envelope, version.number, environment)
        name = self._service(envelope, version, task, target_group)
        self._scaling(envelope, version, name, target_group)
        return VersionResources(name, target_group, task, queue.url)

    def _queue_settings(self, url: str, envelope: ServiceEnvelope) -> None:
        """The envelope's retention and visibility on the version's queue (the redrive
        count is the platform's, which the workers count deliveries against)."""
        settings = envelope.queues
        with aws_errors(f"SQS queue {url}", "SetQueueAttributes"):
            self.queues.client.set_queue_attributes(
                QueueUrl=url,
                Attributes={
                    "MessageRetentionPeriod": str(settings.retention_seconds),
                    "VisibilityTimeout": str(settings.visibility_timeout_seconds),
                },
            )

    def _target_group(self, envelope: ServiceEnvelope, number: int) -> str:
        assert envelope.ecs is not None
        name = target_group_name(self.environment, envelope.service, number)
        found = self._find_target_group(name)
        if found is not None:
            return found
        with aws_errors(f"target group {name}", "CreateTargetGroup"):
            created = self.elbv2.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=SERVICE_PORT,
                VpcId=envelope.ecs.vpc_id,
                TargetType="ip",
                HealthCheckPath="/readyz",
                HealthCheckIntervalSeconds=15,
                HealthCheckTimeoutSeconds=5,
                HealthyThresholdCount=2,
                UnhealthyThresholdCount=3,
                Matcher={"HttpCode": "200"},
                Tags=self._tags(envelope.service, number),
            )
            arn = str(created["TargetGroups"][0]["TargetGroupArn"])
            self.elbv2.modify_target_group_attributes(
                TargetGroupArn=arn,
                Attributes=[
                    {
                        "Key": "deregistration_delay.timeout_seconds",
                        "Value": str(envelope.ecs.deregistration_delay_seconds),
                    }
                ],
            )
        return arn

    def _task_definition(
        self, envelope: ServiceEnvelope, number: int, environment: dict[str, str]
    ) -> str:
        wanted = task_definition(envelope, number, environment)
        family = str(wanted["family"])
        try:
            found = self.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        except ClientError as error:
            if error_code(error) not in ("ClientException", "ClientError"):
                with aws_errors(f"task definition {family}", "DescribeTaskDefinition"):
                    raise
            found = None
        if found is not None and _same_containers(found, wanted):
            return str(found["taskDefinitionArn"])
        with aws_errors(f"task definition {family}", "RegisterTaskDefinition"):
            made = self.ecs.register_task_definition(**wanted)
        return str(made["taskDefinition"]["taskDefinitionArn"])

    def _service(
        self, envelope: ServiceEnvelope, version: VersionRecord, task: str, target_group: str
    ) -> str:
        ecs = envelope.ecs
        assert ecs is not None
        name = f"{version.service}-v{version.number}"
        where = f"ECS service {name!r} in cluster {self.cluster!r}"
        with aws_errors(where, "DescribeServices"):
            found = self.ecs.describe_services(cluster=self.cluster, services=[name])
        services: list[Mapping[str, Any]] = found.get("services") or []
        existing = [s for s in services if s.get("status") == "ACTIVE"]
        if existing:
            return name
        strategies: list[dict[str, Any]] = [{"capacityProvider": "FARGATE", "base": 1, "weight": 1}]
        if ecs.spot_weight:
            strategies.append({"capacityProvider": "FARGATE_SPOT", "weight": ecs.spot_weight})
        with aws_errors(where, "CreateService"):
            self.ecs.create_service(
                cluster=self.cluster,
                serviceName=name,
                taskDefinition=task,
                desiredCount=0,  # EcsFleet sets the count; the scaler and activator own it
                capacityProviderStrategy=strategies,
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": list(ecs.subnets),
                        "securityGroups": list(ecs.security_groups),
                        "assignPublicIp": "DISABLED",
                    }
                },
                loadBalancers=[
                    {
                        "targetGroupArn": target_group,
                        "containerName": SERVING,
                        "containerPort": SERVICE_PORT,
                    }
                ],
                healthCheckGracePeriodSeconds=ecs.health_check_grace_seconds,
                deploymentConfiguration={
                    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                    "minimumHealthyPercent": 100,
                    "maximumPercent": 200,
                },
                propagateTags="SERVICE",
                enableECSManagedTags=True,
                tags=[
                    {"key": t["Key"], "value": t["Value"]}
                    for t in self._tags(version.service, version.number)
                ],
            )
        return name

    def _scaling(
        self, envelope: ServiceEnvelope, version: VersionRecord, name: str, target_group: str
    ) -> None:
        ecs = envelope.ecs
        assert ecs is not None
        scaling = version.definition.scaling
        resource = f"service/{_cluster_name(self.cluster)}/{name}"
        with aws_errors(f"autoscaling of {resource}", "RegisterScalableTarget"):
            self.autoscaling.register_scalable_target(
                ServiceNamespace="ecs",
                ResourceId=resource,
                ScalableDimension="ecs:service:DesiredCount",
                MinCapacity=scaling.min_instances,
                MaxCapacity=scaling.max_instances,
            )
            self.autoscaling.put_scaling_policy(
                PolicyName=f"{name}-requests",
                ServiceNamespace="ecs",
                ResourceId=resource,
                ScalableDimension="ecs:service:DesiredCount",
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(ecs.requests_per_target_per_minute),
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ALBRequestCountPerTarget",
                        "ResourceLabel": _resource_label(ecs.load_balancer_arn, target_group),
                    },
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            )

    def _tags(self, service: str, number: int) -> list[dict[str, str]]:
        return [
            {"Key": "flowhost:environment", "Value": self.environment},
            {"Key": "flowhost:service", "Value": service},
            {"Key": "flowhost:version", "Value": str(number)},
            {"Key": "flowhost:owner", "Value": "control-plane"},
        ]

    # removing

    def remove(self, service: str, number: int) -> bool:
        """Delete what version ``number`` runs on, in an order AWS accepts; what is
        already gone is skipped. False while something could not go yet (a target group
        still in use by a draining service): call again later."""
        name = f"{service}-v{number}"
        target_group = self._find_target_group(target_group_name(self.environment, service, number))
        if target_group is not None:
            self.routes.remove_target(target_group)
        resource = f"service/{_cluster_name(self.cluster)}/{name}"
        done = _gone(
            f"autoscaling of {resource}",
            lambda: self.autoscaling.deregister_scalable_target(
                ServiceNamespace="ecs",
                ResourceId=resource,
                ScalableDimension="ecs:service:DesiredCount",
            ),
        )
        done &= _gone(
            f"ECS service {name!r}",
            lambda: self.ecs.delete_service(cluster=self.cluster, service=name, force=True),
        )
        if target_group is not None:
            arn = target_group
            done &= _gone(
                f"target group {arn}", lambda: self.elbv2.delete_target_group(TargetGroupArn=arn)
            )
        self._deregister_family(f"flowhost-{self.environment}-{service}-v{number}")
        self.queues.remove(service, number)
        return done

    def _find_target_group(self, name: str) -> str | None:
        try:
            found = self.elbv2.describe_target_groups(Names=[name])
        except ClientError:
            return None
        groups: list[Mapping[str, Any]] = found.get("TargetGroups") or []
        return str(groups[0]["TargetGroupArn"]) if groups else None

    def _deregister_family(self, family: str) -> None:
        with aws_errors(f"task definition family {family}", "ListTaskDefinitions"):
            listed = self.ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")
        raw: list[Any] = listed.get("taskDefinitionArns") or []
        arns = [str(a) for a in raw]
        for arn in arns:
            if str(arn).split("/")[-1].rsplit(":", 1)[0] == family:
                self.ecs.deregister_task_definition(taskDefinition=arn)

    # drift

    def present(self, versions: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Those of ``versions`` whose target group still exists."""
        return [
            (service, number)
            for service, number in versions
            if self._find_target_group(target_group_name(self.environment, service, number))
        ]

    def running_versions(self) -> dict[str, set[int]]:
        """The versions that have an ACTIVE ECS service in the cluster, by service (a
        deleted one drains, then goes INACTIVE: neither counts)."""
        arns: list[str] = []
        paginator = self.ecs.get_paginator("list_services")
        with aws_errors(f"cluster {self.cluster!r}", "ListServices"):
            for page in paginator.paginate(cluster=self.cluster):
                names: list[Any] = page.get("serviceArns") or []
                arns.extend(str(a) for a in names)
        out: dict[str, set[int]] = {}
        for start in range(0, len(arns), 10):  # DescribeServices takes up to 10
            with aws_errors(f"cluster {self.cluster!r}", "DescribeServices"):
                found = self.ecs.describe_services(
                    cluster=self.cluster, services=arns[start : start + 10]
                )
            described: list[Mapping[str, Any]] = found.get("services") or []
            for raw in described:
                if raw.get("status") != "ACTIVE":
                    continue
                service, _, number = str(raw.get("serviceName", "")).rpartition("-v")
                if service and number.isdigit():
                    out.setdefault(service, set()).add(int(number))
        return out


def _cluster_name(cluster: str) -> str:
    return cluster.rsplit("/", 1)[-1]


def _same_containers(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a registered revision already is ``wanted`` (same containers and roles)."""

    def key(value: Mapping[str, Any]) -> str:
        given: list[Mapping[str, Any]] = list(value.get("containerDefinitions") or [])
        containers = [
            {k: c.get(k) or None for k in ("name", "image", "environment", "secrets")}
            for c in given
        ]
        return json.dumps(
            [containers, value.get("taskRoleArn"), value.get("cpu"), value.get("memory")],
            sort_keys=True,
        )

    return key(found) == key(wanted)


_GONE = frozenset(
    {"ServiceNotFoundException", "TargetGroupNotFound", "ObjectNotFoundException",
     "ClusterNotFoundException"}
)  # fmt: skip


def _gone(where: str, call: Callable[[], object]) -> bool:
    """Run a delete whose target may already be gone; False if it is still in use."""
    try:
        call()
    except ClientError as error:
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", ""))
        if code in _GONE or (code == "ValidationException" and "No scalable target" in message):
            return True
        if code == "ResourceInUse":
            return False
        with aws_errors(where, "Delete"):
            raise
    return True

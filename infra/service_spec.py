"""``ServiceSpec``: one version of a flowhost service in a user stack.

    platform = PlatformRef.from_stack("acme/flowhost-platform/prod")
    ServiceSpec("sentiment", spec=Sentiment, platform=platform, version=3)

The container runs the platform's runtime image (``platform.runtime_image``, the stack
output ``runtimeImage``) unless ``image=`` names another.

From the service's ``ServiceDefinition`` (compiled from the class; the class itself is
only used to find its source directory, the code package) it creates the code package
object, the version's queue and dead-letter queue, its task and execution roles, and
either an ECS Fargate service with its target group, routes and autoscaling (CPU) or a
``GpuWorkload`` on EKS (``resources.gpu > 0``), plus its ``ServiceObservability``.
Arguments are checked before any child exists. The container's environment is the
contract documented in docs/aws.md ("ServiceSpec").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.infra.iam import Account
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service_code import cached_package, code_location, service_environment
from flowhost.infra.service_ecs import EcsArgs, create_ecs_service, create_log_group
from flowhost.infra.service_gpu import GpuWorkload, GpuWorkloadArgs
from flowhost.infra.service_observability import ServiceObservability, ServiceObservabilityArgs
from flowhost.infra.service_queue import QueueArgs, ServiceQueues, create_queues
from flowhost.infra.service_role import RoleArgs, ServiceRoles, create_roles, task_policy
from flowhost.infra.service_routes import RouteArgs, create_routes
from flowhost.infra.service_scaling import ScalingArgs, create_scaling
from flowhost.infra.service_validation import ServiceOptions, validate
from flowhost.infra.tags import Tagging
from flowhost.services.definition import ServiceDefinition
from flowhost.services.packaging import build_package, package_key
from flowhost.services.spec import WebServiceSpec, definition_of

__all__ = ["DEFAULT_OWNER", "ServiceSpec"]

DEFAULT_OWNER = "platform-team"


class ServiceSpec(pulumi.ComponentResource):
    """Version ``version`` of a service: its package, queues, roles, compute and telemetry."""

    task_role_arn: pulumi.Output[str] | None  # the IRSA role's on EKS
    execution_role_arn: pulumi.Output[str] | None  # ECS only
    ecs_service_name: str | None
    gpu_deployment_name: pulumi.Output[str] | None
    target_group_arn: pulumi.Output[str] | None
    log_group_name: pulumi.Output[str] | None
    dashboard_name: pulumi.Output[str] | None
    grafana_json: pulumi.Input[str] | None

    def __init__(
        self,
        name: str,
        spec: type[WebServiceSpec] | ServiceDefinition,
        platform: PlatformRef,
        *,
        version: int = 1,
        image: pulumi.Input[str] | None = None,
        run: str | None = None,
        code_dir: Path | None = None,
        aliases: Sequence[str] = (),
        owner: str = DEFAULT_OWNER,
        options: ServiceOptions | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        definition = spec if isinstance(spec, ServiceDefinition) else definition_of(spec)
        options = options or ServiceOptions()
        sizes = validate(name, definition, platform, version, run, aliases, options)
        image = platform.runtime_image if image is None else image
        root, entrypoint = code_location(spec, definition, code_dir)
        digest, archive = build_package(root)
        super().__init__("flowhost:service:ServiceSpec", name, None, opts)
        self.definition, self.platform, self.version = definition, platform, version
        service = definition.name
        # platform.environment is an Output when read from a StackReference; tags take it.
        self.tagging = Tagging(platform.environment, owner, service)
        self.account = account = Account.current(parent=self)
        self._adot_arn = account.arn(
            "ssm",
            pulumi.Output.concat(
                "parameter/",
                pulumi.Output.from_input(platform.adot_config_parameter).apply(
                    lambda n: n.lstrip("/")
                ),
            ),
        )
        self.package_key = key = package_key(digest)
        package = aws.s3.BucketObjectv2(
            f"{name}-package",
            bucket=platform.bucket_name,
            key=key,
            source=pulumi.FileAsset(str(cached_package(digest, archive))),
            content_type="application/gzip",
            server_side_encryption="aws:kms",
            kms_key_id=platform.kms_key_arn,
            bucket_key_enabled=True,
            tags=self.tagging.tags(f"{name}-package"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        queues = create_queues(
            name,
            QueueArgs(
                service=service,
                version=version,
                prefix=platform.queue_name_prefix,
                kms_key_arn=platform.kms_key_arn,
                max_receive_count=options.max_receive_count,
                retention_seconds=options.queue_retention_seconds,
                visibility_timeout_seconds=options.visibility_timeout_seconds,
                tagging=self.tagging,
            ),
            self,
        )
        environment = service_environment(
            definition,
            platform,
            version=version,
            run=run,
            package=pulumi.Output.concat("s3://", package.bucket, "/", package.key),
            digest=digest,
            entrypoint=entrypoint,
            queue_url=queues.queue.url,
            queue_name=queues.name,
            dead_letter_url=queues.dead_letter.url,
            region=account.region,
        )
        log_group = None
        if not definition.uses_gpu:
            log_group = create_log_group(
                name, service, version, platform.log_group_prefix,
                options.log_retention_days, self.tagging, self,
            )  # fmt: skip
        binding = definition.artifacts
        pinned = run or (binding.run if binding else None)
        role_args = RoleArgs(
            service=service,
            account=account,
            bucket_arn=platform.bucket_arn,
            kms_key_arn=platform.kms_key_arn,
            package_key=key,
            artifact_flow=(binding.flow or (pinned or "").split("/")[0]) if binding else None,
            queue_name=queues.name,
            log_group_arn=log_group.arn if log_group is not None else None,
            metrics_log_group=pulumi.Output.concat(platform.log_group_prefix, "metrics"),
            adot_parameter_arn=self._adot_arn,
            image=image,
            permissions_boundary_arn=platform.permissions_boundary_arn,
            tagging=self.tagging,
            collector_image=platform.collector_image,
            metaflow_datastore_root=platform.metaflow_datastore_root,
            metaflow_auth_secret_arn=platform.metaflow_auth_secret_arn,
        )
        # On EKS the GPU workload's IRSA role gets the task policy; no ECS roles there.
        roles = create_roles(name, role_args, self) if log_group is not None else None
        self.queue_url, self.queue_arn = queues.queue.url, queues.queue.arn
        self.dead_letter_queue_url = queues.dead_letter.url
        self.dead_letter_queue_arn = queues.dead_letter.arn
        self.task_role_arn = self.execution_role_arn = None
        self.ecs_service_name = self.gpu_deployment_name = self.target_group_arn = None
        self.log_group_name = log_group.name if log_group is not None else None
        self.rule_priorities: dict[str, int] = {}
        if roles is not None and log_group is not None:
            self.task_role_arn, self.execution_role_arn = roles.task.arn, roles.execution.arn
            observe = self._cpu(
                name, sizes, image, environment, aliases, options, queues, roles, log_group
            )
        else:
            observe = self._gpu(name, image, environment, queues, role_args)
        dashboards = self._observability(name, queues, observe)
        self.dashboard_name = dashboards.dashboard_name if dashboards is not None else None
        self.grafana_json = dashboards.grafana_json if dashboards is not None else None
        outputs = {
            "queue_url": self.queue_url,
            "queue_arn": self.queue_arn,
            "dead_letter_queue_url": self.dead_letter_queue_url,
            "dead_letter_queue_arn": self.dead_letter_queue_arn,
            "task_role_arn": self.task_role_arn,
            "execution_role_arn": self.execution_role_arn,
            "ecs_service_name": self.ecs_service_name,
            "gpu_deployment_name": self.gpu_deployment_name,
            "target_group_arn": self.target_group_arn,
            "log_group_name": self.log_group_name,
            "dashboard_name": self.dashboard_name,
            "grafana_json": self.grafana_json,
        }
        self.register_outputs({k: v for k, v in outputs.items() if v is not None})

    def _cpu(
        self, name: str, sizes: tuple[int, int], image: pulumi.Input[str],
        environment: Mapping[str, pulumi.Input[str]], aliases: Sequence[str],
        options: ServiceOptions, queues: ServiceQueues, roles: ServiceRoles,
        log_group: aws.cloudwatch.LogGroup,
    ) -> dict[str, Any]:  # fmt: skip
        """Target group and routes, the ECS service, its autoscaling."""
        definition, platform, tagging = self.definition, self.platform, self.tagging
        scaling = definition.scaling
        routes = create_routes(
            name,
            RouteArgs(
                service=definition.name,
                version=self.version,
                aliases=tuple(aliases),
                parked=scaling.min_instances == 0,
                environment=platform.environment,
                vpc_id=platform.vpc_id,
                listener_arn=platform.alb_listener_arn,
                activator_target_group_arn=platform.activator_target_group_arn,
                deregistration_delay_seconds=options.deregistration_delay_seconds,
                tagging=tagging,
            ),
            self,
        )
        ecs = create_ecs_service(
            name,
            EcsArgs(
                service=definition.name, version=self.version, image=image,
                environment=environment, cpu_units=sizes[0], memory_mib=sizes[1],
                min_instances=scaling.min_instances, spot_weight=options.spot_weight,
                region=self.account.region, adot_parameter_arn=self._adot_arn,
                cluster_arn=platform.ecs_cluster_arn, subnet_ids=platform.private_subnet_ids,
                security_group_id=platform.service_security_group_id,
                target_group_arn=routes.target_group.arn, task_role_arn=roles.task.arn,
                execution_role_arn=roles.execution.arn,
                depends_on=list(routes.rules.values()), tagging=tagging,
                collector_image=platform.collector_image,
                metaflow_environment=platform.metaflow_environment,
                metaflow_auth_secret_arn=platform.metaflow_auth_secret_arn,
            ),
            log_group,
            self,
        )  # fmt: skip
        create_scaling(
            name,
            ScalingArgs(
                service=definition.name,
                min_instances=scaling.min_instances,
                max_instances=scaling.max_instances,
                requests_per_target_per_minute=options.requests_per_target_per_minute
                or scaling.target_concurrency * 60,
                cluster_name=platform.ecs_cluster_name,
                ecs_service_name=ecs.service.name,
                load_balancer_arn=platform.alb_arn,
                target_group_arn=routes.target_group.arn,
                queue_name=queues.name,
                tagging=tagging,
            ),
            ecs.service,
            self,
        )
        self.ecs_service_name = ecs.name
        self.target_group_arn = routes.target_group.arn
        self.rule_priorities = dict(routes.priorities)
        return {
            "load_balancer_arn": platform.alb_arn,
            "target_group_arn": routes.target_group.arn,
            "ecs_cluster_name": platform.ecs_cluster_name,
            "ecs_service_name": ecs.service.name,
        }

    def _gpu(
        self, name: str, image: pulumi.Input[str], environment: Mapping[str, pulumi.Input[str]],
        queues: ServiceQueues, role_args: RoleArgs,
    ) -> dict[str, Any]:  # fmt: skip
        """The EKS workload; its IRSA role gets the task policy (no execution role there)."""
        platform = self.platform
        gpu = GpuWorkload(
            f"{name}-gpu",
            GpuWorkloadArgs(
                definition=self.definition,
                platform=platform,
                version=self.version,
                image=image,
                environment=environment,
                queue_name=queues.name,
                queue_url=queues.queue.url,
                policy_json=task_policy(role_args),
                tagging=self.tagging,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.gpu_deployment_name = gpu.deployment_name
        self.task_role_arn = gpu.role_arn
        return {
            "eks_cluster_name": platform.eks_cluster_name,
            "eks_namespace": platform.eks_services_namespace,
        }

    def _observability(
        self, name: str, queues: ServiceQueues, observe: dict[str, Any]
    ) -> ServiceObservability | None:
        return ServiceObservability(
            f"{name}-observability",
            ServiceObservabilityArgs(
                definition=self.definition,
                version=self.version,
                alarm_topic_arn=self.platform.alarm_topic_arn,
                queue_name=queues.name,
                dead_letter_queue_name=queues.dead_letter_name,
                tagging=self.tagging,
                **observe,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

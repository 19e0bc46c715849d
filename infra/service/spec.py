"""``ServiceSpec``: a flowhost service's envelope in a user stack, and, if asked, its code.

    platform = PlatformRef.from_stack("acme/flowhost-platform/prod")
    ServiceSpec("sentiment", spec=Sentiment, platform=platform)                 # envelope
    ServiceSpec("sentiment", spec=Sentiment, platform=platform,
                deploy=Deploy(promote=True))                                    # and code

One owner for every resource (docs/aws.md). For a CPU service the stack owns the
envelope: the task and execution roles (covering every version), the log group, the
dashboard and alarms, and the envelope parameter the control plane reads
(``envelope``); the control plane owns every version (its number, queues, task
definition, ECS service, target group, listener rules, autoscaling). With ``deploy=``
the stack's code is registered through the control plane (``deploy``), which
returns the version number it assigned (``version_number``).

A GPU service (``resources.gpu > 0``, EKS) is still run by its stack, one version per
``ServiceSpec`` (``version=``, default 1): its code package, queues, IRSA role,
``GpuWorkload`` and per-version observability; its envelope says ``ecs=None``; its built
environment is ``environment_digest=`` (a CPU version's is the control plane's, at deploy).

Containers run the platform's ``runtimeImage`` unless ``image=`` names another.
Arguments are checked before any child exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from flowhost.infra.iam import Account
from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.dashboard import ServiceDashboard, ServiceDashboardArgs
from flowhost.infra.service.deploy import Deploy, DeployedVersion, api_target
from flowhost.infra.service.envelope import EcsArgs, EnvelopeArgs, create_envelope
from flowhost.infra.service.fargate import create_log_group
from flowhost.infra.service.observability import ServiceObservability, ServiceObservabilityArgs
from flowhost.infra.service.package import (
    cached_package,
    code_location,
    service_environment,
    shared_environment,
)
from flowhost.infra.service.queues import QueueArgs, ServiceQueues, create_queues
from flowhost.infra.service.roles import PACKAGES_PATTERN, RoleArgs, create_roles, task_policy
from flowhost.infra.service.validation import ServiceOptions, validate
from flowhost.infra.service.workload import GpuWorkload, GpuWorkloadArgs
from flowhost.infra.tags import Tagging
from flowhost.services.definition import ServiceDefinition
from flowhost.services.packaging import build_package, package_key
from flowhost.services.spec import WebServiceSpec, definition_of

__all__ = ["DEFAULT_OWNER", "Deploy", "ServiceSpec"]

DEFAULT_OWNER, OUTPUTS = "platform-team", (
    "task_role_arn", "execution_role_arn", "envelope_parameter", "version_number",
    "gpu_deployment_name", "queue_url", "log_group_name", "dashboard_name", "grafana_json",
)  # fmt: skip


class ServiceSpec(pulumi.ComponentResource):
    """A service's envelope (CPU) or one stack-run version (GPU), its roles and telemetry."""

    task_role_arn: pulumi.Output[str] | None  # the IRSA role's on EKS
    execution_role_arn: pulumi.Output[str] | None  # ECS only
    envelope_parameter: pulumi.Output[str] | None  # CPU only
    version_number: pulumi.Output[int] | None  # with deploy=: the control plane's number
    gpu_deployment_name: pulumi.Output[str] | None
    queue_url: pulumi.Output[str] | None  # GPU only: a CPU version's queue is the control plane's
    log_group_name: pulumi.Output[str] | None
    dashboard_name: pulumi.Output[str] | None
    grafana_json: pulumi.Input[str] | None

    def __init__(
        self,
        name: str,
        spec: type[WebServiceSpec] | ServiceDefinition,
        platform: PlatformRef,
        *,
        version: int | None = None,
        image: pulumi.Input[str] | None = None,
        run: str | None = None,
        code_dir: Path | None = None,
        aliases: Sequence[str] = (),
        owner: str = DEFAULT_OWNER,
        options: ServiceOptions | None = None,
        deploy: Deploy | None = None,
        environment_digest: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        definition = spec if isinstance(spec, ServiceDefinition) else definition_of(spec)
        options = options or ServiceOptions()
        sizes = validate(
            name, definition, platform, version, run, aliases, options, deploy, environment_digest
        )
        self.environment_digest = environment_digest
        image = platform.runtime_image if image is None else image
        root, entrypoint = code_location(spec, definition, code_dir)
        digest, archive = build_package(root)
        super().__init__("flowhost:service:ServiceSpec", name, None, opts)
        self.definition, self.platform, self.version = definition, platform, version
        self.code_digest = digest
        # platform.environment is an Output when read from a StackReference; tags take it.
        self.tagging = Tagging(platform.environment, owner, definition.name)
        self.account = Account.current(parent=self)
        self._adot_arn = self.account.arn(
            "ssm",
            pulumi.Output.concat(
                "parameter/",
                pulumi.Output.from_input(platform.adot_config_parameter).apply(
                    lambda n: n.lstrip("/")
                ),
            ),
        )
        self.task_role_arn = self.execution_role_arn = self.envelope_parameter = None
        self.version_number = self.gpu_deployment_name = self.queue_url = None
        self.log_group_name = None
        if definition.uses_gpu:
            self._gpu(name, image, run, version or 1, digest, archive, entrypoint, options)
        else:
            self._cpu(name, image, sizes, options, (deploy.run if deploy else None) or run)
            if deploy is not None:
                self._deploy(name, deploy, run, aliases, version, digest, archive, entrypoint)
        outputs = {k: getattr(self, k) for k in OUTPUTS}
        self.register_outputs({k: v for k, v in outputs.items() if v is not None})

    def _role_args(self, package: str, queue_name: pulumi.Input[str],
                   log_group_arn: pulumi.Input[str] | None,
                   image: pulumi.Input[str], run: str | None) -> RoleArgs:  # fmt: skip
        platform, binding = self.platform, self.definition.artifacts
        pinned = run or (binding.run if binding else None)
        return RoleArgs(
            service=self.definition.name,
            account=self.account,
            bucket_arn=platform.bucket_arn,
            kms_key_arn=platform.kms_key_arn,
            package_key=package,
            artifact_flow=(binding.flow or (pinned or "").split("/")[0]) if binding else None,
            queue_name=queue_name,
            log_group_arn=log_group_arn,
            metrics_log_group=pulumi.Output.concat(platform.log_group_prefix, "metrics"),
            adot_parameter_arn=self._adot_arn,
            image=image,
            permissions_boundary_arn=platform.permissions_boundary_arn,
            tagging=self.tagging,
            collector_image=platform.collector_image,
            metaflow_datastore_root=platform.metaflow_datastore_root,
            metaflow_auth_secret_arn=platform.metaflow_auth_secret_arn,
        )

    def _cpu(
        self, name: str, image: pulumi.Input[str], sizes: tuple[int, int],
        options: ServiceOptions, run: str | None,
    ) -> None:  # fmt: skip
        """The envelope: log group, roles for every version, the parameter, the dashboard."""
        definition, platform, tagging = self.definition, self.platform, self.tagging
        service = definition.name
        log_group = create_log_group(
            name, service, platform.log_group_prefix, options.log_retention_days, tagging, self
        )
        every_queue = pulumi.Output.concat(platform.queue_name_prefix, service, "-v*")
        roles = create_roles(
            name, self._role_args(PACKAGES_PATTERN, every_queue, log_group.arn, image, run), self
        )
        scaling = definition.scaling
        envelope = self._envelope(name, options, EcsArgs(
            task_role_arn=roles.task.arn, execution_role_arn=roles.execution.arn,
            log_group_name=log_group.name, image=image, adot_parameter_arn=self._adot_arn,
            cpu_units=sizes[0], memory_mib=sizes[1], spot_weight=options.spot_weight,
            deregistration_delay_seconds=options.deregistration_delay_seconds,
            requests_per_target_per_minute=options.requests_per_target_per_minute
            or scaling.target_concurrency * 60,
        ))  # fmt: skip
        dashboard = ServiceDashboard(
            f"{name}-observability",
            ServiceDashboardArgs(
                definition=definition, alarm_topic_arn=platform.alarm_topic_arn,
                load_balancer_arn=platform.alb_arn, ecs_cluster_name=platform.ecs_cluster_name,
                queue_prefix=platform.queue_name_prefix, tagging=tagging,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        self.envelope = envelope
        self.task_role_arn, self.execution_role_arn = roles.task.arn, roles.execution.arn
        self.envelope_parameter = envelope.name
        self.log_group_name = log_group.name
        self.dashboard_name = dashboard.dashboard_name
        self.grafana_json = dashboard.grafana_json

    def _envelope(
        self, name: str, options: ServiceOptions, ecs: EcsArgs | None
    ) -> aws.ssm.Parameter:
        definition, platform = self.definition, self.platform
        return create_envelope(
            name,
            EnvelopeArgs(
                service=definition.name, platform=platform, region=self.account.region,
                environment=shared_environment(definition, platform, region=self.account.region),
                max_receive_count=options.max_receive_count,
                retention_seconds=options.queue_retention_seconds,
                visibility_timeout_seconds=options.visibility_timeout_seconds,
                tagging=self.tagging, ecs=ecs,
            ),
            self,
        )  # fmt: skip

    def _deploy(
        self, name: str, deploy: Deploy, run: str | None, aliases: Sequence[str],
        version: int | None, digest: str, archive: bytes, entrypoint: str,
    ) -> None:  # fmt: skip
        """The stack's code, deployed through the control plane (after the envelope)."""
        target: pulumi.Input[Mapping[str, Any]]
        if deploy.target is not None:
            target = deploy.target.model_dump(mode="json")
        else:
            target = pulumi.Output.all(
                pulumi.Output.from_input(self.platform.api_url), self.account.region
            ).apply(lambda v: api_target(name, self.platform.environment, v[0], v[1]))
        definition = self.definition.model_copy(update={"entrypoint": entrypoint})
        wanted = deploy.all_aliases() + [a for a in aliases if a not in deploy.all_aliases()]
        deployed = DeployedVersion(
            f"{name}-deploy",
            {
                "service": definition.name,
                "definition": definition.model_dump(mode="json"),
                "digest": digest,
                "archive": str(cached_package(digest, archive)),
                "run": deploy.run or run,
                "aliases": wanted,
                "pinned": version,
                "timeout": deploy.timeout,
                "target": target,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.envelope]),
        )
        self.version_number = deployed.number

    def _gpu(
        self, name: str, image: pulumi.Input[str], run: str | None, version: int, digest: str,
        archive: bytes, entrypoint: str, options: ServiceOptions,
    ) -> None:  # fmt: skip
        """One version, run by the stack on EKS: package, queues, IRSA role, workload."""
        definition, platform = self.definition, self.platform
        service = definition.name
        key = package_key(digest)
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
                service=service, version=version, prefix=platform.queue_name_prefix,
                kms_key_arn=platform.kms_key_arn, max_receive_count=options.max_receive_count,
                retention_seconds=options.queue_retention_seconds,
                visibility_timeout_seconds=options.visibility_timeout_seconds,
                tagging=self.tagging,
            ),
            self,
        )  # fmt: skip
        environment = service_environment(
            definition, platform, version=version, run=run,
            package=pulumi.Output.concat("s3://", package.bucket, "/", package.key),
            digest=digest, entrypoint=entrypoint, queue_url=queues.queue.url,
            queue_name=queues.name, dead_letter_url=queues.dead_letter.url,
            region=self.account.region, environment_digest=self.environment_digest,
        )  # fmt: skip
        gpu = GpuWorkload(
            f"{name}-gpu",
            GpuWorkloadArgs(
                definition=definition, platform=platform, version=version, image=image,
                environment=environment, queue_name=queues.name, queue_url=queues.queue.url,
                policy_json=task_policy(self._role_args(key, queues.name, None, image, run)),
                tagging=self.tagging,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        self.envelope_parameter = self._envelope(name, options, None).name
        self.version_number = pulumi.Output.from_input(version)
        self.gpu_deployment_name = gpu.deployment_name
        self.task_role_arn = gpu.role_arn
        self.queue_url = queues.queue.url
        self.queue_arn = queues.queue.arn
        self.dead_letter_queue_url = queues.dead_letter.url
        self.dead_letter_queue_arn = queues.dead_letter.arn
        dashboards = self._observability(name, version, queues, {
            "eks_cluster_name": platform.eks_cluster_name,
            "eks_namespace": platform.eks_services_namespace,
        })  # fmt: skip
        self.dashboard_name = dashboards.dashboard_name
        self.grafana_json = dashboards.grafana_json

    def _observability(
        self, name: str, version: int, queues: ServiceQueues, observe: dict[str, Any]
    ) -> ServiceObservability:
        return ServiceObservability(
            f"{name}-observability",
            ServiceObservabilityArgs(
                definition=self.definition,
                version=version,
                alarm_topic_arn=self.platform.alarm_topic_arn,
                queue_name=queues.name,
                dead_letter_queue_name=queues.dead_letter_name,
                tagging=self.tagging,
                **observe,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

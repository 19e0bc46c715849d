"""``PlatformRef``: what a user stack needs from the platform stack, by output name.

``PlatformRef.from_stack("acme/flowhost-platform/prod")`` reads the platform's stack
outputs through a ``pulumi.StackReference``; ``PlatformRef.from_outputs({...})`` takes
them from a mapping (a platform built in the same program, or tests). Field names map to
the stable output names documented in docs/aws.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from typing import Any

import pulumi

__all__ = ["EKS_OUTPUTS", "OUTPUTS", "OUTPUT_NAMES", "PlatformRef"]

# The stack outputs, always present.
OUTPUTS = (
    "environment",
    "vpcId",
    "vpcCidr",
    "privateSubnetIds",
    "serviceSecurityGroupId",
    "albSecurityGroupId",
    "ecsClusterArn",
    "ecsClusterName",
    "albArn",
    "albDnsName",
    "albListenerArn",
    "activatorTargetGroupArn",
    "bucketName",
    "bucketArn",
    "kmsKeyArn",
    "queueNamePrefix",
    "servicePermissionsBoundaryArn",
    "serviceLogGroupPrefix",
    "apiUrl",
    "apiId",
    "callbackSecretArn",
    "alarmTopicArn",
    "adotConfigParameter",
    "eksEnabled",
    "runtimeImage",
    "collectorImage",
    "metaflowEnvironment",
    "metaflowAuthSecretArn",
    "metaflowDatastoreRoot",
    "readersPolicyArn",
    "deployersPolicyArn",
    "invokersPolicyArn",
    "githubOidcProviderArn",
    "ciPreviewRoleArn",
    "ciDeployRoleArn",
)
# Present only when the stack enables EKS.
EKS_OUTPUTS = (
    "eksClusterName",
    "eksKubeconfig",
    "eksOidcProviderArn",
    "eksOidcIssuer",
    "eksServicesNamespace",
)

# field -> platform stack output
OUTPUT_NAMES: dict[str, str] = {
    "environment": "environment",
    "vpc_id": "vpcId",
    "vpc_cidr": "vpcCidr",
    "private_subnet_ids": "privateSubnetIds",
    "service_security_group_id": "serviceSecurityGroupId",
    "ecs_cluster_arn": "ecsClusterArn",
    "ecs_cluster_name": "ecsClusterName",
    "alb_arn": "albArn",
    "alb_listener_arn": "albListenerArn",
    "activator_target_group_arn": "activatorTargetGroupArn",
    "bucket_name": "bucketName",
    "bucket_arn": "bucketArn",
    "kms_key_arn": "kmsKeyArn",
    "queue_name_prefix": "queueNamePrefix",
    "permissions_boundary_arn": "servicePermissionsBoundaryArn",
    "log_group_prefix": "serviceLogGroupPrefix",
    "alarm_topic_arn": "alarmTopicArn",
    "adot_config_parameter": "adotConfigParameter",
    "runtime_image": "runtimeImage",
    "collector_image": "collectorImage",
    "metaflow_environment": "metaflowEnvironment",
    "metaflow_auth_secret_arn": "metaflowAuthSecretArn",
    "metaflow_datastore_root": "metaflowDatastoreRoot",
    "api_url": "apiUrl",
    "eks_enabled": "eksEnabled",
    "eks_cluster_name": "eksClusterName",
    "eks_kubeconfig": "eksKubeconfig",
    "eks_oidc_provider_arn": "eksOidcProviderArn",
    "eks_oidc_issuer": "eksOidcIssuer",
    "eks_services_namespace": "eksServicesNamespace",
}
_EKS_ONLY = frozenset(f for f in OUTPUT_NAMES if f.startswith("eks_") and f != "eks_enabled")
# Outputs a platform stack from before the Metaflow settings lacks: absent means none.
_OPTIONAL: dict[str, Any] = {
    "metaflow_environment": {},
    "metaflow_auth_secret_arn": "",
    "metaflow_datastore_root": "",
    "api_url": "",
}


@dataclass(frozen=True)
class PlatformRef:
    """The platform's outputs as Pulumi inputs. ``eks_*`` are None without EKS.

    ``environment`` is a plain string (it goes into names and tags that must be known when
    the program runs): the platform stack's name, checked against its output at deploy.
    """

    environment: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]
    service_security_group_id: pulumi.Input[str]
    ecs_cluster_arn: pulumi.Input[str]
    ecs_cluster_name: pulumi.Input[str]
    alb_arn: pulumi.Input[str]
    alb_listener_arn: pulumi.Input[str]
    activator_target_group_arn: pulumi.Input[str]
    bucket_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    queue_name_prefix: pulumi.Input[str]
    permissions_boundary_arn: pulumi.Input[str]
    log_group_prefix: pulumi.Input[str]
    alarm_topic_arn: pulumi.Input[str]
    adot_config_parameter: pulumi.Input[str]
    runtime_image: pulumi.Input[str]  # ServiceSpec's image unless it is given image=
    collector_image: pulumi.Input[str]  # the ADOT collector, private (the platform's cache)
    eks_enabled: bool
    # flowhost:metaflow: the Metaflow variables every serving container gets ({}: none),
    # the metadata service's auth key secret ("": none), the datastore root ("": none).
    metaflow_environment: pulumi.Input[dict[str, str]] = dataclass_field(
        default_factory=dict[str, str]
    )
    metaflow_auth_secret_arn: pulumi.Input[str] = ""
    metaflow_datastore_root: pulumi.Input[str] = ""
    # The control plane's API (API Gateway); a ServiceSpec that deploys code calls it.
    api_url: pulumi.Input[str] = ""
    eks_cluster_name: pulumi.Input[str] | None = None
    eks_kubeconfig: pulumi.Input[str] | None = None
    eks_oidc_provider_arn: pulumi.Input[str] | None = None
    eks_oidc_issuer: pulumi.Input[str] | None = None
    eks_services_namespace: pulumi.Input[str] | None = None

    @classmethod
    def from_outputs(
        cls, outputs: Mapping[str, Any], *, eks_enabled: bool | None = None
    ) -> PlatformRef:
        """From a mapping of output name -> value (or Output). A missing required output
        raises ``ValueError`` naming it."""
        enabled = bool(outputs.get("eksEnabled", False)) if eks_enabled is None else eks_enabled
        values: dict[str, Any] = {"eks_enabled": enabled}
        if not isinstance(outputs.get("environment"), str):
            raise ValueError(
                "PlatformRef: 'environment' must be a plain string (got "
                f"{type(outputs.get('environment')).__name__}). Pass the platform stack's "
                "environment name, e.g. 'dev'."
            )
        missing: list[str] = []
        for field in fields(cls):
            if field.name == "eks_enabled":
                continue
            output = OUTPUT_NAMES[field.name]
            if output in outputs:
                values[field.name] = outputs[output]
            elif field.name in _OPTIONAL:
                values[field.name] = _OPTIONAL[field.name]
            elif field.name not in _EKS_ONLY or enabled:
                missing.append(output)
        if missing:
            raise ValueError(
                f"PlatformRef: the platform stack has no output(s) {', '.join(missing)}. "
                "Update the platform stack (pulumi up in the flowhost repository) so it "
                "exports them."
            )
        return cls(**values)

    @classmethod
    def from_stack(
        cls, stack: str, *, eks_enabled: bool = False, environment: str | None = None
    ) -> PlatformRef:
        """From the platform stack ``org/project/stack``. Two facts must be known before
        anything is created, while stack outputs arrive only at deploy time: whether that
        stack has EKS (``eks_enabled``: can a GPU service be placed?) and its environment
        (default: the stack's name, ``dev`` in ``acme/flowhost-platform/dev``; names and
        tags carry it). The deploy fails if the platform's ``environment`` output differs.
        """
        env = environment or stack.rsplit("/", 1)[-1]
        ref = pulumi.StackReference(stack)
        wanted = {
            name: output
            for name, output in OUTPUT_NAMES.items()
            if name not in ("eks_enabled", "environment") and (name not in _EKS_ONLY or eks_enabled)
        }
        values: dict[str, Any] = {output: ref.get_output(output) for output in wanted.values()}

        def same_environment(actual: object) -> object:
            if actual != env:
                raise ValueError(
                    f"PlatformRef: stack {stack!r} is the {actual!r} environment, not {env!r}. "
                    f"Pass environment={actual!r} to PlatformRef.from_stack, or point it at "
                    f"the {env!r} platform stack."
                )
            return actual

        def has_image(image: object) -> object:
            if not image:
                raise ValueError(
                    f"PlatformRef: stack {stack!r} exports no runtimeImage (got {image!r}). "
                    "Update the platform stack (pulumi up in the flowhost repository) so it "
                    "builds and exports the runtime image, or pass image= to ServiceSpec."
                )
            return image

        def has_collector(image: object) -> object:
            if not image:
                raise ValueError(
                    f"PlatformRef: stack {stack!r} exports no collectorImage (got {image!r}). "
                    "Update the platform stack (pulumi up in the flowhost repository) so it "
                    "caches the ADOT collector in its private registry and exports it."
                )
            return image

        def defaulted(name: str) -> pulumi.Output[Any]:
            """A platform stack from before the Metaflow settings: none."""
            default = _OPTIONAL[name]
            output = OUTPUT_NAMES[name]
            return values[output].apply(lambda v: default if v is None else v)

        # Checked when a service uses it: a platform stack from before the runtime image.
        values["runtimeImage"] = values["runtimeImage"].apply(has_image)
        values["collectorImage"] = values["collectorImage"].apply(has_collector)
        for name in _OPTIONAL:
            values[OUTPUT_NAMES[name]] = defaulted(name)
        # Checked when the bucket name resolves: every service's code package needs it.
        values["bucketName"] = pulumi.Output.all(
            ref.get_output("environment"), values["bucketName"]
        ).apply(lambda pair: (same_environment(pair[0]), pair[1])[1])
        return cls.from_outputs({**values, "environment": env}, eks_enabled=eks_enabled)

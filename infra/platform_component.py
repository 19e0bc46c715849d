"""``Platform``: everything the control plane and user stacks need in one account and region.

The class only wires the parts together; each part is a small component in its own
module. What user stacks compose with is collected in :attr:`Platform.outputs`, whose
keys are the stack outputs' stable names (see docs/aws.md). (Not named ``platform.py``: on
Pulumi's ``sys.path`` that would shadow the standard library; see test_structure.py.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from flowhost.infra.alarms import Alarms, AlarmsArgs
from flowhost.infra.api_grants import ApiGrants, ApiGrantsArgs
from flowhost.infra.boundary import Boundary, BoundaryArgs, service_log_group_prefix
from flowhost.infra.ci_identity import ci_identity, ci_outputs
from flowhost.infra.config import PlatformConfig
from flowhost.infra.containers import Containers, ContainersArgs
from flowhost.infra.database import DB_NAME, DB_PORT, Database, DatabaseArgs
from flowhost.infra.edge import Edge, EdgeArgs
from flowhost.infra.encryption import Encryption, EncryptionArgs
from flowhost.infra.environment_builds import EnvironmentBuilds, EnvironmentBuildsArgs
from flowhost.infra.functions import HANDLERS, Functions, FunctionsArgs
from flowhost.infra.gpu.addons import SERVICES_NAMESPACE, GpuAddons, GpuAddonsArgs
from flowhost.infra.gpu.cluster import GpuCluster, GpuClusterArgs
from flowhost.infra.grants import Grants
from flowhost.infra.iam import Account
from flowhost.infra.images import ImageCache, ImageCacheArgs, grant_pulls
from flowhost.infra.loadbalancer import LoadBalancer, LoadBalancerArgs
from flowhost.infra.metaflow_access import function_environment, function_grants, outputs
from flowhost.infra.network import Network, NetworkArgs
from flowhost.infra.observability import Observability, ObservabilityArgs
from flowhost.infra.platform_ref import EKS_OUTPUTS, OUTPUTS
from flowhost.infra.runtime_image import runtime_image
from flowhost.infra.signing import CallbackSecret, CallbackSecretArgs
from flowhost.infra.storage import ASYNC_PREFIX, REQUEST_LOG_PREFIX, Storage, StorageArgs
from flowhost.infra.tags import Tagging

__all__ = ["EKS_OUTPUTS", "OUTPUTS", "Platform", "PlatformArgs"]


@dataclass(frozen=True)
class PlatformArgs:
    config: PlatformConfig


class Platform(pulumi.ComponentResource):
    """VPC, key, bucket, database, ECS, optional EKS, ALB, API, Lambdas, callback key, alarms,
    tracing."""

    outputs: dict[str, pulumi.Input[object]]

    def __init__(
        self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Platform", name, None, opts)
        cfg = args.config
        env = cfg.environment
        tagging = Tagging(environment=env, owner=cfg.owner)
        child = pulumi.ResourceOptions(parent=self)
        account = Account.current(parent=self)
        queue_prefix = f"{cfg.queue_name_prefix}-{env}-"

        net = Network(
            f"{name}-net",
            NetworkArgs(cfg.vpc_cidr, cfg.az_count, cfg.nat_gateway, tagging),
            child,
        )
        subnets = net.private_subnet_ids
        kms = Encryption(f"{name}-kms", EncryptionArgs(f"flowhost-{env}", account, tagging), child)
        storage = Storage(
            f"{name}-data",
            StorageArgs(
                kms_key_arn=kms.key_arn,
                async_ttl_days=cfg.async_ttl_days,
                request_log_ttl_days=cfg.request_log_ttl_days,
                noncurrent_version_days=cfg.noncurrent_version_days,
                force_destroy=not cfg.db_deletion_protection,
                tagging=tagging,
            ),
            child,
        )
        db = Database(
            f"{name}-db",
            DatabaseArgs(
                subnet_ids=subnets,
                security_group_id=net.database_sg.id,
                kms_key_arn=kms.key_arn,
                instance_class=cfg.db_instance_class,
                engine_version=cfg.db_engine_version,
                allocated_storage_gb=cfg.db_allocated_storage_gb,
                max_allocated_storage_gb=cfg.db_max_allocated_storage_gb,
                multi_az=cfg.db_multi_az,
                deletion_protection=cfg.db_deletion_protection,
                backup_retention_days=cfg.db_backup_retention_days,
                log_retention_days=cfg.log_retention_days,
                tagging=tagging,
            ),
            child,
        )
        ecs = Containers(f"{name}-ecs", ContainersArgs(f"flowhost-{env}", tagging), child)
        alb = LoadBalancer(f"{name}-lb", LoadBalancerArgs(subnets, net.alb_sg.id, tagging), child)
        obs = Observability(
            f"{name}-obs",
            ObservabilityArgs(
                kms.key_arn,
                cfg.alert_email,
                cfg.tracing_sample_rate,
                cfg.log_retention_days,
                tagging,
            ),
            child,
        )
        boundary = Boundary(
            f"{name}-boundary",
            BoundaryArgs(
                account, storage.bucket_arn, kms.key_arn, queue_prefix, obs.adot_config.arn,
                tagging, metaflow=cfg.metaflow, package_index=cfg.package_index,
            ),
            child,
        )  # fmt: skip
        image = runtime_image(f"{name}-runtime", cfg, kms.key_arn, tagging, self)
        builds = EnvironmentBuilds(f"{name}-builds", EnvironmentBuildsArgs(
            account, storage.bucket_arn, storage.bucket_name, kms.key_arn, image,
            boundary.policy_arn, cfg.log_retention_days, tagging, cfg.environment_build,
            cfg.package_index,
        ), child)  # fmt: skip
        callbacks = CallbackSecret(
            f"{name}-callbacks", CallbackSecretArgs(kms.key_arn, tagging), child
        )
        # The API first: the functions link to it (FLOWHOST_PUBLIC_URL); its control-plane
        # routes follow once the API Lambda exists.
        edge = Edge(
            f"{name}-edge",
            EdgeArgs(
                authorizer=cfg.authorizer,
                jwt_issuer=cfg.jwt_issuer,
                jwt_audience=cfg.jwt_audience,
                listener_arn=alb.listener_arn,
                subnet_ids=subnets,
                vpc_link_security_group_id=net.vpc_link_sg.id,
                log_retention_days=cfg.log_retention_days,
                tagging=tagging,
            ),
            child,
        )
        api_grants = ApiGrants(
            f"{name}-api-grants",
            ApiGrantsArgs(
                execution_arn=account.arn("execute-api", edge.api_id),
                invoker_services=cfg.invoker_services,
                tagging=tagging,
            ),
            child,
        )
        ci = ci_identity(
            f"{name}-ci", cfg, account, boundary.policy_arn,
            api_grants.policy_arns["deployers"], api_grants.policy_arns["readers"],
            queue_prefix, tagging, child,
        )  # fmt: skip
        grants = Grants(
            account=account,
            bucket_arn=storage.bucket_arn,
            kms_key_arn=kms.key_arn,
            db_secret_arn=db.secret_arn,
            callback_secret_arn=callbacks.secret_arn,
            cluster_name=ecs.cluster_name,
            listener_arn=alb.listener_arn,
            queue_name_prefix=queue_prefix,
            environment=env,
            build_family=builds.family,
            build_role_arns=builds.role_arns(),
        )
        images = ImageCache(f"{name}-images", ImageCacheArgs(account, env), child)
        fns = Functions(
            f"{name}-fn",
            FunctionsArgs(
                bundle_path=cfg.lambda_bundle,
                memory_mb=cfg.lambda_memory_mb,
                log_retention_days=cfg.log_retention_days,
                scaler_schedule=cfg.scaler_schedule,
                subnet_ids=subnets,
                security_group_id=net.lambda_sg.id,
                kms_key_arn=kms.key_arn,
                environment={
                    "FLOWHOST_ENVIRONMENT": env,
                    "FLOWHOST_BUCKET": storage.bucket_name,
                    "FLOWHOST_KMS_KEY_ARN": kms.key_arn,
                    "FLOWHOST_ASYNC_PREFIX": ASYNC_PREFIX,
                    "FLOWHOST_REQUEST_LOG_PREFIX": REQUEST_LOG_PREFIX,
                    "FLOWHOST_DB_HOST": db.address,
                    "FLOWHOST_DB_PORT": str(DB_PORT),
                    "FLOWHOST_DB_NAME": DB_NAME,
                    "FLOWHOST_DB_SECRET_ARN": db.secret_arn,
                    "FLOWHOST_ECS_CLUSTER": ecs.cluster_name,
                    "FLOWHOST_LISTENER_ARN": alb.listener_arn,
                    "FLOWHOST_BALANCER_URL": pulumi.Output.concat("http://", alb.alb_dns_name),
                    "FLOWHOST_QUEUE_PREFIX": queue_prefix,
                    "FLOWHOST_SERVICE_SUBNETS": pulumi.Output.all(*subnets).apply(",".join),
                    "FLOWHOST_SERVICE_SECURITY_GROUP": net.service_sg.id,
                    "FLOWHOST_CALLBACK_SECRET_ARN": callbacks.secret_arn,
                    "FLOWHOST_CALLBACK_ALLOW_PRIVATE": str(cfg.callback_allow_private).lower(),
                    "FLOWHOST_PUBLIC_URL": edge.api_url,
                    **builds.function_environment(subnets, net.build_sg.id),
                    **function_environment(cfg.metaflow),
                },
                grants=grants,
                tagging=tagging,
                extra_grants=function_grants(cfg.metaflow, account.partition),
            ),
            child,
        )
        edge.connect_control_plane(fns.api.name, fns.api.invoke_arn)
        Alarms(
            f"{name}-alarms",
            AlarmsArgs(
                topic_arn=obs.topic_arn, api_id=edge.api_id, db_identifier=db.instance.identifier,
                function_names={k: fns.function(k).name for k in HANDLERS}, tagging=tagging,
            ),
            child,
        )  # fmt: skip
        self.outputs = {
            "environment": env,
            "vpcId": net.vpc_id,
            "vpcCidr": net.vpc_cidr,
            "privateSubnetIds": subnets,
            "serviceSecurityGroupId": net.service_sg.id,
            "albSecurityGroupId": net.alb_sg.id,
            "ecsClusterArn": ecs.cluster_arn,
            "ecsClusterName": ecs.cluster_name,
            "albArn": alb.alb_arn,
            "albDnsName": alb.alb_dns_name,
            "albListenerArn": alb.listener_arn,
            "activatorTargetGroupArn": fns.activator_target_group.arn,
            "bucketName": storage.bucket_name,
            "bucketArn": storage.bucket_arn,
            "kmsKeyArn": kms.key_arn,
            "queueNamePrefix": queue_prefix,
            "servicePermissionsBoundaryArn": boundary.policy_arn,
            "serviceLogGroupPrefix": service_log_group_prefix(env),
            "apiUrl": edge.api_url,
            "apiId": edge.api_id,
            "callbackSecretArn": callbacks.secret_arn,
            "alarmTopicArn": obs.topic_arn,
            "adotConfigParameter": obs.adot_config.name,
            "eksEnabled": cfg.eks_enabled,
            "runtimeImage": image,
            "collectorImage": images.collector_image,
            **outputs(cfg.metaflow),  # empty values without flowhost:metaflow
            **{f"{role}PolicyArn": arn for role, arn in api_grants.policy_arns.items()},
            **ci_outputs(ci),  # empty values without flowhost:githubRepository
        }
        if cfg.eks_enabled:
            self.outputs |= self._gpu(
                name, cfg, account, net, kms.key_arn, queue_prefix, boundary.policy_arn, tagging
            )
            # GPU nodes pull the collector sidecar through the cache (the first pull fills it).
            grant_pulls(
                f"{name}-eks-node-images", self._node_role.id, images.collector_image,
                account.partition, env, self,
            )  # fmt: skip
        self.register_outputs(dict(self.outputs))

    def _gpu(
        self,
        name: str,
        cfg: PlatformConfig,
        account: Account,
        net: Network,
        kms_key_arn: pulumi.Output[str],
        queue_prefix: str,
        boundary_arn: pulumi.Output[str],
        tagging: Tagging,
    ) -> dict[str, pulumi.Input[object]]:
        cluster_name = f"flowhost-{cfg.environment}-gpu"
        gpu = GpuCluster(
            f"{name}-eks",
            GpuClusterArgs(
                cluster_name=cluster_name,
                version=cfg.eks_version,
                account=account,
                vpc_id=net.vpc_id,
                vpc_cidr=net.vpc_cidr,
                subnet_ids=net.private_subnet_ids,
                api_access_cidrs=cfg.eks_api_access_cidrs,
                kms_key_arn=kms_key_arn,
                gpu_instance_types=cfg.gpu_instance_types,
                gpu_max_nodes=cfg.gpu_max_nodes,
                system_instance_type=cfg.eks_system_instance_type,
                log_retention_days=cfg.log_retention_days,
                tagging=tagging,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self._node_role = gpu.node_role
        GpuAddons(
            f"{name}-eks-addons",
            GpuAddonsArgs(
                cluster_name=cluster_name,
                kubeconfig=gpu.kubeconfig,
                oidc_provider_arn=gpu.oidc_provider.arn,
                oidc_issuer=gpu.oidc_issuer,
                account=account,
                queue_name_prefix=queue_prefix,
                tagging=tagging,
                log_retention_days=cfg.log_retention_days,
                permissions_boundary_arn=boundary_arn,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[gpu]),
        )
        return {
            "eksClusterName": gpu.cluster_name,
            "eksKubeconfig": gpu.kubeconfig,
            "eksOidcProviderArn": gpu.oidc_provider.arn,
            "eksOidcIssuer": gpu.oidc_issuer,
            "eksServicesNamespace": SERVICES_NAMESPACE,
        }

"""The control plane on AWS, assembled from its ports: PostgreSQL (RDS) for the state
of the world and async request records, S3 for objects, SQS for queues, ECS and ALB
rules for the fleet. Built once per Lambda execution environment and reused by every
invocation it serves."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import boto3

from flowhost.lambdas.api import create_api, create_catalog
from flowhost.lambdas.async_requests import AsyncRequests, AsyncSettings, create_async_app
from flowhost.lambdas.aws.builds import EcsBuildRunner
from flowhost.lambdas.aws.compute import EcsCompute
from flowhost.lambdas.aws.fleet import EcsFleet
from flowhost.lambdas.aws.metaflow import apply_metaflow_settings
from flowhost.lambdas.aws.provision import EcsVersions
from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.routes import AlbRoutes
from flowhost.lambdas.aws.settings import AwsSettings
from flowhost.lambdas.callbacks import CallbackPolicy
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.environments.builds import EnvironmentBuilds
from flowhost.lambdas.environments.request import TargetPlatform
from flowhost.lambdas.gateway import Gateway
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.lambdas.store import PRODUCTION, StateStore
from flowhost.lambdas.store.environments import EnvironmentRegistry
from flowhost.lambdas.store.requests import RequestStore
from flowhost.services.runtime.responses import error_body, send_json

__all__ = ["ControlPlane"]


async def _not_here(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Synchronous endpoint calls never reach the control plane on AWS."""
    body = error_body(
        "not_found",
        f"{scope['path']!r} is not a control-plane path. Endpoint calls go to the "
        "platform's load balancer; asynchronous ones to .../async here.",
        None,
    )
    await send_json(send, 404, body, "-")


class ControlPlane:
    def __init__(
        self,
        settings: AwsSettings,
        *,
        session: boto3.Session | None = None,
        store: StateStore | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        """``store`` and ``endpoint_url`` (one endpoint for every AWS service, e.g. a moto
        server) are for tests; on Lambda both come from the settings.

        The state DB is migrated to head before anything serves (under a lock, so cold
        starts in parallel migrate once); a DB migrated by a newer control plane is
        refused with ``SchemaAheadError``."""
        self.settings = settings
        session = session or boto3.Session()

        def client(name: str) -> Any:
            make: Any = session.client  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            return make(name, endpoint_url=endpoint_url)

        if store is None:
            secret = client("secretsmanager").get_secret_value(SecretId=settings.db_secret_arn)
            store = StateStore.open(settings.database_url(str(secret["SecretString"])))
        store.migrate()
        self.store = store
        apply_metaflow_settings(lambda: client("secretsmanager"))  # before Metaflow is imported
        self._elbv2 = client("elbv2")
        self.cloudwatch = client("cloudwatch")
        self.objects = S3ObjectStore(client("s3"), settings.bucket, kms_key_id=settings.kms_key_arn)
        # The control plane owns each version's queues: it creates them (EcsVersions) and
        # looks them up for async requests.
        self.queues = SQSQueues(
            client("sqs"), prefix=settings.queue_prefix, kms_key_id=settings.kms_key_arn
        )
        routes = AlbRoutes(self._elbv2, settings.listener_arn, settings.activator_target_group_arn)
        self.fleet = EcsFleet(
            EcsCompute(client("ecs"), settings.ecs_cluster),
            routes,
            self.objects,
            code_root=Path(tempfile.gettempdir()) / "flowhost-code",  # /tmp: Lambda's only disk
            versions=EcsVersions(
                ecs=client("ecs"),
                elbv2=self._elbv2,
                ssm=client("ssm"),
                autoscaling=client("application-autoscaling"),
                queues=self.queues,
                routes=routes,
                environment=settings.environment,
                cluster=settings.ecs_cluster,
            ),
        )
        self.deployments = Deployments(
            store, self.objects, self.fleet, deploy_timeout=settings.deploy_timeout,
            environments=self._environments(settings, store, client("ecs")),
        )  # fmt: skip
        secret = b""
        if settings.callback_secret_arn is not None:
            value = client("secretsmanager").get_secret_value(SecretId=settings.callback_secret_arn)
            secret = str(value["SecretString"]).encode()
        self.requests = AsyncRequests(
            RequestStore(store.engine), self.objects, self.queues,
            lambda service, ref: store.resolve(service, ref or PRODUCTION),
            # the service's tasks record outcomes as S3 objects (they have no database)
            settings=AsyncSettings(
                settle_outcomes=True,
                callback=CallbackPolicy(allow_private=settings.callback_allow_private),
            ),
            secret=secret,
            public_url=settings.public_url,
            versions=lambda: [
                (v.service, v.number) for v in store.all_versions() if v.status == "ready"
            ],
        )  # fmt: skip
        self.app = Gateway(
            api=create_api(self.deployments, drift=self.drift),
            catalog=create_catalog(self.deployments),
            asynchronous=create_async_app(self.requests),
            fallback=_not_here,
        )

    def _environments(
        self, settings: AwsSettings, store: StateStore, ecs: Any
    ) -> EnvironmentBuilds | None:
        """Environment builds with the stack's build task (None: the stack defines none)."""
        if settings.build_task_definition is None or settings.build_security_group is None:
            return None
        runner = EcsBuildRunner(
            ecs, cluster=settings.ecs_cluster, task_definition=settings.build_task_definition,
            subnets=[s for s in settings.build_subnets.split(",") if s],
            security_group=settings.build_security_group,
        )  # fmt: skip
        target = TargetPlatform(
            python=settings.env_python, platform=settings.env_platform,
            index_url=settings.package_index_url,
        )  # fmt: skip
        return EnvironmentBuilds(
            store.engine, self.objects, runner, target, registry=EnvironmentRegistry(store.engine)
        )

    def drift(self) -> dict[str, list[str]]:
        """ECS services with no live version record, and live versions with none."""
        live: dict[str, set[int]] = {}
        for version in self.store.all_versions():
            if version.status == "ready":
                live.setdefault(version.service, set()).add(version.number)
        return self.fleet.drift(live)

    def balancer_url(self) -> str:
        """Where the activator replays requests: the settings', else the listener's ALB."""
        if self.settings.balancer_url:
            return self.settings.balancer_url
        listener = self._elbv2.describe_listeners(ListenerArns=[self.settings.listener_arn])
        found = listener["Listeners"][0]
        balancer = self._elbv2.describe_load_balancers(LoadBalancerArns=[found["LoadBalancerArn"]])[
            "LoadBalancers"
        ][0]
        scheme = "https" if found["Protocol"] == "HTTPS" else "http"
        return f"{scheme}://{balancer['DNSName']}:{found['Port']}"

    def close(self) -> None:
        self.queues.close()
        self.store.close()

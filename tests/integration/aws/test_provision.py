"""EcsVersions against moto: the control plane creates each version's queue, target group,
own route, task definition, ECS service and autoscaling from the envelope its stack wrote
to SSM, finds them again (idempotent), and removes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from pydantic import BaseModel

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.aws import AlbRoutes, EcsCompute, EcsFleet
from flowhost.lambdas.aws.provision import EcsVersions, target_group_name
from flowhost.lambdas.aws.queues import SQSQueues
from flowhost.lambdas.aws.taskdef import task_definition
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore, VersionRecord
from flowhost.services import Artifacts, Scaling, WebServiceSpec, definition_of, endpoint
from flowhost.services.envelope import (
    EcsEnvelope,
    QueueEnvelope,
    ServiceEnvelope,
    envelope_parameter,
)
from tests.integration.aws.support import Balancer, Cluster, fresh

ClientFactory = Callable[[str], Any]


class In(BaseModel):
    text: str


class Echo(WebServiceSpec):
    """Echoes."""

    artifacts = Artifacts(flow="EchoFlow", run="EchoFlow/7")
    scaling = Scaling(min_instances=0, max_instances=3, target_concurrency=4)

    @endpoint
    def echo(self, request: In) -> In:
        return request


def make_envelope(
    balancer: Balancer, cluster: Cluster, environment: str, *, service: str = "echo"
) -> ServiceEnvelope:
    network = cluster.network
    return ServiceEnvelope(
        service=service,
        environment=environment,
        bucket="flowhost-dev-bucket",
        container_env={"AWS_REGION": "us-east-1", "FLOWHOST_PORT": "8080"},
        container_secrets={
            "METAFLOW_SERVICE_AUTH_KEY": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mf"
        },
        queues=QueueEnvelope(
            prefix=f"flowhost-{environment}-",
            retention_seconds=86400,
            visibility_timeout_seconds=45,
        ),
        ecs=EcsEnvelope(
            cluster=cluster.name,
            subnets=network.subnets,
            security_groups=(network.security_group,),
            vpc_id=network.vpc,
            load_balancer_arn=balancer.client.describe_listeners(ListenerArns=[balancer.listener])[
                "Listeners"
            ][0]["LoadBalancerArn"],
            task_role_arn="arn:aws:iam::123456789012:role/echo-task",
            execution_role_arn="arn:aws:iam::123456789012:role/echo-execution",
            log_group="/flowhost/dev/services/echo",
            region="us-east-1",
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/flowhost-dev-runtime:0.1.0",
            collector_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/ecr-public/x:1",
            collector_config_parameter_arn="arn:aws:ssm:us-east-1:123456789012:parameter/adot",
            cpu_units=512,
            memory_mib=1024,
            spot_weight=2,
            requests_per_target_per_minute=300,
        ),
    )


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


@pytest.fixture
def environment() -> str:
    return fresh("dev")


@pytest.fixture
def versions(
    aws_client: ClientFactory,
    balancer: Balancer,
    cluster: Cluster,
    routes: AlbRoutes,
    environment: str,
) -> EcsVersions:
    return EcsVersions(
        ecs=cluster.client,
        elbv2=balancer.client,
        ssm=aws_client("ssm"),
        autoscaling=aws_client("application-autoscaling"),
        queues=SQSQueues(aws_client("sqs"), prefix=f"flowhost-{environment}-"),
        routes=routes,
        environment=environment,
        cluster=cluster.name,
    )


def register(aws_client: ClientFactory, envelope: ServiceEnvelope) -> None:
    aws_client("ssm").put_parameter(
        Name=envelope_parameter(envelope.environment, envelope.service),
        Value=envelope.model_dump_json(),
        Type="String",
        Overwrite=True,
    )


def new_version(store: StateStore) -> VersionRecord:
    return store.create_version(
        definition_of(Echo), code_digest="sha256-" + "c" * 64, artifact_run="EchoFlow/7",
        environment_digest="sha256-e", actor="bob",
    )  # fmt: skip


def test_a_version_without_an_envelope_names_the_stack_to_write(
    versions: EcsVersions, store: StateStore
) -> None:
    with pytest.raises(NotFoundError, match=r"ServiceSpec\('echo', \.\.\.\).*pulumi up"):
        versions.ensure(new_version(store))


def test_a_version_is_created_from_the_record_and_envelope_and_found_again(
    environment: str,
    aws_client: ClientFactory,
    versions: EcsVersions,
    store: StateStore,
    balancer: Balancer,
    cluster: Cluster,
    routes: AlbRoutes,
) -> None:
    envelope = make_envelope(balancer, cluster, environment)
    register(aws_client, envelope)
    version = new_version(store)

    made = versions.ensure(version)

    assert made.ecs_service == f"echo-v{version.number}"
    ecs = cluster.client
    service = ecs.describe_services(cluster=cluster.name, services=[made.ecs_service])["services"][
        0
    ]
    assert service["desiredCount"] == 0
    assert service["loadBalancers"][0]["targetGroupArn"] == made.target_group_arn
    assert service["loadBalancers"][0]["containerPort"] == 8080
    group = balancer.client.describe_target_groups(TargetGroupArns=[made.target_group_arn])[
        "TargetGroups"
    ][0]
    assert group["TargetGroupName"] == target_group_name(environment, "echo", version.number)
    assert group["TargetType"] == "ip"
    assert group["HealthCheckPath"] == "/readyz"
    # its own route exists, parked, before the service that needs it
    own = routes.get("echo", version.label)
    assert (own.target_group_arn, own.parked) == (made.target_group_arn, True)
    # the container runs the version record's package and run, in the envelope's setting
    task = ecs.describe_task_definition(taskDefinition=made.task_definition_arn)["taskDefinition"]
    serving = next(c for c in task["containerDefinitions"] if c["name"] == "service")
    env = {e["name"]: e["value"] for e in serving["environment"]}
    assert env["FLOWHOST_VERSION"] == version.label
    assert env["FLOWHOST_CODE_DIGEST"] == version.code_digest
    assert env["FLOWHOST_CODE_PACKAGE"] == (
        f"s3://flowhost-dev-bucket/packages/{version.code_digest}.tar.gz"
    )
    assert env["FLOWHOST_RUN"] == "EchoFlow/7"
    assert env["FLOWHOST_QUEUE_URL"] == made.queue_url
    assert env["FLOWHOST_QUEUE_NAME"] == f"flowhost-{environment}-echo-v{version.number}"
    assert env["AWS_REGION"] == "us-east-1"
    assert serving["secrets"] == [
        {
            "name": "METAFLOW_SERVICE_AUTH_KEY",
            "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mf",
        }
    ]
    assert task["taskRoleArn"] == envelope.ecs.task_role_arn  # type: ignore[union-attr]
    scaling = aws_client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs"
    )["ScalableTargets"]
    resource = f"service/{cluster.name}/{made.ecs_service}"
    mine = [(t["MinCapacity"], t["MaxCapacity"]) for t in scaling if t["ResourceId"] == resource]
    assert mine == [(0, 3)]
    policies = aws_client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=resource
    )["ScalingPolicies"]
    tracking = policies[0]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 300.0  # the envelope's requests per task per minute
    attributes = aws_client("sqs").get_queue_attributes(
        QueueUrl=made.queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert (attributes["MessageRetentionPeriod"], attributes["VisibilityTimeout"]) == (
        "86400",
        "45",
    )

    again = versions.ensure(version)  # a deploy advanced twice creates nothing new
    assert again == made
    assert versions.running_versions() == {"echo": {version.number}}


def test_the_task_definition_is_what_register_task_definition_accepts(
    balancer: Balancer, cluster: Cluster, environment: str
) -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    wanted = task_definition(make_envelope(balancer, cluster, environment), 3, {"A": "b"})
    report = ParamValidator().validate(wanted, shape)
    assert not report.has_errors(), report.generate_report()


def test_an_envelope_for_another_service_is_refused(
    aws_client: ClientFactory, versions: EcsVersions, store: StateStore, balancer: Balancer,
    cluster: Cluster, environment: str,
) -> None:  # fmt: skip
    wrong = make_envelope(balancer, cluster, environment, service="other")
    aws_client("ssm").put_parameter(
        Name=envelope_parameter(environment, "echo"), Value=wrong.model_dump_json(), Type="String",
        Overwrite=True,
    )  # fmt: skip
    with pytest.raises(DeployError, match="names 'other'"):
        versions.ensure(new_version(store))


def test_removing_a_version_leaves_nothing_behind(
    environment: str,
    aws_client: ClientFactory,
    versions: EcsVersions,
    store: StateStore,
    balancer: Balancer,
    cluster: Cluster,
    routes: AlbRoutes,
) -> None:
    register(aws_client, make_envelope(balancer, cluster, environment))
    version = new_version(store)
    made = versions.ensure(version)

    assert versions.remove("echo", version.number) is True

    assert routes.find("echo", version.label) is None
    remaining = cluster.client.describe_services(cluster=cluster.name, services=[made.ecs_service])[
        "services"
    ]
    assert all(s["status"] != "ACTIVE" for s in remaining)
    names = [g["TargetGroupName"] for g in balancer.client.describe_target_groups()["TargetGroups"]]
    assert target_group_name(environment, "echo", version.number) not in names
    queues = aws_client("sqs").list_queues(
        QueueNamePrefix=f"flowhost-{environment}-echo-v{version.number}"
    )
    assert not queues.get("QueueUrls")
    assert versions.remove("echo", version.number) is True  # already gone: nothing to do


def test_the_fleet_reports_drift_both_ways_and_sweeps_what_retired_versions_left(
    aws_client: ClientFactory,
    versions: EcsVersions,
    store: StateStore,
    balancer: Balancer,
    cluster: Cluster,
    routes: AlbRoutes,
    compute: EcsCompute,
    environment: str,
    tmp_path: Path,
) -> None:
    register(aws_client, make_envelope(balancer, cluster, environment))
    one, two = new_version(store), new_version(store)
    versions.ensure(one)
    versions.ensure(two)
    fleet = EcsFleet(
        compute, routes, LocalObjectStore(tmp_path / "objects"), code_root=tmp_path / "code",
        versions=versions,
    )  # fmt: skip

    # v1 is live; v2 has compute but no live record; v3 is live with no compute
    drift = fleet.drift({"echo": {one.number, 3}})

    assert drift == {"orphaned": [f"echo@v{two.number}"], "missing": ["echo@v3"]}
    assert fleet.sweep([("echo", two.number)]) == 0
    assert fleet.drift({"echo": {one.number}}) == {"orphaned": [], "missing": []}
    assert versions.present([("echo", one.number), ("echo", two.number)]) == [("echo", one.number)]

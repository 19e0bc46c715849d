"""AWS resources the AWS ports' tests build on moto: a VPC with two subnets and a
security group, an internal ALB with a listener and the activator's target group, and an
ECS cluster whose services register with target groups. Every name is fresh, since one
moto server serves the whole session."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from flowhost.services.envelope import (
    EcsEnvelope,
    QueueEnvelope,
    ServiceEnvelope,
    envelope_parameter,
)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Network:
    vpc: str
    subnets: tuple[str, str]
    security_group: str


def create_network(ec2: Any) -> Network:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    )
    group = ec2.create_security_group(GroupName=fresh("alb"), Description="alb", VpcId=vpc)
    return Network(vpc, (subnets[0], subnets[1]), group["GroupId"])


@dataclass(frozen=True)
class Balancer:
    """An internal ALB: its listener (404 by default) and the activator's target group."""

    client: Any
    network: Network
    listener: str
    activator: str

    def target_group(self, name: str | None = None) -> str:
        found = self.client.create_target_group(
            Name=name or fresh("tg"), Protocol="HTTP", Port=8000, VpcId=self.network.vpc,
            TargetType="ip", HealthCheckPath="/readyz",
        )  # fmt: skip
        return found["TargetGroups"][0]["TargetGroupArn"]

    def healthy_task(self, target_group: str, ip: str = "10.0.1.10") -> None:
        """A target in ``target_group`` that passes its health check, as a started task
        of the version's ECS service would be (moto runs no tasks and reports registered
        targets healthy); the fleet waits for one before it calls a version ready."""
        self.client.register_targets(
            TargetGroupArn=target_group, Targets=[{"Id": ip, "Port": 8000}]
        )

    def rules(self) -> list[dict[str, Any]]:
        """The listener's rules as ALB reports them, default rule excluded."""
        found = self.client.describe_rules(ListenerArn=self.listener)["Rules"]
        return [r for r in found if not r["IsDefault"]]


def create_balancer(elbv2: Any, network: Network) -> Balancer:
    balancer = elbv2.create_load_balancer(
        Name=fresh("int"), Subnets=list(network.subnets), SecurityGroups=[network.security_group],
        Scheme="internal", Type="application",
    )["LoadBalancers"][0]["LoadBalancerArn"]  # fmt: skip
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer, Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "404", "ContentType": "application/json", "MessageBody": "{}"}}],
    )["Listeners"][0]["ListenerArn"]  # fmt: skip
    half = Balancer(elbv2, network, listener, "")
    return Balancer(elbv2, network, listener, half.target_group(fresh("activator")))


@dataclass(frozen=True)
class Cluster:
    client: Any
    name: str
    network: Network

    def service(self, name: str, target_group: str | None, *, desired: int = 0) -> str:
        """An ECS Fargate service as ServiceSpec makes it, attached to ``target_group``."""
        task = self.client.register_task_definition(
            family=name, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
            cpu="256", memory="512",
            containerDefinitions=[{"name": "app", "image": "example/app:1", "memory": 512,
                                   "portMappings": [{"containerPort": 8000}]}],
        )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
        balancers = (
            []
            if target_group is None
            else [{"targetGroupArn": target_group, "containerName": "app", "containerPort": 8000}]
        )
        self.client.create_service(
            cluster=self.name, serviceName=name, taskDefinition=task, desiredCount=desired,
            launchType="FARGATE", loadBalancers=balancers,
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": list(self.network.subnets),
                "securityGroups": [self.network.security_group]}},
        )  # fmt: skip
        return name


@contextmanager
def placed_tasks(cluster: Cluster, balancer: Balancer, interval: float = 0.05) -> Iterator[None]:
    """What ECS does that moto does not: while the block runs, every service of the
    cluster with a desired count above zero has a healthy target in its target group,
    and one at zero has none (tasks start healthy at once; the composed suite in
    tests/e2e/aws runs real ones)."""
    stop = threading.Event()

    def place() -> None:
        while not stop.wait(interval):
            arns = cluster.client.list_services(cluster=cluster.name)["serviceArns"]
            if not arns:
                continue
            described = cluster.client.describe_services(cluster=cluster.name, services=arns)
            for service in described["services"]:
                for attached in service.get("loadBalancers") or []:
                    with suppress(ClientError):  # its version was retired meanwhile
                        follow(attached["targetGroupArn"], service["desiredCount"] > 0)

    def follow(group: str, running: bool) -> None:
        elbv2, target = balancer.client, [{"Id": "10.0.1.10", "Port": 8000}]
        health = elbv2.describe_target_health(TargetGroupArn=group)
        registered = bool(health["TargetHealthDescriptions"])
        if running and not registered:
            elbv2.register_targets(TargetGroupArn=group, Targets=target)
        elif registered and not running:
            elbv2.deregister_targets(TargetGroupArn=group, Targets=target)

    thread = threading.Thread(target=place, name="placed-tasks", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def create_cluster(ecs: Any, network: Network) -> Cluster:
    name = fresh("cluster")
    ecs.create_cluster(clusterName=name)
    return Cluster(ecs, name, network)


def register_envelope(
    ssm: Any, balancer: Balancer, cluster: Cluster, environment: str, service: str,
    *, queue_prefix: str,
) -> ServiceEnvelope:  # fmt: skip
    """Write ``service``'s envelope to SSM as its stack's ServiceSpec would, with the
    network, balancer and cluster of these tests; returns it."""
    network = cluster.network
    listener = balancer.client.describe_listeners(ListenerArns=[balancer.listener])
    envelope = ServiceEnvelope(
        service=service,
        environment=environment,
        bucket="flowhost-test-bucket",
        container_env={"AWS_REGION": "us-east-1", "FLOWHOST_PORT": "8080"},
        queues=QueueEnvelope(prefix=queue_prefix),
        ecs=EcsEnvelope(
            cluster=cluster.name,
            subnets=network.subnets,
            security_groups=(network.security_group,),
            vpc_id=network.vpc,
            load_balancer_arn=listener["Listeners"][0]["LoadBalancerArn"],
            task_role_arn=f"arn:aws:iam::123456789012:role/{service}-task",
            execution_role_arn=f"arn:aws:iam::123456789012:role/{service}-execution",
            log_group=f"/flowhost/{environment}/services/{service}",
            region="us-east-1",
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/flowhost-runtime:0.1.0",
            cpu_units=512,
            memory_mib=1024,
        ),
    )
    ssm.put_parameter(
        Name=envelope_parameter(environment, service), Value=envelope.model_dump_json(),
        Type="String", Overwrite=True,
    )  # fmt: skip
    return envelope

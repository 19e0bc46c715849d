"""What the fleet emulation's tests build in moto: a version of the echo service as the
control plane would run it (code package in S3, queues, a task definition with the real
container definitions, a target group, an ECS service), and a small HTTP target that
answers with what it received (to see what the ALB emulation forwards)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from flowhost.lambdas.aws.taskdef import container_definitions
from flowhost.services.envelope import EcsEnvelope
from tests.integration.aws.container_support import SERVICE, Package, Platform, fresh
from tests.integration.aws.support import Balancer, Network

PORT = 8080  # the serving container's port (flowhost.infra.network.SERVICE_PORT)
ROLE_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})  # fmt: skip


def serving_environment(platform: Platform, uri: str, digest: str) -> dict[str, str]:
    """The serving container's environment for version 1 of the echo service."""
    queue = platform.queue
    return {
        "FLOWHOST_SERVICE": SERVICE, "FLOWHOST_VERSION": "v1", "FLOWHOST_ENVIRONMENT": "test",
        "FLOWHOST_PORT": str(PORT), "FLOWHOST_CODE_PACKAGE": uri, "FLOWHOST_CODE_DIGEST": digest,
        "FLOWHOST_ENTRYPOINT": "echo_service.py:Echo", "FLOWHOST_BUCKET": platform.bucket,
        "FLOWHOST_KMS_KEY_ARN": platform.kms_key_arn,
        "FLOWHOST_ASYNC_PREFIX": f"async/{SERVICE}/", "FLOWHOST_QUEUE_NAME": platform.queue_name,
        "FLOWHOST_QUEUE_URL": queue.url, "FLOWHOST_DEAD_LETTER_QUEUE_URL": queue.dead_letter_url,
        "AWS_REGION": "us-east-1",
    }  # fmt: skip


def definitions(environment: dict[str, str], secrets: dict[str, str]) -> list[dict[str, Any]]:
    """The platform's container definitions (serving + collector), with ``secrets`` on
    the serving container."""
    arn = "arn:aws:{}:us-east-1:123456789012:{}".format
    ecs = EcsEnvelope(
        cluster="flowhost-test", subnets=("subnet-a",), security_groups=("sg-a",), vpc_id="vpc-a",
        load_balancer_arn=arn("elasticloadbalancing", "loadbalancer/app/alb/1"),
        task_role_arn=arn("iam", "role/task"), execution_role_arn=arn("iam", "role/exec"),
        log_group=f"/flowhost/test/{SERVICE}", region="us-east-1",
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/flowhost-test-runtime:1",
        collector_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/adot:v0.40.0",
        collector_config_parameter_arn=arn("ssm", "parameter/flowhost/adot"),
        cpu_units=256, memory_mib=512,
    )  # fmt: skip
    return container_definitions(ecs, environment, secrets, "v1")  # as the control plane


@dataclass(frozen=True)
class Version:
    """One ECS service (a version) attached to its target group and listener rule."""

    ecs: Any
    cluster: str
    name: str
    target_group: str
    task_definition: str

    def scale(self, count: int) -> dict[str, Any]:
        return self.ecs.update_service(cluster=self.cluster, service=self.name,
                                       desiredCount=count)["service"]  # fmt: skip

    def describe(self) -> dict[str, Any]:
        found = self.ecs.describe_services(cluster=self.cluster, services=[self.name])
        return found["services"][0]


def create_version(
    aws: Callable[[str], Any], network: Network, balancer: Balancer, cluster: str,
    environment: dict[str, str], secrets: dict[str, str] | None = None,
) -> Version:  # fmt: skip
    """Task definition, target group (health check ``/readyz``), the production rule of
    the echo service, and an ECS service at 0 tasks."""
    role = aws("iam").create_role(RoleName=fresh("task"), AssumeRolePolicyDocument=ROLE_POLICY)
    ecs = aws("ecs")
    name = fresh(f"{SERVICE}-v1")
    task = ecs.register_task_definition(
        family=name, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
        memory="512", taskRoleArn=role["Role"]["Arn"],
        containerDefinitions=definitions(environment, secrets or {}),
    )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
    group = balancer.client.create_target_group(
        Name=fresh("tg"), Protocol="HTTP", Port=PORT, VpcId=network.vpc, TargetType="ip",
        HealthCheckPath="/readyz",
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    ecs.create_service(
        cluster=cluster, serviceName=name, taskDefinition=task, desiredCount=0,
        launchType="FARGATE",
        loadBalancers=[{"targetGroupArn": group, "containerName": "service",
                        "containerPort": PORT}],
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": list(network.subnets), "securityGroups": [network.security_group]}},
    )  # fmt: skip
    return Version(ecs, cluster, name, group, task)


def forward_rule(
    balancer: Balancer, priority: int, patterns: list[str], groups: dict[str, int]
) -> str:
    """A rule forwarding ``patterns`` to weighted target groups; its ARN."""
    return balancer.client.create_rule(
        ListenerArn=balancer.listener, Priority=priority,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": patterns}}],
        Actions=[forward(groups)],
    )["Rules"][0]["RuleArn"]  # fmt: skip


def forward(groups: dict[str, int]) -> dict[str, Any]:
    weighted = [{"TargetGroupArn": g, "Weight": w} for g, w in groups.items()]
    return {"Type": "forward", "ForwardConfig": {"TargetGroups": weighted}}


# -- a target that says what it received ---------------------------------------------------

Scope = dict[str, Any]


class EchoTarget:
    """An HTTP server on ``address`` (a free port) answering every request with JSON of
    its method, path, query, headers and body, and its own name."""

    def __init__(self, name: str, address: str = "127.0.0.1") -> None:
        self.name = name
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((address, 0))
        self.address, self.port = address, int(sock.getsockname()[1])
        self._socket = sock
        config = uvicorn.Config(
            self._app, lifespan="off", log_level="warning", interface="asgi3", proxy_headers=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def target(self) -> dict[str, Any]:
        return {"Id": self.address, "Port": self.port}

    async def _app(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Any]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = {
            "target": self.name, "method": scope["method"], "path": scope["path"],
            "query": scope["query_string"].decode(), "body": body.decode(errors="replace"),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        }  # fmt: skip
        content = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


__all__ = [
    "PORT",
    "EchoTarget",
    "Package",
    "Version",
    "create_version",
    "definitions",
    "forward",
    "forward_rule",
    "serving_environment",
]

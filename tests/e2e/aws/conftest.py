"""Fixtures of the composed AWS suite: moto, the Lambda emulation, the platform stack run
into them (``pulumi up`` equivalent), and its API Gateway with the callers it allows.

Everything is session-scoped and stopped at teardown, even after a failure: the platform
runs once (its program, moto, a TLS PostgreSQL); tests that change shared state say so.
The ECS and ALB emulations (``ecs.py``, ``alb.py``) are wired by ``balancer`` and
``containers`` when their modules are there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

# pulumi_aws warns about its own deprecated resources when a module loads; the programs use
# none of them. Load the modules once with that warning (only from pulumi_aws) ignored.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws\.")
    import pulumi_aws

    for _module in (
        "apigatewayv2", "appautoscaling", "cloudwatch", "ec2", "ecr", "ecs", "eks", "iam", "kms",
        "lambda_", "lb", "rds", "s3", "secretsmanager", "sns", "sqs", "ssm", "xray",
    ):  # fmt: skip
        getattr(getattr(pulumi_aws, _module), "_utilities", None)

from tests.e2e.aws.apigw import ApiGateway, Identity
from tests.e2e.aws.lambdas import LambdaEmulator, LambdaFunction
from tests.e2e.aws.stack import REGION, StackBridge, StackRecord
from tests.integration.support import free_port
from tests.support.pyindex import (
    PackageIndex,
    index_wheels,  # noqa: F401  # pyright: ignore[reportUnusedImport]
    package_index,  # noqa: F401  # pyright: ignore[reportUnusedImport]
)

ADMIN = ("AKIAFLOWHOSTADMIN001", "flowhost-admin-secret-key")
ADMIN_ARN = "arn:aws:iam::123456789012:user/platform-admin"
HANDLERS = ("echo", "sleep", "fail", "ticker", "invoke_later", "big")


@pytest.fixture(scope="session", autouse=True)
def _an_event_loop() -> None:
    """Pulumi's mocks run on the thread's current event loop."""
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
    except RuntimeError:
        policy.set_event_loop(policy.new_event_loop())


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on loopback, in this process (the ECS emulation reads it)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lambdas(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaEmulator]:
    emulator = LambdaEmulator(moto_endpoint, tmp_path_factory.mktemp("lambda-logs"), region=REGION)
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture(scope="session")
def bridge(moto_endpoint: str, lambdas: LambdaEmulator) -> Iterator[StackBridge]:
    stacks = StackBridge(moto_endpoint, lambdas)
    try:
        yield stacks
    finally:
        stacks.close()


@pytest.fixture(scope="session")
def platform(
    bridge: StackBridge,
    base_env: dict[str, str],
    package_index: PackageIndex,  # noqa: F811
) -> StackRecord:
    """``pulumi up`` of the dev platform stack into the emulated account. Its Metaflow
    settings (``flowhost:metaflow``, which the dev stack file leaves to its user) name the
    session's local metadata and datastore, where the example flow runs for real; its
    package index (``flowhost:packageIndex``) is the session's private one, its
    credentials in a Secrets Manager secret, as an operator sets it up."""
    metaflow = {
        "metadata": "local",
        "datastore": "local",
        "datastoreRoot": base_env["METAFLOW_DATASTORE_SYSROOT_LOCAL"],
        "namespace": f"user:{base_env['USERNAME']}",
    }
    secret = bridge.client("secretsmanager").create_secret(
        Name="pypi-credentials", SecretString=package_index.credentials_json
    )
    index = {"url": package_index.url, "credentialsSecretArn": secret["ARN"]}
    return bridge.run_platform(
        "dev",
        {"flowhost:metaflow": json.dumps(metaflow), "flowhost:packageIndex": json.dumps(index)},
    )


@pytest.fixture(scope="session")
def edge(platform: StackRecord, bridge: StackBridge) -> ApiGateway:
    """The platform's HTTP API; one IAM caller may sign requests to it."""
    gateway = bridge.gateways[platform.outputs["apiId"]]
    gateway.identities[ADMIN[0]] = Identity(ADMIN[1], ADMIN_ARN)
    return gateway


@pytest.fixture(scope="session")
def bridge_databases(platform: StackRecord, bridge: StackBridge) -> dict[str, str]:
    """The RDS instances the stack created: identifier -> ``host:port`` of its server."""
    return {name: f"{db.host}:{db.port}" for name, db in bridge.databases.items()}


@pytest.fixture(scope="session")
def balancer(
    platform: StackRecord, edge: ApiGateway, moto_endpoint: str, lambdas: LambdaEmulator
) -> Iterator[Any]:
    """The ALB emulation behind the API's VPC link (skipped until its module exists)."""
    try:
        module: Any = importlib.import_module("tests.e2e.aws.alb")
    except ModuleNotFoundError:
        pytest.skip("the ALB emulation (tests/e2e/aws/alb.py) is not there yet")
    listener = platform.outputs["albListenerArn"]
    alb = module.AlbEmulator(moto_endpoint, listener, lambdas.invoke)
    edge.vpc_links[listener] = alb.url
    # The VPC's DNS, emulated: inside the VPC the internal ALB's DNS name resolves to it;
    # here the functions that call it directly (the activator's replays) are told its URL.
    for function in list(lambdas.functions.values()):
        if function.environment.get("FLOWHOST_LISTENER_ARN") == listener:
            environment = {**function.environment, "FLOWHOST_BALANCER_URL": alb.url}
            lambdas.register(dataclasses.replace(function, environment=environment))
    try:
        yield alb
    finally:
        edge.vpc_links.pop(listener, None)
        getattr(alb, "close", lambda: None)()


@pytest.fixture(scope="session")
def containers(
    platform: StackRecord, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The ECS emulation for the platform's cluster (skipped until its module exists)."""
    try:
        module: Any = importlib.import_module("tests.e2e.aws.ecs")
    except ModuleNotFoundError:
        pytest.skip("the ECS emulation (tests/e2e/aws/ecs.py) is not there yet")
    emulator = module.EcsEmulator(
        moto_endpoint, platform.outputs["ecsClusterName"], tmp_path_factory.mktemp("ecs-logs")
    ).start()
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture(scope="module")
def functions(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaEmulator]:
    """A Lambda emulation of its own with the small handlers of handlers.py (1 s timeouts)."""
    emulator = LambdaEmulator(moto_endpoint, tmp_path_factory.mktemp("toy-lambda-logs"))
    for name in HANDLERS:
        emulator.register(LambdaFunction(
            name, f"tests.e2e.aws.handlers.{name}", {"TOY_SETTING": name},
            timeout=10 if name == "invoke_later" else 1,  # importing boto3 takes a while
            memory_mb=256,
        ))  # fmt: skip
    try:
        yield emulator
    finally:
        emulator.close()

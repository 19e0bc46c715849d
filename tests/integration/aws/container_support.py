"""What the container bootstrap's tests share: the packaged echo service, the platform
pieces a service gets (bucket, key, queues), the container environment, and the
environment and role ServiceSpec creates (under the recording mock)."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.lambdas.queue.sqs import SQSQueue
from flowhost.services.packaging import build_package, package_key
from tests.integration.support import free_port, poll

ClientFactory = Callable[[str], Any]
MODULE = "flowhost.lambdas.aws.container"
SERVICE = "boot-echo"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

SERVICE_FILE = '''
"""A service packaged and served by the tests of the container bootstrap."""

import os

from pydantic import BaseModel

from flowhost.services import WebServiceSpec, endpoint
from helper import shout


class EchoIn(BaseModel):
    text: str


class Echo(WebServiceSpec):
    name = "boot-echo"

    @endpoint
    def echo(self, request: EchoIn) -> dict[str, str]:
        return {"text": shout(request.text), "cwd": os.getcwd()}
'''
HELPER_FILE = "def shout(text: str) -> str:\n    return text.upper() + '!'\n"


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Package:
    digest: str
    archive: bytes


@dataclass(frozen=True)
class Platform:
    """What the platform stack gives a service: a bucket, a KMS key, the version's queues."""

    s3: Any
    bucket: str
    kms_key_arn: str
    queue: SQSQueue
    queue_name: str

    def upload(self, package: Package, key: str | None = None) -> str:
        key = key or package_key(package.digest)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=package.archive)
        return f"s3://{self.bucket}/{key}"


def make_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    code = tmp_path_factory.mktemp("echo-service")
    (code / "echo_service.py").write_text(SERVICE_FILE)
    (code / "helper.py").write_text(HELPER_FILE)
    return Package(*build_package(code))


def make_platform(aws_client: ClientFactory) -> Platform:
    s3 = aws_client("s3")
    bucket = fresh("flowhost-test-data")
    s3.create_bucket(Bucket=bucket)
    key = aws_client("kms").create_key(Description="flowhost tests")["KeyMetadata"]["Arn"]
    name = fresh("flowhost-test-boot-echo-v1")
    queue = SQSQueue.create(aws_client("sqs"), name, max_receive_count=3)
    return Platform(s3, bucket, key, queue, name)


# -- the process ----------------------------------------------------------------------------


@dataclass
class Container:
    """One container bootstrap process (``python -m flowhost.lambdas.aws.container``)."""

    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the container exited with {self.process.returncode}\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            pytest.fail(f"the container ignored SIGTERM for {STOP_TIMEOUT}s\n{self.output()}")

    def wait_ready(self, client: httpx.Client) -> None:
        def ready() -> bool | None:
            self.check_alive()
            try:
                return client.get("/readyz").status_code == 200 or None
            except httpx.TransportError:
                return None

        poll("the container's /readyz", ready, START_TIMEOUT)


def container_starter(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Container]]:
    """The body of a ``start`` fixture: ``start(env)`` runs a container (killed after)."""
    started: list[Container] = []

    def run(env: dict[str, str]) -> Container:
        stdout, stderr = tmp_path / f"stdout-{len(started)}", tmp_path / f"stderr-{len(started)}"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", MODULE], env=env, cwd=tmp_path, stdout=out, stderr=err
            )
        container = Container(process, int(env["FLOWHOST_PORT"]), stdout, stderr)
        started.append(container)
        return container

    yield run
    for container in started:
        if container.process.poll() is None:
            container.process.kill()
            container.process.wait(STOP_TIMEOUT)


def finished(container: Container) -> int:
    """The exit code of a container expected to stop by itself."""
    try:
        return container.process.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the container did not exit\n{container.output()}")


# -- the environment ServiceSpec sets ------------------------------------------------------


@functools.cache
def service_spec_run() -> Any:
    """Two ServiceSpecs (a plain service; one with an Artifacts binding and a pinned run)
    under the recording mock, as their resources would be created."""
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
    except RuntimeError:  # an earlier asyncio.run() left none; Pulumi's test runner needs one
        policy.set_event_loop(policy.new_event_loop())
    with warnings.catch_warnings():  # pulumi_aws's own deprecated modules warn on load
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws\.")
        from flowhost.infra import ServiceSpec
        from tests.infra.services.example.tiny import Scored, Tiny
        from tests.infra.services.harness import platform as platform_ref
        from tests.infra.services.harness import run_services

        def build() -> dict[str, Any]:
            ref = platform_ref()
            ServiceSpec("tiny", spec=Tiny, platform=ref)  # envelopes: the control plane
            ServiceSpec("scored", spec=Scored, platform=ref)  # adds each version's own part
            return {}

        return run_services(build)


def service_spec_environments() -> dict[str, dict[str, str]]:
    """The serving container's environment of tiny v1 and scored v2 (pinned to a run):
    their ServiceSpec envelopes with what the control plane adds per version."""
    from flowhost.services.envelope import ServiceEnvelope, version_environment

    run, found = service_spec_run(), {}
    for name, number, pinned in (("tiny", 1, None), ("scored", 2, "TrainFlow/42")):
        value = run.named(f"{name}-envelope").inputs["value"]
        envelope = ServiceEnvelope.model_validate_json(value)
        queue = f"{envelope.queues.prefix}{name}-v{number}"
        found[name] = version_environment(
            envelope, number=number, digest="sha256-" + "0" * 64, entrypoint=f"tiny.py:{name}",
            run=pinned, artifact_flow=pinned and "TrainFlow", queue_name=queue,
            queue_url=f"https://sqs/{queue}", dead_letter_url=f"https://sqs/{queue}-dlq",
        )  # fmt: skip
    return found


def container_env(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, uri: str, digest: str,
    tmp_path: Path, **extra: str,
) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in base_env.items() if not k.startswith("AWS_")}
    queue = platform.queue
    env.update(
        AWS_ENDPOINT_URL=moto_endpoint,  # every boto3 client of the process goes to moto
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_REGION="us-east-1",
        FLOWHOST_SERVICE=SERVICE,
        FLOWHOST_VERSION="v1",
        FLOWHOST_ENVIRONMENT="test",
        FLOWHOST_PORT=str(free_port()),
        FLOWHOST_HOST="127.0.0.1",
        FLOWHOST_CODE_PACKAGE=uri,
        FLOWHOST_CODE_DIGEST=digest,
        FLOWHOST_ENTRYPOINT="echo_service.py:Echo",
        FLOWHOST_BUCKET=platform.bucket,
        FLOWHOST_KMS_KEY_ARN=platform.kms_key_arn,
        FLOWHOST_ASYNC_PREFIX=f"async/{SERVICE}/",
        FLOWHOST_QUEUE_NAME=platform.queue_name,
        FLOWHOST_QUEUE_URL=queue.url,
        FLOWHOST_DEAD_LETTER_QUEUE_URL=queue.dead_letter_url,
        FLOWHOST_CODE_DIR=str(tmp_path / "code"),
        **extra,
    )
    return env


# -- a service with artifacts: the example, bound to a real Metaflow run -----------------------

SENTIMENT_FILE = Path(__file__).parents[3] / "examples" / "services" / "sentiment.py"


def make_sentiment_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """examples/services/sentiment.py (Artifacts(flow="SentimentFlow")) as a code package."""
    code = tmp_path_factory.mktemp("sentiment-service")
    (code / "sentiment.py").write_text(SENTIMENT_FILE.read_text())
    return Package(*build_package(code))


def sentiment_env(env: dict[str, str], run: str | None, **extra: str) -> dict[str, str]:
    """``env`` (from container_env) turned to the sentiment service, pinned to ``run``."""
    env = {**env, **extra}
    env.update(
        FLOWHOST_SERVICE="sentiment",
        FLOWHOST_ENTRYPOINT="sentiment.py:Sentiment",
        FLOWHOST_ASYNC_PREFIX="async/sentiment/",
        FLOWHOST_ARTIFACT_FLOW="SentimentFlow",
        FLOWHOST_ASYNC="off",
    )
    if run is not None:
        env["FLOWHOST_RUN"] = run
    return env

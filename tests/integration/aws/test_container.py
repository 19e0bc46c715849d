"""The serving container's bootstrap (``python -m flowhost.lambdas.aws.container``): the
environment ServiceSpec really sets, ``fetch_package`` on moto's S3, the process end to end
(package from S3, HTTP, metrics, EMF on stdout, an async job through SQS and S3, SIGTERM),
and the runtime Dockerfile that runs it."""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import gzip
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.lambdas.aws.container import PackageError, fetch_package
from flowhost.lambdas.aws.container_settings import CONTRACT, KNOBS, ContainerSettings
from flowhost.lambdas.jobs import job_message, payload_key
from flowhost.lambdas.ledger import read_outcome
from flowhost.lambdas.queue.sqs import SQSQueue
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.services.packaging import build_package, package_key
from tests.integration.otlp import OtlpReceiver
from tests.integration.support import ROOT, free_port, poll

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


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    code = tmp_path_factory.mktemp("echo-service")
    (code / "echo_service.py").write_text(SERVICE_FILE)
    (code / "helper.py").write_text(HELPER_FILE)
    return Package(*build_package(code))


@pytest.fixture
def platform(aws_client: ClientFactory) -> Platform:
    s3 = aws_client("s3")
    bucket = fresh("flowhost-test-data")
    s3.create_bucket(Bucket=bucket)
    key = aws_client("kms").create_key(Description="flowhost tests")["KeyMetadata"]["Arn"]
    name = fresh("flowhost-test-boot-echo-v1")
    queue = SQSQueue.create(aws_client("sqs"), name, max_receive_count=3)
    return Platform(s3, bucket, key, queue, name)


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
            ServiceSpec("tiny", spec=Tiny, platform=ref)
            ServiceSpec("scored", spec=Scored, platform=ref, version=2, run="TrainFlow/42")
            return {}

        return run_services(build)


def service_spec_environments() -> dict[str, dict[str, str]]:
    """The serving container's environment of both ServiceSpecs of ``service_spec_run``."""
    run = service_spec_run()
    found: dict[str, dict[str, str]] = {}
    for name in ("tiny", "scored"):
        (serving, _collector) = json.loads(run.named(f"{name}-task").inputs["containerDefinitions"])
        found[name] = {e["name"]: e["value"] for e in serving["environment"]}
    return found


def test_the_bootstrap_reads_exactly_what_service_spec_sets() -> None:
    envs = service_spec_environments()
    read = set(CONTRACT)
    optional = {"FLOWHOST_RUN", "FLOWHOST_ARTIFACT_FLOW"}
    for name, env in envs.items():
        ours = {k for k in env if k.startswith(("FLOWHOST_", "AWS_"))}
        assert ours <= read, f"{name}: set but never read: {sorted(ours - read)}"
        assert read - optional <= ours, f"{name}: read but never set: {sorted(read - ours)}"
        assert not ours & set(KNOBS), "the knobs have defaults; ServiceSpec leaves them"
    assert optional <= set(envs["scored"])  # every optional variable is set by some spec

    tiny = ContainerSettings.from_env(envs["tiny"])
    assert (tiny.service, tiny.label, tiny.port, tiny.run) == ("tiny", "v1", 8080, None)
    assert tiny.runtime().otlp_endpoint == "http://127.0.0.1:4318"  # traces to the sidecar
    assert tiny.package_location[1] == package_key(tiny.code_digest)
    scored = ContainerSettings.from_env(envs["scored"])
    assert (scored.run, scored.artifact_flow, scored.version) == ("TrainFlow/42", "TrainFlow", 2)


# -- fetch_package ---------------------------------------------------------------------------


def test_fetch_unpacks_a_verified_package(platform: Platform, package: Package, tmp_path: Path):
    uri = platform.upload(package)
    code = fetch_package(platform.s3, uri, package.digest, tmp_path)
    assert code == tmp_path / package.digest
    assert sorted(p.name for p in code.iterdir() if not p.name.startswith(".")) == [
        "echo_service.py",
        "helper.py",
    ]
    assert (code / "helper.py").read_text() == HELPER_FILE
    assert [p.name for p in tmp_path.iterdir()] == [package.digest]  # no staging left


def test_a_warm_cache_is_used_without_a_download(
    platform: Platform, package: Package, tmp_path: Path
) -> None:
    uri = platform.upload(package)
    first = fetch_package(platform.s3, uri, package.digest, tmp_path)
    platform.s3.delete_object(Bucket=platform.bucket, Key=package_key(package.digest))
    assert fetch_package(platform.s3, uri, package.digest, tmp_path) == first  # no GetObject
    with pytest.raises(PackageError, match="no such object"):  # proves the object is gone
        fetch_package(platform.s3, uri, package.digest, tmp_path / "cold")


def test_a_partial_unpack_is_not_taken_for_a_warm_cache(
    platform: Platform, package: Package, tmp_path: Path
) -> None:
    uri = platform.upload(package)
    (tmp_path / package.digest).mkdir()  # an earlier start died while unpacking
    (tmp_path / package.digest / "stale.py").write_text("raise SystemExit(3)\n")
    code = fetch_package(platform.s3, uri, package.digest, tmp_path)
    assert not (code / "stale.py").exists()
    assert (code / "echo_service.py").is_file()


def test_a_digest_mismatch_names_the_uri(platform: Platform, package: Package, tmp_path: Path):
    claimed = "sha256-" + "0" * 64
    uri = platform.upload(package, package_key(claimed))
    with pytest.raises(PackageError) as raised:
        fetch_package(platform.s3, uri, claimed, tmp_path)
    assert str(raised.value).startswith(f"code package {uri}: digest mismatch")
    assert package.digest in str(raised.value)
    assert not (tmp_path / claimed).exists()


def test_a_missing_object_names_the_uri(platform: Platform, package: Package, tmp_path: Path):
    uri = f"s3://{platform.bucket}/{package_key(package.digest)}"
    with pytest.raises(PackageError) as raised:
        fetch_package(platform.s3, uri, package.digest, tmp_path)
    assert str(raised.value).startswith(f"code package {uri}: no such object (NoSuchKey)")
    gone = f"s3://{fresh('no-such-bucket')}/{package_key(package.digest)}"
    with pytest.raises(PackageError, match=re.escape(f"{gone}: no such object")):
        fetch_package(platform.s3, gone, package.digest, tmp_path)


def test_an_object_that_is_not_a_package(platform: Platform, package: Package, tmp_path: Path):
    uri = platform.upload(Package(package.digest, b"PK\x03\x04 not gzip"))
    with pytest.raises(PackageError, match="not a gzip archive"):
        fetch_package(platform.s3, uri, package.digest, tmp_path)
    assert gzip.decompress(package.archive)  # the real one is


# -- the process ----------------------------------------------------------------------------


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


@dataclass
class Container:
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


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Container]]:
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
    try:
        return container.process.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the container did not exit\n{container.output()}")


def test_a_bad_environment_stops_the_process_with_one_line(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, package: Package,
    tmp_path: Path, start: Callable[[dict[str, str]], Container],
) -> None:  # fmt: skip
    env = container_env(base_env, moto_endpoint, platform, "s3://x/k", package.digest, tmp_path)
    env["FLOWHOST_VERSION"] = "latest"
    container = start(env)
    assert finished(container) == 2
    err = container.stderr.read_text()
    assert err.count("\n") == 1, err
    assert "FLOWHOST_VERSION: not a version label v<N> (got 'latest')" in err
    assert "Traceback" not in err


def test_a_missing_package_stops_the_process_with_one_line(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, package: Package,
    tmp_path: Path, start: Callable[[dict[str, str]], Container],
) -> None:  # fmt: skip
    uri = f"s3://{platform.bucket}/{package_key(package.digest)}"  # never uploaded
    container = start(
        container_env(base_env, moto_endpoint, platform, uri, package.digest, tmp_path)
    )
    assert finished(container) == 1
    errors = [line for line in container.stderr.read_text().splitlines() if "Traceback" in line or
              line.startswith("flowhost container:")]  # fmt: skip
    assert errors == [f"flowhost container: code package {uri}: no such object (NoSuchKey). "
                      "Deploy the version again (ServiceSpec uploads the package), or fix "
                      "FLOWHOST_CODE_PACKAGE."]  # fmt: skip


def emf_lines(container: Container) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for line in container.stdout.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            lines.append(record)  # pyright: ignore[reportUnknownArgumentType]
    return lines


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """Stands in for the ADOT sidecar's OTLP/HTTP receiver."""
    with OtlpReceiver() as receiver:
        yield receiver


def test_the_container_serves_the_package_from_s3(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, package: Package,
    tmp_path: Path, start: Callable[[dict[str, str]], Container], receiver: OtlpReceiver,
) -> None:  # fmt: skip
    uri = platform.upload(package)
    env = container_env(
        base_env, moto_endpoint, platform, uri, package.digest, tmp_path,
        FLOWHOST_METRICS_INTERVAL="1", FLOWHOST_ASYNC_VISIBILITY="10",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, FLOWHOST_TRACE_SAMPLE_RATIO="1",
        OTEL_BSP_SCHEDULE_DELAY="100", OTEL_RESOURCE_ATTRIBUTES="flowhost.environment=test",
    )  # fmt: skip
    container = start(env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{container.port}", timeout=10.0)

    def ready() -> bool | None:
        container.check_alive()
        try:
            return client.get("/readyz").status_code == 200 or None
        except httpx.TransportError:
            return None

    with client:
        poll("the container's /readyz", ready, START_TIMEOUT)
        answer = client.post("/echo", json={"text": "hello"})
        assert answer.status_code == 200, answer.text
        code = tmp_path / "code" / package.digest
        assert answer.json() == {"text": "HELLO!", "cwd": str(code)}
        metrics = client.get("/metrics").text
        assert re.search(r'flowhost_requests_total\{[^}]*endpoint="echo"[^}]*\} 1', metrics), (
            metrics
        )

        def emf_for_echo() -> dict[str, Any] | None:
            container.check_alive()
            found = [r for r in emf_lines(container) if r.get("Endpoint") == "echo"]
            return next((r for r in found if r.get("Requests", 0) >= 1), None)

        line = poll("an EMF line for the echo endpoint on stdout", emf_for_echo, 15.0)
        assert (line["Service"], line["Version"], line["Environment"]) == (SERVICE, "1", "test")
        assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "flowhost/services"
        (span,) = receiver.wait_for(lambda s: s.name == "POST /echo")
        assert (span.service, span.kind) == (SERVICE, "server")
        assert span.resource["flowhost.environment"] == "test"  # OTEL_RESOURCE_ATTRIBUTES
        assert span.resource["service.version"] == "v1"

        run_an_async_job(platform, container)

    assert container.stop() == 0, container.output()
    log = container.stderr.read_text()
    assert "Application shutdown complete." in log, container.output()
    assert "Traceback" not in log, container.output()


def run_an_async_job(platform: Platform, container: Container) -> None:
    """A request the way the control plane queues one (``AsyncRequests.submit``): the
    payload in the bucket, a pointer on the version's queue; the outcome comes back as
    an object beside the payload (``ObjectLedger``)."""
    objects = S3ObjectStore(platform.s3, platform.bucket)
    request_id = "req_" + uuid.uuid4().hex
    key = payload_key(SERVICE, request_id)
    objects.put(key, json.dumps({"text": "later"}).encode())
    platform.queue.send(job_message(request_id, "echo", key, timeout_seconds=30))

    def outcome() -> Any:
        container.check_alive()
        return read_outcome(objects, SERVICE, request_id)

    done = poll("the async job's outcome object", outcome, 30.0)
    assert done.status == "succeeded", done
    assert done.result_key is not None
    assert json.loads(objects.get(done.result_key))["text"] == "LATER!"
    stored = platform.s3.head_object(Bucket=platform.bucket, Key=done.result_key)
    assert (stored["ServerSideEncryption"], stored["SSEKMSKeyId"]) == (
        "aws:kms",
        platform.kms_key_arn,
    )
    assert done.version == 1
    assert poll("the queue to be empty", lambda: platform.queue.depth().total == 0 or None)


# -- the runtime image ------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuations joined, comments out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_the_image_runs_the_bootstrap() -> None:
    cmds = [args for word, args in final_stage() if word == "CMD"]
    assert len(cmds) == 1
    assert json.loads(cmds[0]) == ["python", "-m", MODULE]
    assert importlib.util.find_spec(MODULE) is not None
    assert 'if __name__ == "__main__":' in (ROOT / "lambdas/aws/container.py").read_text()


def test_the_image_runs_unprivileged_and_writes_only_tmp() -> None:
    final = final_stage()
    users = [args for word, args in final if word == "USER"]
    assert users == ["65532:65532"]  # the GPU Deployment's runAsUser too
    env = " ".join(args for word, args in final if word == "ENV")
    assert "HOME=/tmp" in env
    assert [args for word, args in final if word == "WORKDIR"] == ["/tmp"]
    assert ContainerSettings.model_fields["code_dir"].default == Path("/tmp/flowhost/code")


def test_the_image_is_built_from_the_lock_file() -> None:
    steps = dockerfile()
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in steps if w == "ARG" and "=" in a}
    bases = [a.split()[0] for w, a in steps if w == "FROM"]
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*(@sha256:[0-9a-f]{64})?", image), image
    syncs = [shlex.split(a) for w, a in steps if w == "RUN" and "uv sync" in a]
    assert syncs
    for sync in syncs:
        assert {"--locked", "--no-dev"} <= set(sync)
        assert not {"--extra", "--all-extras", "--group", "--all-groups"} & set(sync)
    uv_pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"] if d.startswith("uv=="))  # fmt: skip
    assert any(w == "RUN" and uv_pin in a for w, a in steps), "the image's uv is the project's"


def test_the_image_copies_every_package_folder() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    needed = {"pyproject.toml", "uv.lock", "README.md", *setuptools["package-dir"].values()}
    copied = {
        source.rstrip("/")
        for word, args in dockerfile()
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    assert all((ROOT / source).exists() for source in copied)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :]  # everything out, then what the image needs
    for source in copied:
        assert f"!{source}" in ignored, f".dockerignore keeps {source} out of the context"


# -- the task role covers every call the container makes -----------------------------------

# botocore operation -> the IAM action it needs (reads of a key need s3:GetObject).
S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
}


def role_allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement names ``action`` and a resource pattern matching
    ``resource`` (conditions, which only narrow KMS use, are not evaluated)."""
    for statement in document["Statement"]:
        actions, resources = statement["Action"], statement["Resource"]
        actions = actions if isinstance(actions, list) else [actions]
        resources = resources if isinstance(resources, list) else [resources]
        if (
            statement["Effect"] == "Allow"
            and action in actions
            and any(fnmatch.fnmatchcase(resource, pattern) for pattern in resources)
        ):
            return True
    return False


def test_the_task_role_allows_every_call_the_container_makes(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, package: Package,
    tmp_path: Path, aws_client: Callable[[str], Any],
) -> None:  # fmt: skip
    """The container's AWS calls (fetch the package; claim, heartbeat, succeed, lose a race,
    retry, fail and hand back jobs) against moto, each checked against the task role a
    ServiceSpec gives its service: moto does not enforce IAM, so this is where a missing
    grant shows (the tiny service's names stand in for this test's)."""
    uri = platform.upload(package)
    settings = ContainerSettings.from_env(
        container_env(base_env, moto_endpoint, platform, uri, package.digest, tmp_path,
                      FLOWHOST_ASYNC_VISIBILITY="3", FLOWHOST_ASYNC_RETRY_BACKOFF="0")
    )  # fmt: skip
    calls: list[tuple[str, str, dict[str, Any]]] = []
    s3, sqs = aws_client("s3"), aws_client("sqs")  # the container's own clients, recorded
    for client in (s3, sqs):
        client.meta.events.register(
            "before-parameter-build",
            lambda model, params, **_: calls.append(
                (model.service_model.service_name, model.name, params)
            ),
        )
    fetch_package(s3, uri, package.digest, settings.code_dir)
    from flowhost.lambdas.aws.container import queue_jobs

    jobs = queue_jobs(settings, s3, sqs)
    control = S3ObjectStore(platform.s3, platform.bucket)  # the control plane's side
    ids = ["req_" + uuid.uuid4().hex for _ in range(3)]
    for request_id in ids:
        control.put(payload_key(SERVICE, request_id), b'{"text": "x"}')
    platform.queue.send(job_message(ids[0], "echo", payload_key(SERVICE, ids[0])))
    platform.queue.send(job_message(ids[0], "echo", payload_key(SERVICE, ids[0])))  # a duplicate
    [first] = poll("the first delivery", lambda: jobs.receive(1, 0) or None, 10)
    [second] = poll("the duplicate", lambda: jobs.receive(1, 0) or None, 10)
    assert jobs.heartbeat(first)
    assert jobs.succeed(first, b'{"text": "X!"}')
    assert not jobs.succeed(second, b'{"text": "X!"}')  # lost: deletes its own result again
    for request_id in ids[1:]:
        platform.queue.send(job_message(request_id, "echo", payload_key(SERVICE, request_id)))
    failing = poll("two more deliveries", lambda: jobs.receive(2, 0) or None, 10)
    jobs.fail(failing[0], "endpoint_error", "boom", retry=True)  # back to the queue
    jobs.fail(failing[-1], "invalid_request", "bad", retry=False)  # failed for good
    if len(failing) > 1:
        jobs.release(failing[0])
    assert {op for _, op, _ in calls} >= {
        "GetObject", "HeadObject", "PutObject", "DeleteObject", "ReceiveMessage",
        "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes",
    }  # fmt: skip

    document = json.loads(service_spec_run().named("tiny-task-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    tiny_bucket = by_sid["OwnAsyncObjects"]["Resource"].split("/", 1)[0]  # arn:aws:s3:::<b>
    tiny_package = by_sid["OwnCodePackage"]["Resource"]
    tiny_queue = by_sid["OwnQueue"]["Resource"]
    denied: list[str] = []
    for service, op, params in calls:
        if service == "s3":
            assert op in S3_ACTIONS, f"a call this test does not map yet: {op} {params}"
            key = params["Key"]
            if key == package_key(package.digest):
                resource = tiny_package
            else:
                resource = f"{tiny_bucket}/{key.replace(f'async/{SERVICE}/', 'async/tiny/', 1)}"
            action = S3_ACTIONS[op]
        else:
            assert params["QueueUrl"] == platform.queue.url, params  # never another queue
            resource, action = tiny_queue, f"sqs:{op}"
        if not role_allows(document, action, resource):
            denied.append(f"{op} -> {action} on {resource}")
    assert denied == [], "the task role does not allow:\n" + "\n".join(denied)

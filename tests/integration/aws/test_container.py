"""The serving container's bootstrap (``python -m flowhost.lambdas.aws.container``): the
environment ServiceSpec really sets, ``fetch_package`` on moto's S3, and the process end
to end (package from S3, HTTP, metrics, EMF on stdout, traces, an async job through SQS
and S3, SIGTERM). The image: test_container_image.py; the role: test_container_role.py."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.lambdas.aws.container import PackageError, fetch_package
from flowhost.lambdas.aws.container_settings import CONTRACT, KNOBS, ContainerSettings
from flowhost.lambdas.jobs import job_message, payload_key
from flowhost.lambdas.ledger import read_outcome
from flowhost.lambdas.s3objects import S3ObjectStore
from flowhost.services.packaging import package_key
from tests.integration.aws.container_support import (
    HELPER_FILE,
    SERVICE,
    START_TIMEOUT,
    Container,
    Package,
    Platform,
    container_env,
    container_starter,
    finished,
    fresh,
    service_spec_environments,
)
from tests.integration.otlp import OtlpReceiver
from tests.integration.support import poll


def test_the_bootstrap_reads_exactly_what_service_spec_sets() -> None:
    envs = service_spec_environments()
    read = set(CONTRACT)
    pinned = {"FLOWHOST_RUN", "FLOWHOST_ARTIFACT_FLOW"}
    # The platform's Metaflow settings: set when the stack has them (flowhost:metaflow).
    optional = pinned | {"FLOWHOST_METAFLOW_NAMESPACE", "FLOWHOST_METAFLOW_AUTH_SECRET_ARN"}
    optional |= {"FLOWHOST_ENVIRONMENT_DIGEST"}  # set for services that declare one
    for name, env in envs.items():
        ours = {k for k in env if k.startswith(("FLOWHOST_", "AWS_"))}
        assert ours <= read, f"{name}: set but never read: {sorted(ours - read)}"
        assert read - optional <= ours, f"{name}: read but never set: {sorted(read - ours)}"
        assert not ours & set(KNOBS), "the knobs have defaults; ServiceSpec leaves them"
    assert pinned <= set(envs["scored"])  # a pinned binding sets both

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


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Container]]:
    yield from container_starter(tmp_path)


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


def test_the_container_answers_the_paths_the_load_balancer_forwards(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, package: Package,
    tmp_path: Path, start: Callable[[dict[str, str]], Container],
) -> None:  # fmt: skip
    """The ALB's rules (path_patterns) forward /S/..., /S@alias/... and /S@vN/... unchanged."""
    uri = platform.upload(package)
    env = container_env(
        base_env, moto_endpoint, platform, uri, package.digest, tmp_path, FLOWHOST_ASYNC="off"
    )
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
        for prefix in ("", f"/{SERVICE}", f"/{SERVICE}@v1", f"/{SERVICE}@production"):
            answer = client.post(f"{prefix}/echo", json={"text": "hi"})
            assert answer.status_code == 200, (prefix, answer.text)
            assert answer.json()["text"] == "HI!"
            assert answer.headers["x-flowhost-service"] == SERVICE

        for path in ("/other/echo", "/other@v1/echo", f"/{SERVICE}x/echo"):
            wrong = client.post(path, json={"text": "hi"}, headers={"x-request-id": "r-1"})
            assert wrong.status_code == 404, (path, wrong.text)
            error = wrong.json()["error"]
            assert (error["code"], error["request_id"]) == ("not_found", "r-1")
            assert f"this instance serves {SERVICE!r}" in error["message"]
        missing = client.post(f"/{SERVICE}@v1/nope", json={})
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")

        # Swagger under the prefix: the page, its document and its static files.
        page = client.get(f"/{SERVICE}@v1/docs")
        assert page.status_code == 200
        assert f"/{SERVICE}@v1/openapi.json" in page.text
        assert f"/{SERVICE}@v1/static-offline-docs/swagger-ui-bundle.js" in page.text
        document = client.get(f"/{SERVICE}@v1/openapi.json").json()
        assert document["servers"][0]["url"] == f"/{SERVICE}@v1"  # "try it out" goes via the ALB
        assert "/echo" in document["paths"]
        css = client.get(f"/{SERVICE}@v1/static-offline-docs/swagger-ui.css")
        assert css.status_code == 200, css.text
        assert "servers" not in client.get("/openapi.json").json()
        assert client.get("/healthz").status_code == 200

    assert container.stop() == 0, container.output()

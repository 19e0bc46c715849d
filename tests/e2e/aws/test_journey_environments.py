"""Environments on AWS, composed: a service importing a package that is not in the
runtime image deploys through the edge, its environment built by the platform stack's
build task (RunTask on the cluster, emulated as a process with the task's environment,
its index credentials from Secrets Manager) into the platform bucket, and fetched by the
real container bootstrap before the class loads; the same digest is built once for two
deploys; an archive changed in S3 is refused by its hash; a lock that cannot be built
for the task's platform fails the deploy naming the package, production untouched."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.e2e.aws.apigw import ApiGateway
from tests.e2e.aws.lambdas import LambdaEmulator
from tests.e2e.aws.stack import StackBridge, StackRecord
from tests.e2e.aws.test_journey import (
    Cli,
    cli,  # noqa: F401  # pyright: ignore[reportUnusedImport]
    production,
    signed,  # noqa: F401  # pyright: ignore[reportUnusedImport]
    tails,
    user_stack,
)
from tests.integration.support import ROOT
from tests.support.pyindex import GREETING, NATIVE, PackageIndex

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GREETING_SERVICE = ROOT / "tests" / "e2e" / "services" / "greeting_env" / "greeting.py"
NATIVE_SERVICE = ROOT / "tests" / "e2e" / "services" / "native_env" / "native.py"
BUILD = "flowhost.lambdas.environments.job"


def builds(containers: Any) -> list[Any]:
    return [t for t in containers.finished_tasks if BUILD in " ".join(t.command)]


def test_environments_are_built_by_the_platform_and_fetched_by_tasks(
    bridge: StackBridge,
    platform: StackRecord,
    edge: ApiGateway,
    balancer: Any,
    containers: Any,
    lambdas: LambdaEmulator,
    cli: Cli,  # noqa: F811
    signed: httpx.Client,  # noqa: F811
    package_index: PackageIndex,
) -> None:
    user_stack(bridge, platform, GREETING_SERVICE)
    user_stack(bridge, platform, NATIVE_SERVICE)

    # -- the first deploy builds the environment on the cluster and serves from it
    first = cli("deploy", str(GREETING_SERVICE), "--promote")
    said = first.stdout + first.stderr
    assert first.returncode == 0, said + tails(lambdas, containers)
    assert "build | locking 1 requirement" in said, said
    assert f"+ {GREETING}==1.0" in said, said
    assert "on x86_64-manylinux_2_28" in said, said
    answer = signed.post("/greeting/hello", json={"name": "aws"})
    assert answer.status_code == 200, answer.text + tails(lambdas, containers)
    assert answer.json()["greeting"] == "hello aws"
    assert "/envs/sha256-" in answer.json()["from"]  # imported from the fetched environment
    ran = builds(containers)
    assert [t.exit_code for t in ran] == [0], ran
    assert package_index.password is not None
    assert package_index.password not in said
    assert package_index.password not in (ran[0].log.read_text() if ran[0].log else "")

    # -- the same requirements as a named environment, built ahead (a GPU stack's digest):
    # the same digest, already built, nothing run again
    requirements = str(GREETING_SERVICE.parent / "requirements.txt")
    registered = cli("env", "register", "greetings", "--from", requirements)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    ahead = cli("env", "build", "greetings@1", "--json")
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr + tails(lambdas, containers)
    built = json.loads(ahead.stdout)
    assert built["state"] == "built"
    v1 = signed.get("/api/services/greeting/versions/1").json()
    assert built["digest"] == v1["environment_digest"]

    # -- the same requirements again: no second build, the archive is reused
    s3 = bridge.client("s3")
    bucket = platform.outputs["bucketName"]
    objects = s3.list_objects_v2(Bucket=bucket, Prefix="environments/")["Contents"]
    manifest_keys = [o["Key"] for o in objects if o["Key"].endswith("/manifest.json")]
    assert len(manifest_keys) == 1, manifest_keys
    second = cli("deploy", str(GREETING_SERVICE), "--promote")
    assert second.returncode == 0, second.stdout + second.stderr + tails(lambdas, containers)
    assert "was built earlier" in second.stdout + second.stderr
    assert len(builds(containers)) == 1
    assert production(signed, "greeting") == 2

    # -- an archive changed in the bucket is refused by its hash; the deploy fails
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_keys[0])["Body"].read())
    archive = bytearray(s3.get_object(Bucket=bucket, Key=manifest["archive"])["Body"].read())
    archive[len(archive) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=manifest["archive"], Body=bytes(archive))
    tampered = cli("deploy", str(GREETING_SERVICE), "--promote")
    assert tampered.returncode != 0, tampered.stdout
    refused = [str(t) for t in containers.stopped if "does not match its manifest" in str(t)]
    assert refused, [str(t) for t in containers.stopped][-3:]
    assert production(signed, "greeting") == 2
    still = signed.post("/greeting/hello", json={"name": "still"})
    assert still.status_code == 200, still.text

    # -- a requirement with no Linux wheel: the build fails, naming it; nothing promoted
    native = cli("deploy", str(NATIVE_SERVICE), "--promote")
    said = native.stdout + native.stderr
    assert native.returncode != 0, said
    assert "could not be built" in said, said
    assert NATIVE in said, said
    assert [t.exit_code for t in builds(containers)] == [0, 1]
    gone = signed.get("/api/services/native")
    assert gone.json()["aliases"].get("production") is None, gone.text

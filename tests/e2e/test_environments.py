"""Environments through ``flowhost up``: a service importing a package that is not in the
runtime deploys from a private index and answers; its environment is built once however
many deploys ask; a lock that cannot be built fails the deploy naming the package, and
production stays as it was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowhost.cli.output import schema_of
from flowhost.client_errors import DeployError
from flowhost.errors import FlowhostError
from tests.e2e.harness import SERVICES, Platform, PlatformFactory
from tests.integration.support import FLOWHOST, poll
from tests.support.pyindex import (
    GREETING,
    NATIVE,
    PackageIndex,
    index_wheels,  # noqa: F401  # pyright: ignore[reportUnusedImport]
    package_index,  # noqa: F401  # pyright: ignore[reportUnusedImport]
)

GREETING_SERVICE = SERVICES / "greeting_env" / "greeting.py"
NATIVE_SERVICE = SERVICES / "native_env" / "native.py"


@pytest.fixture
def env_platform(launch: PlatformFactory, package_index: PackageIndex) -> Platform:  # noqa: F811
    return launch(
        "--package-index", package_index.url,
        env={"FLOWHOST_PACKAGE_INDEX_CREDENTIALS": package_index.credentials_json},
    )  # fmt: skip


def ready(platform: Platform, service: str, number: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        version = platform.client.version(service, number)
        return None if version["status"] == "deploying" else version

    version = poll(f"{service} v{number} deployed", settled, timeout=240)
    assert version["status"] == "ready", version
    return version


def progress(platform: Platform, service: str, number: int) -> list[str]:
    lines: list[str] = platform.client.version(service, number)["progress"]
    return lines


def test_a_package_outside_the_runtime_is_built_once_and_served(
    env_platform: Platform,
    package_index: PackageIndex,  # noqa: F811
) -> None:
    # two deploys of one environment, the second recorded while the first one's build runs
    started = [env_platform.deploy(GREETING_SERVICE, wait=False) for _ in range(2)]
    results = [ready(env_platform, "greeting", version["number"]) for version in started]
    assert sorted(r["number"] for r in results) == [1, 2]
    assert results[0]["environment_digest"] == results[1]["environment_digest"]
    digest = results[0]["environment_digest"]
    logs = list((env_platform.home / "logs" / "environments").glob("*.log"))
    assert [log.name for log in logs] == [f"{digest}.log"]
    assert logs[0].read_text().count("locking 1 requirement") == 1  # one build, not two
    lines = progress(env_platform, "greeting", 1) + progress(env_platform, "greeting", 2)
    assert any(line.startswith("build | locking 1 requirement") for line in lines), lines
    assert any(f"+ {GREETING}==1.0" in line for line in lines), lines
    env_platform.client.promote("greeting", 2)
    answer = env_platform.client.invoke("greeting", "hello", {"name": "env"})
    assert answer["greeting"] == "hello env"
    assert str(env_platform.home / "envs" / digest) in answer["from"]
    asked = len(package_index.requests)
    third = env_platform.deploy(GREETING_SERVICE)  # built earlier: no build, no index
    assert third["environment_digest"] == digest
    assert any("was built earlier" in line for line in progress(env_platform, "greeting", 3))
    assert len(package_index.requests) == asked
    assert package_index.password is not None
    assert package_index.password not in env_platform.log()


def test_a_lock_that_cannot_be_built_fails_the_deploy_naming_the_package(
    env_platform: Platform,
) -> None:
    env_platform.deploy(GREETING_SERVICE, promote=True)
    with pytest.raises(
        DeployError, match=rf"{NATIVE}.*could not be built|could not be built.*{NATIVE}"
    ):
        env_platform.deploy(NATIVE_SERVICE, promote=True)
    version = env_platform.client.version("native", 1)
    assert version["status"] == "failed"
    assert NATIVE in version["error"]
    answer = env_platform.client.invoke("greeting", "hello", {"name": "still"})
    assert answer["greeting"] == "hello still"  # production untouched


def test_the_package_index_url_refuses_credentials(tmp_path: Path) -> None:
    done = subprocess.run(
        [FLOWHOST, "up", "--home", str(tmp_path), "--package-index",
         "https://u:secret@pypi.example/simple/"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "FLOWHOST_PACKAGE_INDEX_CREDENTIALS" in done.stderr
    assert "secret" not in done.stderr + done.stdout


NAMED = SERVICES / "named_env" / "greeter.py"
UNREGISTERED = SERVICES / "named_env" / "unregistered.py"


def test_a_named_environment_is_pinned_by_the_versions_that_use_it(
    env_platform: Platform,
) -> None:
    client = env_platform.client
    first = client.register_environment("greetings", f"{GREETING}==1.0\n", "requirements.txt")
    assert first["revision"] == 1
    v1 = env_platform.deploy(NAMED, promote=True)
    assert any("from environment greetings@1" in line for line in v1["progress"]), v1
    assert client.invoke("greeter", "hello", {"name": "one"})["greeting"] == "hello one"

    second = client.register_environment("greetings", f"{GREETING}>=1.0\n", "pyproject.toml")
    assert second["revision"] == 2
    v2 = env_platform.deploy(NAMED)
    assert any("from environment greetings@2" in line for line in v2["progress"]), v2
    assert v2["environment_digest"] != v1["environment_digest"]
    # the name moved on; the version that used revision 1 did not
    assert client.version("greeter", 1)["environment_digest"] == v1["environment_digest"]
    assert client.invoke("greeter", "hello", {"name": "still"})["greeting"] == "hello still"

    with pytest.raises(FlowhostError, match=r"nobody-registered-this.*flowhost env register"):
        env_platform.deploy(UNREGISTERED)


def test_a_named_environment_is_built_ahead_and_its_digest_printed(
    env_platform: Platform,
) -> None:
    env_platform.client.register_environment("gpu-greetings", f"{GREETING}==1.0\n", "test")
    path = "/api/environments/gpu-greetings/revisions/1/build"
    unbuilt = env_platform.http.get(path)
    assert unbuilt.status_code == 404
    assert "flowhost env build gpu-greetings@1" in unbuilt.json()["error"]["message"]
    cli = [str(FLOWHOST), "env", "build", "gpu-greetings", "--url", env_platform.url]
    built = subprocess.run(cli, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "build | locking 1 requirement" in built.stdout
    last = built.stdout.strip().splitlines()[-1]
    assert last.startswith("gpu-greetings@1: sha256-")
    again = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=60, check=True)
    doc = json.loads(again.stdout)
    jsonschema.validate(doc, schema_of("env-build"))
    assert doc["state"] == "built"
    assert doc["digest"] in last
    assert env_platform.http.get(path).json()["digest"] == doc["digest"]

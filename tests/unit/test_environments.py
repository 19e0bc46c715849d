"""Environments: requests and digests, the build job against a private index, the
fetch's checks, and one build per digest however many deploys wait on it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowhost.errors import DeployError, FlowhostError
from flowhost.lambdas.environments.builds import EnvironmentBuilds, platform_digest
from flowhost.lambdas.environments.fetch import EnvironmentUnavailable, fetch_environment
from flowhost.lambdas.environments.install import split_lock
from flowhost.lambdas.environments.job import main as job_main
from flowhost.lambdas.environments.layout import (
    BuildStatus,
    EnvironmentManifest,
    build_key,
    manifest_key,
    request_key,
)
from flowhost.lambdas.environments.request import (
    EnvironmentRequest,
    TargetPlatform,
    runtime_pins,
)
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.services.config import Environment
from tests.support.pyindex import (
    GREETING,
    NATIVE,
    PackageIndex,
    index_wheels,  # noqa: F401  # pyright: ignore[reportUnusedImport]
    package_index,  # noqa: F401  # pyright: ignore[reportUnusedImport]
)

LINUX = TargetPlatform(python="3.11", platform="x86_64-manylinux_2_28")


def request(requirements: str, index: PackageIndex | None = None) -> EnvironmentRequest:
    target = LINUX.model_copy(update={"index_url": index.url if index else None})
    return EnvironmentRequest(
        requirements=requirements, target=target, runtime=runtime_pins(), source="test"
    )


# -- requests ------------------------------------------------------------------------------


def test_a_requirements_file_is_checked_by_the_registrys_rule(
    builds: tuple[EnvironmentBuilds, Runner, LocalObjectStore], tmp_path: Path
) -> None:
    envs, _, _ = builds
    (tmp_path / "requirements.txt").write_text("# models\nflowhost-greeting==1.0  # pin\n")
    req = envs.request_for(Environment(requirements="requirements.txt"), tmp_path, "svc")
    assert req.requirements == "flowhost-greeting==1.0"
    (tmp_path / "requirements.txt").write_text("numpy\n--index-url https://x\n")
    with pytest.raises(FlowhostError, match=r"of svc line 2: '--index-url https://x' .*stack"):
        envs.request_for(Environment(requirements="requirements.txt"), tmp_path, "svc")


def test_the_digest_names_what_is_built_not_where_it_came_from() -> None:
    a = request("flowhost-greeting==1.0\n")
    assert a.digest == request("flowhost-greeting==1.0\n").model_copy(update={"source": "x"}).digest
    assert a.digest != request("flowhost-greeting==1.1\n").digest
    other = a.model_copy(
        update={"target": LINUX.model_copy(update={"platform": "aarch64-manylinux_2_28"})}
    )
    assert a.digest != other.digest
    assert a.digest.startswith("sha256-")
    assert len(a.digest) == 71


def test_runtime_pins_are_the_runtimes_closure_without_the_platform() -> None:
    pins = dict(line.split("==") for line in runtime_pins().splitlines())
    assert {"pydantic", "fastapi", "uvicorn", "uvloop", "boto3"} <= pins.keys()
    assert "flowhost" not in pins
    assert "pytest" not in pins
    assert "pulumi" not in pins


def test_a_hashed_lock_keeps_each_entrys_hashes() -> None:
    lock = "flowhost-greeting==1.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
    install, provided = split_lock(lock, runtime_pins())
    assert list(install) == ["flowhost-greeting==1.0 --hash=sha256:aa --hash=sha256:bb"]
    assert next(iter(install.values())).hashes == ["sha256:aa", "sha256:bb"]
    assert provided == []


def test_the_lock_is_split_into_installs_and_what_the_runtime_has() -> None:
    install, provided = split_lock("flowhost-greeting==1.0\npydantic==0.1\n", runtime_pins())
    assert [p.name for p in install.values()] == ["flowhost-greeting", "pydantic"]
    pydantic = next(line for line in runtime_pins().splitlines() if line.startswith("pydantic=="))
    install, provided = split_lock(f"flowhost-greeting==1.0\n{pydantic}\n", runtime_pins())
    assert list(install) == ["flowhost-greeting==1.0"]
    assert provided == [pydantic]


def test_platform_digest_is_stable() -> None:
    assert platform_digest() == platform_digest()


# -- the build job ---------------------------------------------------------------------------


def build(
    tmp_path: Path, req: EnvironmentRequest, index: PackageIndex
) -> tuple[int, LocalObjectStore]:
    objects = LocalObjectStore(tmp_path / "objects")
    objects.put(request_key(req.digest), req.model_dump_json().encode())
    env = {**os.environ, "FLOWHOST_PACKAGE_INDEX_CREDENTIALS": index.credentials_json}
    code = job_main(["--digest", req.digest, "--objects", str(tmp_path / "objects")], env)
    return code, objects


def test_a_build_from_a_private_index_fetches_and_imports(
    tmp_path: Path,
    package_index: PackageIndex,  # noqa: F811
) -> None:
    req = request(f"{GREETING}==1.0\n", package_index)
    code, objects = build(tmp_path, req, package_index)
    assert code == 0
    manifest = EnvironmentManifest.model_validate_json(objects.get(manifest_key(req.digest)))
    assert [(p.name, p.version) for p in manifest.packages] == [(GREETING, "1.0")]
    [pin] = manifest.packages
    assert pin.hashes
    assert all(h.startswith("sha256:") for h in pin.hashes)  # the install checked them
    assert f"{GREETING}==1.0" in manifest.lock
    assert manifest.platform == LINUX.platform
    status = BuildStatus.model_validate_json(objects.get(build_key(req.digest)))
    assert status.state == "built"
    assert any("locking 1 requirement" in x for x in status.lines)
    assert package_index.password is not None
    for path in (tmp_path / "objects").rglob("*.json"):  # no secret is ever written
        assert package_index.password not in path.read_text()
    fetched = fetch_environment(objects, req.digest, tmp_path / "cache")
    assert not fetched.cached
    assert fetched.archive_bytes == manifest.archive_bytes
    assert fetch_environment(objects, req.digest, tmp_path / "cache").cached
    # the bytecode compiled by the build is valid where it is unpacked (its source's mtime)
    source = fetched.path / "flowhost_greeting" / "__init__.py"
    [compiled] = (fetched.path / "flowhost_greeting" / "__pycache__").glob("__init__.*.pyc")
    header = compiled.read_bytes()[8:12]
    assert int.from_bytes(header, "little") == int(source.stat().st_mtime)
    probe = (
        "import sys; from pathlib import Path; "
        "from flowhost.lambdas.environments.fetch import activate; "
        f"activate(Path({str(fetched.path)!r})); "
        "import flowhost_greeting; print(flowhost_greeting.greet('env'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hello env"
    assert job_main(["--digest", req.digest, "--objects", str(tmp_path / "objects")]) == 0  # again


def test_a_lock_that_cannot_be_made_for_linux_fails_naming_the_package(
    tmp_path: Path,
    package_index: PackageIndex,  # noqa: F811
) -> None:
    req = request(f"{NATIVE}==1.0\n", package_index)
    code, objects = build(tmp_path, req, package_index)
    assert code == 1
    status = BuildStatus.model_validate_json(objects.get(build_key(req.digest)))
    assert status.state == "failed"
    assert status.error is not None
    assert NATIVE in status.error
    assert "x86_64-manylinux_2_28" in status.error
    assert not objects.exists(manifest_key(req.digest))
    assert str(package_index.password) not in status.model_dump_json()


def test_a_changed_archive_is_refused_by_its_hash(
    tmp_path: Path,
    package_index: PackageIndex,  # noqa: F811
) -> None:
    req = request(f"{GREETING}==1.0\n", package_index)
    code, objects = build(tmp_path, req, package_index)
    assert code == 0
    manifest = EnvironmentManifest.model_validate_json(objects.get(manifest_key(req.digest)))
    data = bytearray(objects.get(manifest.archive))
    data[len(data) // 2] ^= 0xFF
    objects.put(manifest.archive, bytes(data))
    with pytest.raises(EnvironmentUnavailable, match=r"does not match its manifest.*rebuild"):
        fetch_environment(objects, req.digest, tmp_path / "cache")
    assert not (tmp_path / "cache" / req.digest).exists()


def test_an_environment_never_built_is_named(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    with pytest.raises(EnvironmentUnavailable, match=r"not built .*Deploy the version again"):
        fetch_environment(objects, "sha256-" + "0" * 64, tmp_path / "cache")


# -- one build per digest -------------------------------------------------------------------


class Runner:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.exit: dict[str, str] = {}

    def start(self, digest: str) -> str:
        self.started.append(digest)
        return f"run-{len(self.started)}"

    def stopped(self, handle: str) -> str | None:
        return self.exit.get(handle)


@pytest.fixture
def builds(tmp_path: Path) -> tuple[EnvironmentBuilds, Runner, LocalObjectStore]:
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    objects = LocalObjectStore(tmp_path / "objects")
    runner = Runner()
    return EnvironmentBuilds(store.engine, objects, runner, LINUX), runner, objects


def test_deploys_of_one_digest_wait_on_one_build(
    tmp_path: Path, builds: tuple[EnvironmentBuilds, Runner, LocalObjectStore]
) -> None:
    envs, runner, objects = builds
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "requirements.txt").write_text(f"{GREETING}==1.0\n")
    req = envs.request_for(Environment(requirements="requirements.txt"), tmp_path / "code", "svc")
    assert objects.exists(request_key(req.digest))
    assert req.source == "requirements.txt of svc"
    since = datetime.now(UTC) - timedelta(seconds=1)
    assert envs.ensure(req.digest, since=since).state == "building"
    assert envs.ensure(req.digest, since=since).state == "building"  # a second deploy waits
    assert runner.started == [req.digest]
    runner.exit["run-1"] = "exit code 137"  # killed before it wrote anything
    failed = envs.ensure(req.digest, since=since)
    assert failed.state == "failed"
    assert "stopped without an environment (exit code 137)" in (failed.error or "")
    assert envs.ensure(req.digest, since=since).state == "failed"  # the same deploy: no retry
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert envs.ensure(req.digest, since=later).state == "building"  # a later deploy retries
    assert runner.started == [req.digest, req.digest]
    objects.put(manifest_key(req.digest), b"{}")  # written by the build: see the next test


def test_a_build_forgotten_unfinished_is_started_again(
    builds: tuple[EnvironmentBuilds, Runner, LocalObjectStore],
) -> None:
    envs, runner, _ = builds
    digest = request(f"{GREETING}==1.0\n").digest
    since = datetime.now(UTC)
    assert envs.ensure(digest, since=since).state == "building"
    envs.builds.forget(digest)  # the local platform stopped it with itself
    assert envs.ensure(digest, since=since).state == "building"
    assert runner.started == [digest, digest]


class RefusingRunner(Runner):
    def start(self, digest: str) -> str:
        raise DeployError("ECS RunTask of flowhost-dev-environment-build failed (no capacity)")


def test_a_build_that_cannot_start_fails_at_once(
    builds: tuple[EnvironmentBuilds, Runner, LocalObjectStore],
) -> None:
    envs, _, _ = builds
    envs.runner = RefusingRunner()
    digest = request(f"{GREETING}==1.0\n").digest
    failed = envs.ensure(digest, since=datetime.now(UTC))
    assert failed.state == "failed"
    assert "no capacity" in (failed.error or "")
    assert envs.ensure(digest, since=datetime.now(UTC) - timedelta(seconds=5)).state == "failed"


def test_a_built_environment_needs_no_build(
    builds: tuple[EnvironmentBuilds, Runner, LocalObjectStore], tmp_path: Path,
    package_index: PackageIndex,  # noqa: F811
) -> None:  # fmt: skip
    envs, runner, _ = builds
    req = request(f"{GREETING}==1.0\n", package_index)
    assert build(tmp_path, req, package_index)[0] == 0  # the same object directory
    done = envs.ensure(req.digest, since=datetime.now(UTC))
    assert done.state == "built"
    assert done.manifest is not None
    assert runner.started == []


def test_named_and_missing_environments_fail_with_the_fix(
    builds: tuple[EnvironmentBuilds, Runner, LocalObjectStore], tmp_path: Path
) -> None:
    envs, _, _ = builds
    with pytest.raises(DeployError, match=r"'reqs.txt' is not in the code package"):
        envs.request_for(Environment(requirements="reqs.txt"), tmp_path, "svc")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(FlowhostError, match=r"empty.txt of svc: no requirements"):
        envs.request_for(Environment(requirements="empty.txt"), tmp_path, "svc")
    with pytest.raises(DeployError, match=r"named environments \('gpu'\) need the platform"):
        envs.request_for(Environment(name="gpu"), None, "svc")
    with pytest.raises(FlowhostError, match=r"'gpu@abc': the revision after '@' must be a number"):
        envs.request_for(Environment(name="gpu@abc"), None, "svc")

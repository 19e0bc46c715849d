"""The platform's runtime image (``RuntimeImage``).

Component tier, under the recording mock: built by default (the ECR repository's security
settings and lifecycle, the build's inputs, the ``runtimeImage`` output) and taken as it is
from ``flowhost:runtimeImage`` (no repository, no build). Unit tier: the content tag, its
inputs against the Dockerfile and .dockerignore, the config key's validation.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from flowhost.infra import PlatformConfigError, load_config
from flowhost.infra.runtime_image import (
    CONTEXT,
    KEEP_IMAGES,
    SOURCE_ROOT,
    RuntimeImage,
    RuntimeImageArgs,
    image_inputs,
    runtime_tag,
)
from flowhost.infra.tags import Tagging
from tests.infra.recording import (
    ECR_PASSWORD,
    IMAGE_DIGEST,
    REGISTRY,
    ROOT,
    PlatformRun,
    Recorded,
    run_program,
    stack_config,
)
from tests.infra.test_policy_pack import as_policy_resource, pack_config
from tests.infra.test_program import DEV, one
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import evaluate  # noqa: E402

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
IMAGE = "docker-build:index:Image"
COMPONENT = "flowhost:platform:RuntimeImage"
BUILT = (REPOSITORY, LIFECYCLE, IMAGE)
OVERRIDE = f"{REGISTRY}/ci/flowhost-runtime:0.1.0-ci.42"


@pytest.fixture(scope="module")
def overridden() -> PlatformRun:
    """The dev stack with ``flowhost:runtimeImage`` set (an image CI built)."""
    return run_program("dev", stack_config("dev") | {"flowhost:runtimeImage": OVERRIDE})


def children(run: PlatformRun) -> list[Recorded]:
    component = one(run, COMPONENT)
    return [r for r in run.resources if r.parent == component.urn]


# -- built by the platform (the stack files set no flowhost:runtimeImage) ------------------


def test_the_repository_is_private_encrypted_scanned_and_immutable(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    repo = one(stack, REPOSITORY)
    assert repo.inputs["name"] == f"flowhost-{env}-runtime"
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo.inputs["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": stack.outputs["kmsKeyArn"]}
    ]
    # destroy may delete its images only where it may delete the data (dev).
    assert repo.inputs["forceDelete"] is (env == "dev")
    assert repo.inputs["tags"]["flowhost:environment"] == env
    assert repo.inputs["tags"]["flowhost:service"] == "platform"
    assert sorted(r.type for r in children(stack)) == sorted(BUILT)


def test_the_lifecycle_policy_keeps_the_last_images(stack: PlatformRun) -> None:
    repo, lifecycle = one(stack, REPOSITORY), one(stack, LIFECYCLE)
    assert lifecycle.inputs["repository"] == repo.inputs["name"]
    (rule,) = json.loads(lifecycle.inputs["policy"])["rules"]
    assert rule["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": KEEP_IMAGES,
    }
    assert rule["action"] == {"type": "expire"}
    assert KEEP_IMAGES >= 10  # room for the images older service versions still run


def test_the_image_is_built_from_the_dockerfile_and_pushed(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    image = one(stack, IMAGE)
    assert SOURCE_ROOT == ROOT
    assert image.inputs["context"] == {"location": str(ROOT)}
    assert image.inputs["dockerfile"] == {"location": str(ROOT / "Dockerfile")}
    assert image.inputs["platforms"] == ["linux/amd64"]  # the task definitions' X86_64
    tag = f"{REGISTRY}/flowhost-{env}-runtime:{runtime_tag()}"
    assert image.inputs["tags"] == [tag]
    assert image.inputs["push"] is True
    assert image.inputs["buildOnPreview"] is False
    assert image.inputs["registries"] == [
        {"address": REGISTRY, "username": "AWS", "password": ECR_PASSWORD}
    ]
    assert "registries" in image.secret_inputs  # the registry password stays out of state
    assert one(stack, REPOSITORY).urn in image.dependencies  # pushed into that repository
    assert stack.outputs["runtimeImage"] == f"{tag}@{IMAGE_DIGEST}"


# -- flowhost:runtimeImage -------------------------------------------------------------------


def test_the_configured_image_creates_no_repository_and_no_build(
    overridden: PlatformRun, dev: PlatformRun
) -> None:
    assert overridden.outputs["runtimeImage"] == OVERRIDE
    for token in BUILT:
        assert not overridden.of_type(token), token
    assert children(overridden) == []
    expected = Counter(DEV)
    expected.subtract(dict.fromkeys(BUILT, 1))
    assert Counter(r.type for r in overridden.resources) == +expected
    assert set(overridden.outputs) == set(dev.outputs)


def test_the_configured_stack_passes_the_policy_pack(overridden: PlatformRun) -> None:
    resources = [as_policy_resource(r) for r in overridden.resources if r.custom]
    violations = evaluate(resources, pack_config("dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


@pytest.mark.parametrize(
    "image",
    [
        OVERRIDE,
        "ghcr.io/acme/flowhost-runtime:1.4",
        f"{REGISTRY}/flowhost-runtime@sha256:{'ab' * 32}",
        f"{REGISTRY}/flowhost-runtime:0.1.0@sha256:{'ab' * 32}",
        "localhost:5000/flowhost-runtime:dev-1",
    ],
)
def test_image_references_are_accepted(image: str) -> None:
    raw = stack_config("dev") | {"flowhost:runtimeImage": image}
    assert load_config(raw, "dev").runtime_image == image


@pytest.mark.parametrize(
    "image",
    [
        "flowhost-runtime",  # no tag, no digest
        f"{REGISTRY}/flowhost-runtime",
        "ghcr.io/acme/flowhost-runtime:latest",  # moves
        "ghcr.io/Acme/flowhost-runtime:1.4",  # repositories are lowercase
        "flowhost runtime:1",
        "ghcr.io/acme/flowhost-runtime:",
        "",
    ],
)
def test_a_bad_image_reference_names_the_key_the_value_and_the_fix(image: str) -> None:
    raw = stack_config("dev") | {"flowhost:runtimeImage": image}
    with pytest.raises(PlatformConfigError) as caught:
        load_config(raw, "dev")
    message = caught.value.message
    assert message.startswith("Pulumi.dev.yaml: flowhost:runtimeImage: must be an image ")
    assert f"(got {image!r})" in message
    assert "remove the key to have the platform build the image" in message
    assert message.endswith("Fix it in the stack file.")


def test_without_a_dockerfile_nothing_is_built_and_the_error_says_what_to_do(
    tmp_path: Path,
) -> None:
    args = RuntimeImageArgs("arn:aws:kms:us-east-1:123456789012:key/k", Tagging("dev", "t"))
    with pytest.raises(ValueError, match="no Dockerfile") as caught:
        RuntimeImage("flowhost-dev-runtime", replace(args, context=tmp_path))
    assert str(tmp_path / "Dockerfile") in str(caught.value)
    assert "flowhost:runtimeImage" in str(caught.value)
    with pytest.raises(ValueError, match=r"keep_images must be at least 1 \(got 0\)"):
        RuntimeImage("flowhost-dev-runtime", replace(args, keep_images=0))


# -- the content tag -------------------------------------------------------------------------


def tree(root: Path) -> Path:
    """A small source tree with everything the image is built from, and things it is not."""
    files = {
        "Dockerfile": "FROM python:3.11-slim-bookworm\n",
        ".dockerignore": "*\n!pyproject.toml\n",
        "pyproject.toml": '[project]\nname = "flowhost"\nversion = "1.2.3"\n',
        "uv.lock": "version = 1\n",
        "README.md": "# flowhost\n",
        "flowhost/__init__.py": "",
        "services/spec.py": "SPEC = 1\n",
        "lambdas/api.py": "API = 1\n",
        "infra/config.py": "CONFIG = 1\n",
        "tests/test_x.py": "def test_x(): pass\n",
        "docs/aws.md": "# AWS\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_tag_is_the_version_and_a_hash_and_the_same_for_the_same_tree(
    tmp_path: Path,
) -> None:
    first = tree(tmp_path / "a")
    tag = runtime_tag(first)
    assert re.fullmatch(r"1\.2\.3-[0-9a-f]{12}", tag), tag
    assert runtime_tag(first) == tag
    # Where the tree lives and when its files were written do not matter.
    second = tmp_path / "b"
    shutil.copytree(first, second)
    assert runtime_tag(second) == tag


@pytest.mark.parametrize(
    "path",
    ["uv.lock", "Dockerfile", ".dockerignore", "README.md", "services/spec.py", "infra/config.py"],
)
def test_the_tag_changes_when_an_input_changes(tmp_path: Path, path: str) -> None:
    root = tree(tmp_path)
    before = runtime_tag(root)
    original = (root / path).read_text()
    (root / path).write_text(original + "# changed\n")
    assert runtime_tag(root) != before
    (root / path).write_text(original)
    assert runtime_tag(root) == before


def test_the_tag_changes_with_a_new_file_and_the_version(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = runtime_tag(root)
    (root / "lambdas" / "new.py").write_text("")
    assert runtime_tag(root) != before
    (root / "pyproject.toml").write_text('[project]\nname = "flowhost"\nversion = "1.3.0"\n')
    assert runtime_tag(root).startswith("1.3.0-")


def test_the_tag_ignores_what_the_image_does_not_contain(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = runtime_tag(root)
    (root / "tests" / "test_x.py").write_text("def test_y(): pass\n")
    (root / "docs" / "aws.md").write_text("# changed\n")
    (root / "infra" / "__pycache__").mkdir()
    (root / "infra" / "__pycache__" / "config.cpython-311.pyc").write_bytes(b"\0")
    (root / "services" / "stale.pyc").write_bytes(b"\0")
    assert runtime_tag(root) == before


def test_the_tag_inputs_are_what_the_dockerfile_reads() -> None:
    """CONTEXT is .dockerignore's allow-list, and every COPY source of the build is in it:
    a file the build reads but the tag ignores would rebuild under an existing tag."""
    allowed = [
        line[1:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert sorted(allowed) == sorted(CONTEXT)
    copied: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied.update(w.rstrip("/") for w in words[1:-1])
    assert copied
    assert copied <= set(CONTEXT), copied
    relative = {p.relative_to(ROOT).parts[0] for p in image_inputs(ROOT)}
    assert relative == {"Dockerfile", ".dockerignore", *CONTEXT}


def test_the_real_tree_has_a_tag_of_flowhosts_version() -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert re.fullmatch(rf"{re.escape(version[1])}-[0-9a-f]{{12}}", runtime_tag())

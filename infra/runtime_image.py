"""``RuntimeImage``: the serving runtime image every ``ServiceSpec`` runs, by default.

The platform builds the repository's ``Dockerfile`` (``python -m
flowhost.lambdas.aws.container``) for ``linux/amd64`` and pushes it to its own private ECR
repository ``flowhost-<env>-runtime``: KMS-encrypted with the platform key, scanned on push,
tags IMMUTABLE, only the last ``keep_images`` images kept. The tag is derived from the
image's inputs (:func:`runtime_tag`: flowhost's version and a hash of the Dockerfile, the
lock file and the folders the build copies), so an unchanged tree neither rebuilds nor
pushes, and a changed one gets a new tag. The stack output ``runtimeImage`` is the pushed
``<repository>:<tag>@sha256:<digest>``.

With ``image`` given (``flowhost:runtimeImage``: built elsewhere, e.g. in CI, or no Docker
where ``pulumi up`` runs) nothing is created and that reference is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from flowhost.infra.config import PlatformConfig
from flowhost.infra.tags import Tagging

__all__ = [
    "BUILD_FILES",
    "CONTEXT",
    "KEEP_IMAGES",
    "SOURCE_ROOT",
    "RuntimeImage",
    "RuntimeImageArgs",
    "image_inputs",
    "runtime_image",
    "runtime_tag",
]

# The repository root: the Dockerfile and the build context (Pulumi runs infra/ from it).
SOURCE_ROOT = Path(__file__).resolve().parents[1]
# What the build reads: the Dockerfile and .dockerignore, and the context .dockerignore
# lets in (tests/infra keep this list equal to its "!" lines).
BUILD_FILES = ("Dockerfile", ".dockerignore")
CONTEXT = ("pyproject.toml", "uv.lock", "README.md", "flowhost", "services", "lambdas", "infra")
KEEP_IMAGES = 30
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _ignored(path: Path) -> bool:
    """As .dockerignore's ``**/__pycache__`` and ``**/*.pyc``."""
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def image_inputs(root: Path) -> Iterator[Path]:
    """Every file the image is built from, in a stable order (by relative path)."""
    found: list[Path] = []
    for name in (*BUILD_FILES, *CONTEXT):
        path = root / name
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and not _ignored(p)]
        elif path.is_file():
            found.append(path)
    yield from sorted(found, key=lambda p: p.relative_to(root).as_posix())


def runtime_tag(root: Path = SOURCE_ROOT) -> str:
    """``<version>-<12 hex>``: flowhost's version (``root``'s pyproject.toml) and a sha256
    over each input's relative path and content. Same tree, same tag."""
    digest = hashlib.sha256()
    for path in image_inputs(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return f"{_TAG_UNSAFE.sub('-', str(version))}-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class RuntimeImageArgs:
    kms_key_arn: pulumi.Input[str]
    tagging: Tagging
    image: str | None = None  # flowhost:runtimeImage: use it, create nothing
    force_delete: bool = False  # let destroy delete the repository with its images
    context: Path = SOURCE_ROOT
    keep_images: int = KEEP_IMAGES


class RuntimeImage(pulumi.ComponentResource):
    """The ECR repository and the image built into it, or the configured image."""

    image: pulumi.Output[str]
    repository_url: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: RuntimeImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        dockerfile = args.context / "Dockerfile"
        if args.image is None and not dockerfile.is_file():
            raise ValueError(
                f"RuntimeImage {name!r}: no Dockerfile to build the runtime image from "
                f"(got {str(dockerfile)!r}). Run the platform program from the flowhost "
                "repository, or set flowhost:runtimeImage to an image built elsewhere."
            )
        if args.keep_images < 1:
            raise ValueError(
                f"RuntimeImage {name!r}: keep_images must be at least 1 "
                f"(got {args.keep_images}). Keep one image or more."
            )
        super().__init__("flowhost:platform:RuntimeImage", name, None, opts)
        self.repository_url = None
        if args.image is not None:
            self.image = pulumi.Output.from_input(args.image)
        else:
            self.image = self._build(name, args, dockerfile)
        self.register_outputs({"image": self.image, "repository_url": self.repository_url})

    def _build(self, name: str, args: RuntimeImageArgs, dockerfile: Path) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        repo = aws.ecr.Repository(
            f"{name}-repo",
            name=f"flowhost-{args.tagging.environment}-runtime",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
            force_delete=args.force_delete,
            tags=args.tagging.tags(f"{name}-repo"),
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repo.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the last {args.keep_images} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": args.keep_images,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                },
                sort_keys=True,
            ),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(
            registry_id=repo.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        image = docker_build.Image(
            f"{name}-image",
            context={"location": str(args.context)},
            dockerfile={"location": str(dockerfile)},
            platforms=[docker_build.Platform.LINUX_AMD64],
            tags=[pulumi.Output.concat(repo.repository_url, ":", runtime_tag(args.context))],
            push=True,
            build_on_preview=False,  # previews need no Docker; `up` builds
            registries=[
                {
                    "address": repo.repository_url.apply(lambda url: url.split("/", 1)[0]),
                    "username": token.user_name,
                    "password": pulumi.Output.secret(token.password),
                }
            ],
            opts=child,
        )
        self.repository_url = repo.repository_url
        return image.ref


def runtime_image(
    name: str,
    cfg: PlatformConfig,
    kms_key_arn: pulumi.Input[str],
    tagging: Tagging,
    parent: pulumi.Resource,
) -> pulumi.Output[str]:
    """The platform's ``RuntimeImage`` from its config: ``flowhost:runtimeImage`` when set;
    else built, with a repository that ``destroy`` may empty where the data may go too."""
    args = RuntimeImageArgs(
        kms_key_arn=kms_key_arn,
        tagging=tagging,
        image=cfg.runtime_image,
        force_delete=not cfg.db_deletion_protection,
    )
    return RuntimeImage(name, args, pulumi.ResourceOptions(parent=parent)).image

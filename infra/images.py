"""Images from inside the VPC: every image a task or pod pulls comes from private ECR.

A VPC endpoint serves the account's own ECR registry (``ecr.api``, ``ecr.dkr`` and the S3
gateway for layers), never ECR Public, so a stack without a NAT gateway could not start a
task whose ADOT collector comes from ``public.ecr.aws``. The platform adds an ECR
pull-through cache rule for ECR Public with the repository prefix ``flowhost-<env>``
(:func:`cache_prefix`; one per stack, so a dev and a prod stack can share an account and
region): ``<account>.dkr.ecr.<region>.amazonaws.com/flowhost-<env>/<repository>:<tag>`` is
fetched from ``public.ecr.aws/<repository>:<tag>`` by ECR itself on the first pull, and
served from the private registry after that. The stack
output ``collectorImage`` is the collector's private reference; ``ServiceSpec`` runs it on
ECS and EKS alike.

The first pull of a tag creates the cache repository and imports the image in the
puller's name: the ECS execution role (or the EKS node role) needs
``ecr:CreateRepository`` and ``ecr:BatchImportUpstreamImage`` on that one repository,
besides the usual pull actions (:func:`pull_statements`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.iam import Account, Statement, policy_json

__all__ = [
    "ADOT_IMAGE",
    "CACHE_FILL",
    "COLLECTOR_REPOSITORY",
    "COLLECTOR_TAG",
    "ECR_PUBLIC",
    "ECR_PULL",
    "ImageCache",
    "ImageCacheArgs",
    "cache_prefix",
    "cached_image",
    "ecr_image",
    "grant_pulls",
    "pull_statements",
]

ECR_PUBLIC = "public.ecr.aws"
COLLECTOR_REPOSITORY = "aws-observability/aws-otel-collector"
COLLECTOR_TAG = "v0.40.0"
# The collector's upstream reference (what the cache fetches; never pulled directly).
ADOT_IMAGE = f"{ECR_PUBLIC}/{COLLECTOR_REPOSITORY}:{COLLECTOR_TAG}"
ECR_PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
# What a first pull through the cache does in the puller's name.
CACHE_FILL = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$"
)


def ecr_image(image: pulumi.Input[str]) -> tuple[str, str, str] | None:
    """(account, region, repository) of a private ECR image reference, else None."""
    if not isinstance(image, str):
        return None
    match = _ECR_IMAGE.match(image)
    return (match["account"], match["region"], match["repository"]) if match else None


def cache_prefix(environment: str) -> str:
    """The stack's pull-through cache prefix (ECR allows 2 to 30 characters)."""
    return f"flowhost-{environment}"


def cached_image(
    account: Account, environment: str, repository: str, tag: str
) -> pulumi.Output[str]:
    """The private reference of ``public.ecr.aws/<repository>:<tag>`` through the cache."""
    return pulumi.Output.concat(
        account.account_id, ".dkr.ecr.", account.region, ".amazonaws.com/",
        cache_prefix(environment), "/", repository, ":", tag,
    )  # fmt: skip


def pull_statements(
    sid: str, image: str, partition: pulumi.Input[str], environment: str
) -> list[Statement]:
    """What pulling ``image`` (a resolved reference) needs: the pull actions on its own
    repository and, for a repository of the stack's pull-through cache, filling the cache.
    Empty for an image outside private ECR (nothing to grant)."""
    found = ecr_image(image)
    if found is None:
        return []
    account, region, repository = found
    arn = pulumi.Output.concat(
        "arn:", partition, f":ecr:{region}:{account}:repository/", repository
    )
    statements = [Statement(sid, ECR_PULL, [arn])]
    if repository.startswith(f"{cache_prefix(environment)}/"):
        statements.append(Statement(f"{sid}FillCache", CACHE_FILL, [arn]))
    return statements


def grant_pulls(
    name: str,
    role_id: pulumi.Input[str],
    image: pulumi.Input[str],
    partition: pulumi.Input[str],
    environment: str,
    parent: pulumi.Resource,
) -> aws.iam.RolePolicy:
    """An inline policy letting a role (e.g. the EKS nodes') pull ``image`` (and fill the
    cache with it on a first pull)."""
    document = pulumi.Output.from_input(image).apply(
        lambda ref: policy_json(pull_statements("CollectorImage", ref, partition, environment))
    )
    return aws.iam.RolePolicy(
        name, role=role_id, policy=document, opts=pulumi.ResourceOptions(parent=parent)
    )


@dataclass(frozen=True)
class ImageCacheArgs:
    account: Account
    environment: str


class ImageCache(pulumi.ComponentResource):
    """The ECR Public pull-through cache rule and the collector's private reference."""

    collector_image: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:ImageCache", name, None, opts)
        self.rule = aws.ecr.PullThroughCacheRule(
            f"{name}-ecr-public",
            ecr_repository_prefix=cache_prefix(args.environment),
            upstream_registry_url=ECR_PUBLIC,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The reference waits for the rule: a pull before it exists would fail.
        image = cached_image(args.account, args.environment, COLLECTOR_REPOSITORY, COLLECTOR_TAG)
        self.collector_image = pulumi.Output.all(image, self.rule.id).apply(lambda v: v[0])
        self.register_outputs({"collector_image": self.collector_image})

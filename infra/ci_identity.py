"""The CI identity: GitHub Actions assumes a role by OIDC, with no stored AWS keys.

Given ``flowhost:githubRepository`` (``owner/repo``) the platform stack creates (or, with
``flowhost:githubOidcProviderArn``, adopts) the account's GitHub OIDC provider
(``token.actions.githubusercontent.com``, audience ``sts.amazonaws.com``) and two roles:

- ``ci-preview``: ``pulumi preview`` of pull requests: what the program's reads need
  (region, zones, the caller, a registry login) and the Pulumi state backend
  (``flowhost:pulumiStateBackend``) if there is one. Nothing it can change in the account.
- ``ci-deploy``: ``pulumi up`` of the platform and user stacks (:mod:`flowhost.infra.ci_grants`):
  the platform's resources by name prefix or, where AWS names resources by id, in this
  account and region; service roles only with the platform's permissions boundary, which
  it may neither remove nor change; never the CI roles themselves; plus the ``deployers``
  grant on the API.

Each role's trust pins ``aud`` to ``sts.amazonaws.com`` and ``sub`` to the repository's
refs: ``repo:<owner/repo>:ref:refs/heads/<branch>`` for each of ``flowhost:githubBranches``
(default ``main``), ``repo:<owner/repo>:environment:<env>`` for each of
``flowhost:githubEnvironments``, and ``repo:<owner/repo>:pull_request`` for preview only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from flowhost.infra.ci_grants import CiScope, deploy_statements, preview_statements
from flowhost.infra.ci_state import StateBackend, state_backend
from flowhost.infra.config import PlatformConfig
from flowhost.infra.iam import Account, policy_json
from flowhost.infra.tags import Tagging

__all__ = [
    "AUDIENCE",
    "GITHUB_ISSUER",
    "CiIdentity",
    "CiIdentityArgs",
    "ci_identity",
    "ci_outputs",
    "subjects",
    "trust_policy",
]

GITHUB_ISSUER: Final = "token.actions.githubusercontent.com"
AUDIENCE: Final = "sts.amazonaws.com"


@dataclass(frozen=True)
class CiIdentityArgs:
    repository: str
    branches: Sequence[str]
    environments: Sequence[str]
    provider_arn: str | None  # adopt this provider; None = create one
    account: Account
    boundary_arn: pulumi.Input[str]
    deployers_policy_arn: pulumi.Input[str]
    readers_policy_arn: pulumi.Input[str]  # ci-preview reads the API (the contract check)
    queue_name_prefix: str
    state_backend: StateBackend | None
    tagging: Tagging


def subjects(
    repository: str, branches: Sequence[str], environments: Sequence[str], *, pull_requests: bool
) -> list[str]:
    """The ``sub`` claims a role accepts (branches default to ``main`` when none are named)."""
    refs = [
        f"repo:{repository}:ref:refs/heads/{b}"
        for b in branches or ([] if environments else ["main"])
    ]
    envs = [f"repo:{repository}:environment:{e}" for e in environments]
    return [*refs, *envs, *([f"repo:{repository}:pull_request"] if pull_requests else [])]


def trust_policy(provider_arn: str, subs: Sequence[str]) -> str:
    """Web identity from the GitHub provider, for exactly these ``sub`` values."""
    statement = {
        "Sid": "GitHubActions",
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{GITHUB_ISSUER}:aud": AUDIENCE,
                f"{GITHUB_ISSUER}:sub": list(subs),
            }
        },
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def ci_identity(
    name: str,
    cfg: PlatformConfig,
    account: Account,
    boundary_arn: pulumi.Input[str],
    deployers_policy_arn: pulumi.Input[str],
    readers_policy_arn: pulumi.Input[str],
    queue_name_prefix: str,
    tagging: Tagging,
    opts: pulumi.ResourceOptions,
) -> CiIdentity | None:
    """The stack's CI identity, or ``None`` without ``flowhost:githubRepository``."""
    if cfg.github_repository is None:
        return None
    args = CiIdentityArgs(
        repository=cfg.github_repository,
        branches=cfg.github_branches,
        environments=cfg.github_environments,
        provider_arn=cfg.github_oidc_provider_arn,
        account=account,
        boundary_arn=boundary_arn,
        deployers_policy_arn=deployers_policy_arn,
        readers_policy_arn=readers_policy_arn,
        queue_name_prefix=queue_name_prefix,
        state_backend=state_backend(cfg.pulumi_state_backend),
        tagging=tagging,
    )
    return CiIdentity(name, args, opts)


def ci_outputs(identity: CiIdentity | None) -> dict[str, pulumi.Input[object]]:
    """The stack outputs: the provider and role ARNs, empty without a CI identity."""
    if identity is None:
        return {"githubOidcProviderArn": "", "ciPreviewRoleArn": "", "ciDeployRoleArn": ""}
    return {
        "githubOidcProviderArn": identity.provider_arn,
        "ciPreviewRoleArn": identity.preview_role_arn,
        "ciDeployRoleArn": identity.deploy_role_arn,
    }


class CiIdentity(pulumi.ComponentResource):
    """The GitHub OIDC provider (created or adopted) and the ``ci-preview`` and
    ``ci-deploy`` roles (:attr:`preview_role_arn`, :attr:`deploy_role_arn`)."""

    def __init__(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:CiIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tagging.tags
        provider_arn: pulumi.Output[str]
        if args.provider_arn is not None:
            provider_arn = pulumi.Output.from_input(args.provider_arn)
        else:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-github",
                url=f"https://{GITHUB_ISSUER}",
                client_id_lists=[AUDIENCE],
                tags=tags(f"{name}-github"),
                opts=child,
            )
            provider_arn = provider.arn
        scope = CiScope(
            account=args.account,
            environment=args.tagging.environment,
            queue_name_prefix=args.queue_name_prefix,
            boundary_arn=args.boundary_arn,
            state_backend=args.state_backend,
        )
        roles: dict[str, aws.iam.Role] = {}
        for role, pull_requests, statements in (
            ("preview", True, preview_statements(scope)),
            ("deploy", False, deploy_statements(scope)),
        ):
            subs = subjects(
                args.repository, args.branches, args.environments, pull_requests=pull_requests
            )
            roles[role] = aws.iam.Role(
                f"{name}-{role}",
                description=f"flowhost {args.tagging.environment}: GitHub Actions, ci-{role}",
                assume_role_policy=provider_arn.apply(lambda arn, s=subs: trust_policy(arn, s)),
                max_session_duration=3600,
                tags=tags(f"{name}-{role}"),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{role}-policy",
                role=roles[role].id,
                policy=policy_json(statements),
                opts=child,
            )
        aws.iam.RolePolicyAttachment(
            f"{name}-deploy-deployers",
            role=roles["deploy"].name,
            policy_arn=args.deployers_policy_arn,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(  # a pull request's contract check reads the API
            f"{name}-preview-readers",
            role=roles["preview"].name,
            policy_arn=args.readers_policy_arn,
            opts=child,
        )
        self.provider_arn = provider_arn
        self.preview_role_arn = roles["preview"].arn
        self.deploy_role_arn = roles["deploy"].arn
        self.register_outputs(
            {
                "provider_arn": provider_arn,
                "preview_role_arn": self.preview_role_arn,
                "deploy_role_arn": self.deploy_role_arn,
            }
        )

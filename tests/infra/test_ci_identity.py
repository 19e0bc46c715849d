"""The CI identity under Pulumi mocks: the GitHub OIDC provider (created or adopted), the
``ci-preview`` and ``ci-deploy`` roles, their trust and their policies; parliament and the
policy pack over the recorded platform, both ways."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from flowhost.infra.config import PlatformConfigError, load_config
from tests.infra.recording import ACCOUNT_ID, PlatformRun, Recorded, run_program, stack_config
from tests.infra.test_documents import findings_above_low
from tests.infra.test_policy_pack import as_policy_resource, pack_config
from tests.policies.loader import load_policy_pack

load_policy_pack()

from policies.engine import evaluate  # noqa: E402
from policies.rules.iam_actions import WILDCARD_RESOURCE_ONLY  # noqa: E402

GITHUB = "token.actions.githubusercontent.com"
PROVIDER = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{GITHUB}"
ADOPTED = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{GITHUB}"
CI = {
    "flowhost:githubRepository": "acme/models",
    "flowhost:githubBranches": json.dumps(["main", "release"]),
    "flowhost:githubEnvironments": json.dumps(["prod"]),
    "flowhost:pulumiStateBackend": "s3://acme-pulumi/flowhost",
}
ROLE = "aws:iam/role:Role"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"


@pytest.fixture(scope="module")
def ci() -> PlatformRun:
    return run_program("dev", stack_config("dev") | CI)


@pytest.fixture(scope="module")
def adopted() -> PlatformRun:
    config = stack_config("prod") | {
        "flowhost:githubRepository": "acme/models",
        "flowhost:githubOidcProviderArn": ADOPTED,
    }
    return run_program("prod", config)


def role(run: PlatformRun, kind: str) -> Recorded:
    return run.named(f"flowhost-{run.outputs['environment']}-ci-{kind}")


def trust(run: PlatformRun, kind: str) -> dict[str, Any]:
    (statement,) = json.loads(role(run, kind).inputs["assumeRolePolicy"])["Statement"]
    return statement


def policy(run: PlatformRun, kind: str) -> dict[str, Any]:
    name = f"flowhost-{run.outputs['environment']}-ci-{kind}-policy"
    return json.loads(run.named(name).inputs["policy"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_provider_is_github_with_the_sts_audience(ci: PlatformRun) -> None:
    (provider,) = ci.of_type(OIDC)
    assert provider.inputs["url"] == f"https://{GITHUB}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert ci.outputs["githubOidcProviderArn"] == PROVIDER


def test_trust_pins_the_audience_and_the_repository_refs(ci: PlatformRun) -> None:
    refs = ["repo:acme/models:ref:refs/heads/main", "repo:acme/models:ref:refs/heads/release"]
    env = ["repo:acme/models:environment:prod"]
    pulls = "repo:acme/models:pull_request"
    for kind, subs in (("deploy", [*refs, *env]), ("preview", [*refs, *env, pulls])):
        statement = trust(ci, kind)
        assert statement["Principal"] == {"Federated": PROVIDER}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {
            "StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com", f"{GITHUB}:sub": subs}
        }
    assert ci.outputs["ciDeployRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/flowhost-dev-ci-deploy"
    assert ci.outputs["ciPreviewRoleArn"].endswith(":role/flowhost-dev-ci-preview")


def test_an_adopted_provider_is_trusted_and_not_created(adopted: PlatformRun) -> None:
    providers = [p for p in adopted.of_type(OIDC) if GITHUB in str(p.inputs.get("url"))]
    assert providers == []
    assert trust(adopted, "deploy")["Principal"] == {"Federated": ADOPTED}
    # No branches or environments named: main only, and pull requests for preview.
    assert trust(adopted, "deploy")["Condition"]["StringEquals"][f"{GITHUB}:sub"] == [
        "repo:acme/models:ref:refs/heads/main"
    ]
    assert adopted.outputs["githubOidcProviderArn"] == ADOPTED


def test_without_a_repository_there_is_no_ci_identity(dev: PlatformRun) -> None:
    assert not [r for r in dev.resources if "-ci-" in r.name]
    assert dev.outputs["ciDeployRoleArn"] == dev.outputs["ciPreviewRoleArn"] == ""


def test_preview_reads_and_takes_the_state_lock_only(ci: PlatformRun) -> None:
    """Nothing in the account it could change: the state's lock objects only."""
    statements = {s["Sid"]: s for s in policy(ci, "preview")["Statement"]}
    assert set(statements) == {
        "ProgramReads", "PulumiStateListing", "PulumiStateRead", "PulumiStateLocks",
    }  # fmt: skip
    assert statements["PulumiStateLocks"]["Resource"] == (
        "arn:aws:s3:::acme-pulumi/flowhost/.pulumi/locks/*"
    )
    actions = [a for s in statements.values() for a in as_list(s["Action"])]
    writes = [a for a in actions if "Put" in a or "Delete" in a]
    assert sorted(set(writes)) == ["s3:DeleteObject", "s3:PutObject"]
    assert {s["Sid"] for s in statements.values() if "s3:PutObject" in s["Action"]} == {
        "PulumiStateLocks"
    }


def test_no_wildcard_actions_and_star_only_where_aws_requires(ci: PlatformRun) -> None:
    star_only = {a.lower() for a in WILDCARD_RESOURCE_ONLY}
    for kind in ("deploy", "preview"):
        for statement in policy(ci, kind)["Statement"]:
            assert all("*" not in a for a in as_list(statement["Action"])), statement
            if "*" in as_list(statement["Resource"]):
                assert statement["Sid"] in ("ProgramReads", "ReadsOnStarOnly"), statement
                assert {a.lower() for a in statement["Action"]} <= star_only, statement
    (reads,) = [s for s in policy(ci, "preview")["Statement"] if s["Sid"] == "ProgramReads"]
    assert reads["Action"] == [
        "ec2:DescribeAvailabilityZones", "ecr:GetAuthorizationToken", "sts:GetCallerIdentity",
    ]  # fmt: skip


def test_deploy_stays_on_the_platforms_names(ci: PlatformRun) -> None:
    scoped = (":flowhost-dev-", "/flowhost-dev-", "/flowhost/dev/", ":flowhost-dev", "/dev-*",
              "flowhost-dev/", ":::acme-pulumi", ":cluster/flowhost-dev",
              ":sampling-rule/flowhost-dev")  # fmt: skip
    by_id = {"PlatformNetwork", "PlatformApi", "PlatformKeys", "OidcProviders"}
    for statement in policy(ci, "deploy")["Statement"]:
        if statement["Effect"] == "Deny" or statement["Sid"] in by_id:
            continue
        for arn in as_list(statement["Resource"]):
            assert arn == "*" or any(part in arn for part in scoped), (statement["Sid"], arn)
    network = [s for s in policy(ci, "deploy")["Statement"] if s["Sid"] == "PlatformNetwork"]
    assert network[0]["Resource"] == f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:*"


def test_deploy_may_not_change_the_ci_roles(ci: PlatformRun) -> None:
    statements = {s["Sid"]: s for s in policy(ci, "deploy")["Statement"]}
    keep = statements["KeepTheCiRoles"]
    assert keep["Effect"] == "Deny"
    assert keep["Resource"] == f"arn:aws:iam::{ACCOUNT_ID}:role/flowhost-dev-ci-*"
    assert {"iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"} <= set(
        keep["Action"]
    )


def test_deploy_creates_service_roles_only_with_the_boundary(ci: PlatformRun) -> None:
    boundary = ci.outputs["servicePermissionsBoundaryArn"]
    statements = {s["Sid"]: s for s in policy(ci, "deploy")["Statement"]}
    services = f"arn:aws:iam::{ACCOUNT_ID}:role/flowhost/dev/services/*"
    bounded = statements["ServiceRolesWithinTheBoundary"]
    assert "iam:CreateRole" in bounded["Action"]
    assert bounded["Resource"] == services
    assert bounded["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary}}
    for sid, statement in statements.items():
        if statement["Effect"] == "Allow" and sid != "ServiceRolesWithinTheBoundary":
            creating = {"iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"}
            if creating & set(statement["Action"]):
                assert services not in as_list(statement["Resource"]), sid
    keep = statements["KeepTheBoundary"]
    assert keep["Effect"] == "Deny"
    assert {"iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion"} <= set(keep["Action"])
    assert boundary in keep["Resource"]


def test_deploy_may_do_what_deployers_may(ci: PlatformRun) -> None:
    attachments = [
        r.inputs for r in ci.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name == "flowhost-dev-ci-deploy-deployers"
    ]  # fmt: skip
    assert attachments == [
        {"role": "flowhost-dev-ci-deploy", "policyArn": ci.outputs["deployersPolicyArn"]}
    ]


def test_preview_may_read_the_api_for_the_contract_check(ci: PlatformRun) -> None:
    attachments = [
        r.inputs for r in ci.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name == "flowhost-dev-ci-preview-readers"
    ]  # fmt: skip
    assert attachments == [
        {"role": "flowhost-dev-ci-preview", "policyArn": ci.outputs["readersPolicyArn"]}
    ]


def test_ci_documents_pass_parliament(ci: PlatformRun) -> None:
    problems: dict[str, list[str]] = {}
    for kind in ("deploy", "preview"):
        found = findings_above_low(policy(ci, kind), "identity")
        trusted = findings_above_low(json.loads(role(ci, kind).inputs["assumeRolePolicy"]), "trust")
        # parliament knows no GitHub provider as a federation source (nor EKS's)
        found += [
            f for f in trusted if not f.startswith("UNKNOWN_FEDERATION_SOURCE") or GITHUB not in f
        ]
        if found:
            problems[kind] = found
    assert problems == {}


def test_the_platform_with_a_ci_identity_passes_the_pack(ci: PlatformRun) -> None:
    resources = [as_policy_resource(r) for r in ci.resources if r.custom]
    violations = evaluate(resources, pack_config("dev"))
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_the_pack_fails_a_trust_without_sub_and_a_grant_on_the_whole_api(ci: PlatformRun) -> None:
    deploy = role(ci, "deploy")
    loose = json.loads(deploy.inputs["assumeRolePolicy"])
    del loose["Statement"][0]["Condition"]["StringEquals"][f"{GITHUB}:sub"]
    readers = ci.named("flowhost-dev-api-grants-readers")
    whole = json.loads(readers.inputs["policy"])
    whole["Statement"][0]["Resource"] = whole["Statement"][0]["Resource"].rsplit("/", 3)[0] + "/*"
    broken = {
        deploy.name: dataclasses.replace(
            deploy, inputs={**deploy.inputs, "assumeRolePolicy": json.dumps(loose)}
        ),
        readers.name: dataclasses.replace(
            readers, inputs={**readers.inputs, "policy": json.dumps(whole)}
        ),
    }
    resources = [as_policy_resource(broken.get(r.name, r)) for r in ci.resources if r.custom]
    violations = evaluate(resources, pack_config("dev"))
    assert {(v.policy, v.urn.rsplit("::", 1)[1]) for v in violations} == {
        ("oidc-trust-pins-sub", deploy.name),
        ("api-grants-route-scoped", readers.name),
    }


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"flowhost:githubRepository": "acme"}, "flowhost:githubRepository"),
        ({"flowhost:githubRepository": "acme/models", "flowhost:githubBranches": '["feat/*"]'},
         "flowhost:githubBranches"),
        ({"flowhost:githubEnvironments": '["prod"]'}, "flowhost:githubRepository"),
        ({"flowhost:githubRepository": "a/b", "flowhost:githubOidcProviderArn": "arn:aws:iam::1:x"},
         "flowhost:githubOidcProviderArn"),
        ({"flowhost:pulumiStateBackend": "acme-pulumi"}, "flowhost:pulumiStateBackend"),
        ({"flowhost:invokerServices": '["Sentiment!"]'}, "flowhost:invokerServices"),
    ],
)  # fmt: skip
def test_bad_ci_settings_name_the_key_and_the_fix(extra: dict[str, str], named: str) -> None:
    with pytest.raises(PlatformConfigError) as raised:
        load_config(stack_config("dev") | extra, "dev")
    message = str(raised.value)
    assert named in message
    assert "e.g." in message or "set it" in message

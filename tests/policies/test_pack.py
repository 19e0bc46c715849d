"""The pack: one mandatory pulumi-policy policy per rule, built only in ``__main__.py``;
the adapters hand rules the same ``Resource`` the offline engine does."""

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies.engine import ALL_RULES, UNKNOWN, make_urn
from policies.model import ResourceRule
from policies.pack import build_policies, plain
from tests.policies.support import TAGS

PACK = Path(__file__).resolve().parents[2] / "policies"
MAIN = PACK / "__main__.py"
BUCKET = "aws:s3/bucket:Bucket"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"


def policy(name: str) -> Any:
    return next(p for p in build_policies() if p.name == name)


def options(ignore_changes: list[str] | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=ignore_changes or [],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def resource_args(
    type_: str, name: str, props: dict[str, Any], config: Mapping[str, Any] | None = None
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        type_, unknown_checking_proxy(props), make_urn(type_, name), name, options(), None, config
    )


def stack_resource(
    type_: str, name: str, props: dict[str, Any], **deps: list[PolicyResource]
) -> PolicyResource:
    return PolicyResource(
        type_,
        unknown_checking_proxy(props),
        make_urn(type_, name),
        name,
        options(),
        None,
        None,
        [],
        dict(deps),
    )


def test_one_mandatory_policy_per_rule_in_order() -> None:
    policies = build_policies()
    assert [p.name for p in policies] == [r.name for r in ALL_RULES]
    for p, rule in zip(policies, ALL_RULES, strict=True):
        kind = ResourceValidationPolicy if isinstance(rule, ResourceRule) else StackValidationPolicy
        assert isinstance(p, kind)
        assert p.enforcement_level is EnforcementLevel.MANDATORY
        assert p.description == rule.description
        schema = p.config_schema
        assert (sorted(schema.properties) if schema else []) == sorted(rule.config_keys)


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def test_main_builds_the_pack_from_build_policies() -> None:
    tree = ast.parse(MAIN.read_text())
    (pack,) = _calls(tree, "PolicyPack")
    keywords = {k.arg: k.value for k in pack.keywords}
    assert _calls(keywords["policies"], "build_policies")
    assert ast.unparse(keywords["enforcement_level"]) == "EnforcementLevel.MANDATORY"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_only_main_imports_policy_pack() -> None:
    offenders = [
        p.relative_to(PACK).as_posix()
        for p in sorted(PACK.rglob("*.py"))
        if p != MAIN and any(n.endswith("PolicyPack") for n in _imports(p))
    ]
    assert offenders == []


def test_rules_import_neither_pulumi_nor_flowhost() -> None:
    """Rules are plain functions; only ``pack.py`` and ``__main__.py`` know pulumi-policy."""
    banned = ("pulumi", "pulumi_policy", "pulumi_aws", "flowhost")
    offenders = {
        p.relative_to(PACK).as_posix(): sorted(n for n in _imports(p) if n.split(".")[0] in banned)
        for p in sorted(PACK.rglob("*.py"))
        if p.name not in ("pack.py", "__main__.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_pack_settings_name_the_python_runtime() -> None:
    text = (PACK / "PulumiPolicy.yaml").read_text()
    assert "name: python" in text
    assert "pulumi-policy" in (PACK / "requirements.txt").read_text()


def test_plain_unwraps_proxies_and_marks_unknowns() -> None:
    proxied = unknown_checking_proxy({"a": [{"b": UNKNOWN_STRING_VALUE}], "c": 1.0})
    assert plain(proxied) == {"a": [{"b": UNKNOWN}], "c": 1.0}


def _report() -> tuple[list[tuple[str, str | None]], Any]:
    reported: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        reported.append((message, urn))

    return reported, report


def test_resource_policy_reports_with_the_urn_and_reads_its_config() -> None:
    reported, report = _report()
    props = {"storageEncrypted": True, "backupRetentionPeriod": 7.0, "tags": TAGS}
    args = resource_args("aws:rds/instance:Instance", "state", props, {"environment": "prod"})
    policy("rds-deletion-protection").validate(args, report)
    assert [urn for _, urn in reported] == [make_urn("aws:rds/instance:Instance", "state")]
    assert "deletionProtection" in reported[0][0]


def test_resource_policy_skips_other_types_and_unknown_values() -> None:
    reported, report = _report()
    policy("rds-storage-encrypted").validate(resource_args("aws:sqs/queue:Queue", "q", {}), report)
    unknown = {"storageEncrypted": UNKNOWN_STRING_VALUE}
    policy("rds-storage-encrypted").validate(
        resource_args("aws:rds/instance:Instance", "db", unknown), report
    )
    assert reported == []


def test_stack_policy_matches_children_by_property_dependency_during_preview() -> None:
    """A new bucket's id is unknown in preview; the SSE config depends on its URN."""
    bucket = stack_resource(BUCKET, "data", {"tags": TAGS})
    rules = [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]
    config = stack_resource(
        SSE, "data-sse", {"bucket": UNKNOWN_STRING_VALUE, "rules": rules}, bucket=[bucket]
    )
    orphan = stack_resource(BUCKET, "orphan", {"tags": TAGS})
    reported, report = _report()
    policy("s3-bucket-encrypted-with-kms").validate(
        StackValidationArgs([bucket, config, orphan]), report
    )
    assert [urn for _, urn in reported] == [orphan.urn]


@pytest.mark.parametrize(("ignore", "count"), [(["desiredCount"], 0), ([], 1)])
def test_stack_policy_reads_ignore_changes(ignore: list[str], count: int) -> None:
    service = PolicyResource(
        "aws:ecs/service:Service",
        unknown_checking_proxy({"name": "svc"}),
        make_urn("aws:ecs/service:Service", "svc"),
        "svc",
        options(ignore),
        None,
        None,
        [],
        {},
    )
    target = stack_resource(
        "aws:appautoscaling/target:Target",
        "svc-scaling",
        {"serviceNamespace": "ecs", "resourceId": "service/c/svc"},
    )
    reported, report = _report()
    policy("ecs-autoscaled-service-ignores-desired-count").validate(
        StackValidationArgs([service, target]), report
    )
    assert len(reported) == count

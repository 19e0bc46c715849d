"""IAM: no wildcard actions, and no wildcard resources where an ARN can be named."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from policies.model import (
    PolicyConfig,
    Resource,
    ResourceRule,
    as_list,
    is_unknown,
    parse_document,
    statements,
)
from policies.rules.iam_actions import WILDCARD_RESOURCE_ONLY_LOWER
from policies.rules.storage import public_statements

IAM_POLICY: Final = "aws:iam/policy:Policy"
ROLE_POLICY: Final = "aws:iam/rolePolicy:RolePolicy"
USER_POLICY: Final = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY: Final = "aws:iam/groupPolicy:GroupPolicy"
ROLE: Final = "aws:iam/role:Role"
# Resources that hold identity policies (a role: its inline policies).
IDENTITY_POLICY_TYPES: Final = frozenset({IAM_POLICY, ROLE_POLICY, USER_POLICY, GROUP_POLICY, ROLE})


def identity_documents(resource: Resource) -> Iterator[tuple[str, object]]:
    """(where in the resource, the document) for every identity policy it holds."""
    if resource.type == ROLE:
        for i, inline in enumerate(as_list(resource.props.get("inlinePolicies"))):
            if isinstance(inline, Mapping):
                label = inline.get("name") or f"#{i}"
                yield (f"inlinePolicies[{label}].policy", inline.get("policy"))
    else:
        yield ("policy", resource.props.get("policy"))


def _statement_label(index: int, statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if isinstance(sid, str) and sid else f"statement #{index}"


def _is_wildcard_action(action: object) -> bool:
    return isinstance(action, str) and (action == "*" or action.endswith(":*"))


def _statement_findings(statement: Mapping[str, Any]) -> Iterator[str]:
    if "NotAction" in statement:
        yield (
            "uses NotAction in an Allow, which grants every other action. List the actions "
            "the role needs under Action."
        )
    actions = as_list(statement.get("Action"))
    wildcards = [a for a in actions if _is_wildcard_action(a)]
    if wildcards:
        yield (
            f"allows wildcard actions (got {wildcards}). List the actions the role needs, "
            "e.g. 's3:GetObject'."
        )
    if "NotResource" in statement:
        yield (
            "uses NotResource in an Allow, which grants every other resource. Name the ARNs "
            "under Resource."
        )
    if "*" in as_list(statement.get("Resource")):
        narrowable = [
            a
            for a in actions
            if isinstance(a, str)
            and not _is_wildcard_action(a)
            and a.lower() not in WILDCARD_RESOURCE_ONLY_LOWER
        ]
        if narrowable:
            yield (
                f"grants Resource '*' to actions that accept resource ARNs (got {narrowable}). "
                "Name the ARNs; actions that only support '*' (e.g. xray:PutTraceSegments) "
                "belong in a statement of their own."
            )


def check_no_wildcards(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    for where, raw in identity_documents(resource):
        if raw is None or is_unknown(raw):
            continue
        document = parse_document(raw)
        if document is None:
            yield (
                f"{resource.where}: {where} is not a JSON policy document (got "
                f"{str(raw)[:60]!r}). Build it with json.dumps or aws.iam.get_policy_document."
            )
            continue
        for index, statement in enumerate(statements(document)):
            if statement.get("Effect") != "Allow":
                continue
            label = _statement_label(index, statement)
            for finding in _statement_findings(statement):
                yield f"{resource.where}: {where} {label} {finding}"


def check_trust_not_public(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    del config
    raw = resource.props.get("assumeRolePolicy")
    if is_unknown(raw):
        return
    document = parse_document(raw)
    if document is not None and public_statements(document):
        yield (
            f"{resource.where}: assumeRolePolicy lets any principal ('*') assume the role with "
            "no Condition. Name the service or account principal, e.g. "
            "{'Service': 'ecs-tasks.amazonaws.com'}."
        )


RULES: Final = (
    ResourceRule(
        name="iam-no-wildcards",
        description="Identity policies allow no '*' or 'service:*' actions, no NotAction or "
        "NotResource, and Resource '*' only for actions that support nothing narrower.",
        check=check_no_wildcards,
        types=IDENTITY_POLICY_TYPES,
    ),
    ResourceRule(
        name="iam-role-trust-not-public",
        description="Role trust policies never let everyone ('*') assume the role.",
        check=check_trust_not_public,
        types=frozenset({ROLE}),
    ),
)

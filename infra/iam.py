"""IAM policy documents as plain data, rendered to JSON for Pulumi.

Documents are built from :class:`Statement` values so tests can read every action
and resource; nothing here calls AWS. Wildcard resources appear only where AWS
offers no narrower resource for the action (each such place says why).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

__all__ = [
    "Account",
    "Statement",
    "assume_role_policy",
    "policy_json",
    "service_role_path",
]


def service_role_path(environment: str) -> str:
    """The IAM path of every service role (task and execution roles) of ``environment``:
    the control plane may pass exactly these roles to ECS (``iam:PassRole`` by path)."""
    return f"/flowhost/{environment}/services/"


@dataclass(frozen=True)
class Statement:
    """One IAM statement; resources may be Pulumi outputs (ARNs of created resources)."""

    sid: str
    actions: Sequence[str]
    resources: Sequence[pulumi.Input[str]]
    conditions: Mapping[str, Mapping[str, pulumi.Input[str] | Sequence[str]]] = field(
        default_factory=dict
    )
    effect: str = "Allow"


def _render(statements: Sequence[Statement], resolved_parts: Sequence[Sequence[Any]]) -> str:
    body: list[dict[str, object]] = []
    for statement, (resolved, conditions) in zip(statements, resolved_parts, strict=True):
        item: dict[str, object] = {
            "Sid": statement.sid,
            "Effect": statement.effect,
            "Action": sorted(statement.actions),
            "Resource": list(resolved) if len(resolved) != 1 else resolved[0],
        }
        if conditions:
            item["Condition"] = conditions
        body.append(item)
    return json.dumps({"Version": "2012-10-17", "Statement": body}, sort_keys=True)


def policy_json(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """The policy document, once every resource ARN in it is known."""
    parts = [
        pulumi.Output.all(pulumi.Output.all(*s.resources), pulumi.Output.from_input(s.conditions))
        for s in statements
    ]
    return pulumi.Output.all(*parts).apply(lambda resolved: _render(statements, resolved))


def assume_role_policy(service: str, conditions: dict[str, dict[str, object]] | None = None) -> str:
    """A trust policy letting one AWS service principal assume the role."""
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = conditions
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


@dataclass(frozen=True)
class Account:
    """Where the stack runs, for building ARNs: partition, region and account id."""

    partition: pulumi.Output[str]
    region: pulumi.Output[str]
    account_id: pulumi.Output[str]

    @staticmethod
    def current(parent: pulumi.Resource | None = None) -> Account:
        import pulumi_aws as aws

        opts = pulumi.InvokeOutputOptions(parent=parent)
        return Account(
            partition=aws.get_partition_output(opts=opts).partition,
            region=aws.get_region_output(opts=opts).region,
            account_id=aws.get_caller_identity_output(opts=opts).account_id,
        )

    def arn(
        self, service: str, resource: pulumi.Input[str], *, regional: bool = True
    ) -> pulumi.Output[str]:
        """``arn:<partition>:<service>:<region>:<account>:<resource>``."""
        region: pulumi.Input[str] = self.region if regional else ""
        return pulumi.Output.concat(
            "arn:", self.partition, ":", service, ":", region, ":", self.account_id, ":", resource
        )

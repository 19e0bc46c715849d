"""The gates every workflow in .github/workflows must keep, as functions that list what a
workflow breaks (an empty list: it keeps them all). tests/ci/test_workflow_gates.py runs
them over the real workflows, and over copies with one gate removed, so each can fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.ci.workflows import iter_steps

__all__ = [
    "GATES",
    "contract_before_deploy",
    "dev_before_prod",
    "no_static_aws_keys",
    "oidc_permissions",
    "pinned_actions",
    "policy_pack_everywhere",
    "prod_behind_environment",
]

Workflow = Mapping[str, Any]
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\s*$")
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials@"
PULUMI_ACTION = "pulumi/actions@"
STATIC_KEYS = re.compile(
    r"aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY"
)
PULUMI_CLI = re.compile(r"\bpulumi\s+(preview|up|update)\b")


def _jobs(workflow: Workflow) -> dict[str, dict[str, Any]]:
    return dict(workflow.get("jobs", {}))


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _ancestors(workflow: Workflow, job_id: str) -> set[str]:
    jobs, seen, todo = _jobs(workflow), set[str](), [job_id]
    while todo:
        for parent in _needs(jobs[todo.pop()]):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _runs(step: Mapping[str, Any], pattern: str) -> bool:
    return bool(re.search(pattern, str(step.get("run", ""))))


def _is_deploy(step: Mapping[str, Any]) -> bool:
    uses = str(step.get("uses", ""))
    if uses.startswith(PULUMI_ACTION):
        return step.get("with", {}).get("command") in ("up", "update")
    return _runs(step, r"\bflowhost\s+(deploy|promote)\b") or bool(
        re.search(r"\bpulumi\s+up\b", str(step.get("run", "")))
    )


def _targets_prod(step: Mapping[str, Any]) -> bool:
    if str(step.get("uses", "")).startswith(PULUMI_ACTION):
        return str(step.get("with", {}).get("stack-name", "")) == "prod"
    env = step.get("env", {})
    return env.get("TARGET") == "prod" or bool(re.search(r"(-s|--stack)\s+prod\b", str(step)))


def policy_pack_everywhere(workflow: Workflow) -> list[str]:
    """Every Pulumi preview and up runs the policy pack in ``policies``."""
    problems: list[str] = []
    for job_id, step in iter_steps(workflow):
        uses = str(step.get("uses", ""))
        if uses.startswith(PULUMI_ACTION):
            if step.get("with", {}).get("policyPacks") != "policies":
                problems.append(f"{job_id}: a pulumi/actions step without policyPacks: policies")
        elif PULUMI_CLI.search(str(step.get("run", ""))) and "--policy-pack policies" not in str(
            step.get("run", "")
        ):
            problems.append(f"{job_id}: a pulumi command without --policy-pack policies")
    return problems


def oidc_permissions(workflow: Workflow) -> list[str]:
    """Jobs that take AWS credentials do so by OIDC: ``id-token: write`` on the job, a
    role to assume, and nothing wider than ``contents: read`` at the top."""
    problems: list[str] = []
    top = workflow.get("permissions")
    if top != {"contents": "read"}:
        problems.append(f"workflow permissions: expected {{contents: read}} (got {top!r})")
    for job_id, job in _jobs(workflow).items():
        for step in job.get("steps", []):
            if not str(step.get("uses", "")).startswith(AWS_CREDENTIALS):
                continue
            if job.get("permissions", {}).get("id-token") != "write":
                problems.append(f"{job_id}: AWS credentials without permissions id-token: write")
            if not step.get("with", {}).get("role-to-assume"):
                problems.append(f"{job_id}: configure-aws-credentials without role-to-assume")
    return problems


def no_static_aws_keys(text: str) -> list[str]:
    """No stored AWS keys anywhere in the file's text."""
    return [f"line {n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
            if STATIC_KEYS.search(line)]  # fmt: skip


def pinned_actions(text: str) -> list[str]:
    """Every ``uses:`` names a full 40-hex commit SHA, with the version in a comment
    (a local ``./`` workflow excepted)."""
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        found = re.match(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", line)
        if not found or found[1].startswith("./"):
            continue
        if not PINNED.match(found[1]):
            problems.append(f"line {n}: {found[1]} is not pinned to a 40-hex commit SHA")
        elif not VERSION_COMMENT.search(found[2]):
            problems.append(f"line {n}: {found[1]} has no '# vX.Y.Z' comment")
    return problems


def contract_before_deploy(workflow: Workflow) -> list[str]:
    """A job that deploys a service runs after the job that checks its contract (the
    deploy job ``needs`` it), or after that step in the same job."""
    problems: list[str] = []
    jobs = _jobs(workflow)
    checking = {
        job_id for job_id, step in iter_steps(workflow)
        if _runs(step, r"\bflowhost\s+contract\s+check\b")
    }  # fmt: skip
    for job_id, job in jobs.items():
        steps = job.get("steps", [])
        deploys = [i for i, s in enumerate(steps) if _is_deploy(s) and "flowhost" in str(s)]
        if not deploys:
            continue
        own = [i for i, s in enumerate(steps) if _runs(s, r"\bflowhost\s+contract\s+check\b")]
        if own and min(own) < min(deploys):
            continue
        if not checking & _ancestors(workflow, job_id):
            problems.append(f"{job_id}: deploys without a contract check before it")
    return problems


def prod_behind_environment(workflow: Workflow) -> list[str]:
    """A job that changes prod runs in the GitHub environment ``prod`` (its reviewers)."""
    problems: list[str] = []
    for job_id, job in _jobs(workflow).items():
        if any(_is_deploy(s) and _targets_prod(s) for s in job.get("steps", [])):
            environment = job.get("environment")
            name = environment.get("name") if isinstance(environment, dict) else environment
            if name != "prod":
                problems.append(f"{job_id}: changes prod outside the environment 'prod'")
    return problems


def dev_before_prod(workflow: Workflow) -> list[str]:
    """Every job that changes prod needs (directly or not) a job that changed dev."""
    problems: list[str] = []
    jobs = _jobs(workflow)
    changes: dict[str, set[str]] = {}
    for job_id, job in jobs.items():
        for step in job.get("steps", []):
            if _is_deploy(step):
                changes.setdefault(job_id, set()).add("prod" if _targets_prod(step) else "dev")
    dev_jobs = {j for j, envs in changes.items() if "dev" in envs}
    for job_id, envs in changes.items():
        if "prod" in envs and not dev_jobs & _ancestors(workflow, job_id):
            problems.append(f"{job_id}: changes prod without needing a job that changed dev")
    return problems


GATES = (
    policy_pack_everywhere,
    oidc_permissions,
    contract_before_deploy,
    prod_behind_environment,
    dev_before_prod,
)

"""What ``ServiceSpec`` checks before it creates anything, and its tunable options.

Each problem is one line: ``ServiceSpec '<name>': <what> (got <value>). <fix>.``; all of
them are reported together in one ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from flowhost.infra.platform_ref import PlatformRef
from flowhost.infra.service.deploy import Deploy
from flowhost.infra.service.fargate import fargate_size
from flowhost.infra.service.queues import DEAD_LETTER_SUFFIX, MAX_QUEUE_NAME, queue_base_name
from flowhost.services.definition import ServiceDefinition

__all__ = ["ALIAS", "LOG_RETENTION_DAYS", "MAX_COMPONENT_NAME", "ServiceOptions", "validate"]

ALIAS = re.compile(r"^[a-z][a-z0-9-]*$")  # as the control plane's aliases
ENVIRONMENT_DIGEST = re.compile(r"^sha256-[0-9a-f]{64}$")  # an environment build's digest
# The queue names are checked with a version of this many digits (the control plane's).
LONGEST_VERSION = 9999

LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192}
    | {2557, 2922, 3288, 3653}
)
# IAM role names are at most 64 characters; Pulumi appends "-" and 7 characters to the
# logical name "<name>-execution-role".
MAX_COMPONENT_NAME = 64 - 8 - len("-execution-role")
MAX_SQS_RETENTION = 14 * 24 * 60 * 60
MAX_VISIBILITY_TIMEOUT = 12 * 60 * 60


@dataclass(frozen=True)
class ServiceOptions:
    """Knobs with working defaults: queue redrive and retention, logs, Spot, scaling target."""

    max_receive_count: int = 3
    queue_retention_seconds: int = 4 * 24 * 60 * 60  # SQS's default
    # Longer than the longest endpoint (20 min) so a message is not handed out twice.
    visibility_timeout_seconds: int = 30 * 60
    log_retention_days: int = 30
    spot_weight: int = 1  # FARGATE_SPOT weight next to FARGATE's 1 (base 1); 0 = no Spot
    # ALBRequestCountPerTarget target; None = target_concurrency * 60 (about 1 s requests)
    requests_per_target_per_minute: int | None = None
    deregistration_delay_seconds: int = 30


def _known(value: pulumi.Input[str]) -> str | None:
    return value if isinstance(value, str) else None


def _option_problems(options: ServiceOptions) -> list[str]:
    problems: list[str] = []
    if not 1 <= options.max_receive_count <= 1000:
        problems.append(
            f"options.max_receive_count must be 1 to 1000 (got {options.max_receive_count}). "
            "It is the receives before a message goes to the dead-letter queue"
        )
    if not 60 <= options.queue_retention_seconds <= MAX_SQS_RETENTION:
        problems.append(
            f"options.queue_retention_seconds must be 60 to {MAX_SQS_RETENTION} (got "
            f"{options.queue_retention_seconds}). SQS keeps messages at most 14 days"
        )
    if not 0 <= options.visibility_timeout_seconds <= MAX_VISIBILITY_TIMEOUT:
        problems.append(
            f"options.visibility_timeout_seconds must be 0 to {MAX_VISIBILITY_TIMEOUT} (got "
            f"{options.visibility_timeout_seconds}). Use at most 12 hours"
        )
    if options.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(
            f"options.log_retention_days must be a CloudWatch Logs retention (got "
            f"{options.log_retention_days}). Use one of {sorted(LOG_RETENTION_DAYS)}"
        )
    if not 0 <= options.spot_weight <= 1000:
        problems.append(f"options.spot_weight must be 0 to 1000 (got {options.spot_weight})")
    target = options.requests_per_target_per_minute
    if target is not None and target < 1:
        problems.append(f"options.requests_per_target_per_minute must be positive (got {target})")
    if not 0 <= options.deregistration_delay_seconds <= 3600:
        problems.append(
            "options.deregistration_delay_seconds must be 0 to 3600 (got "
            f"{options.deregistration_delay_seconds})"
        )
    return problems


def _deploy_problems(
    definition: ServiceDefinition,
    version: int | None,
    run: str | None,
    aliases: Sequence[str],
    deploy: Deploy | None,
) -> list[str]:
    """Who deploys the code: the control plane (CPU, ``deploy=``) or the stack (GPU)."""
    problems: list[str] = []
    if definition.uses_gpu:
        if deploy is not None:
            problems.append(
                "deploy= applies to CPU services (got a GPU service). A GPU service's "
                "version runs from its stack: drop deploy= and set version="
            )
        return problems
    given = [f"{k}={v!r}" for k, v in (("version", version), ("run", run)) if v is not None]
    given += [f"aliases={list(aliases)!r}"] if aliases else []
    if deploy is None and given:
        problems.append(
            f"{', '.join(given)} only apply to code the stack deploys (got deploy=None). The "
            "control plane numbers versions and moves aliases: pass deploy=Deploy(...), "
            "or deploy with 'flowhost deploy'"
        )
    if deploy is not None and deploy.run is not None and run is not None and deploy.run != run:
        problems.append(f"run={run!r} and deploy.run={deploy.run!r} differ. Give one of them")
    if deploy is not None and (deploy.timeout <= 0):
        problems.append(f"deploy.timeout must be positive (got {deploy.timeout:g})")
    return problems


def _environment_problems(definition: ServiceDefinition, digest: str | None) -> list[str]:
    """``environment_digest=`` names a built environment, for a version the stack runs."""
    if digest is None:
        return []
    problems: list[str] = []
    if not ENVIRONMENT_DIGEST.match(digest):
        problems.append(
            f"environment_digest must be 'sha256-' and 64 lowercase hex digits (got {digest!r}). "
            "Pass the digest of a built environment, as the control plane records it"
        )
    if not definition.uses_gpu:
        problems.append(
            f"environment_digest applies to GPU services, whose version the stack runs (got "
            f"{digest!r} for a CPU service). The control plane resolves a CPU version's "
            "environment at deploy: drop environment_digest"
        )
    return problems


def validate(
    name: str,
    definition: ServiceDefinition,
    platform: PlatformRef,
    version: int | None,
    run: str | None,
    aliases: Sequence[str],
    options: ServiceOptions,
    deploy: Deploy | None = None,
    environment_digest: str | None = None,
) -> tuple[int, int]:
    """Every problem at once as a ``ValueError``; else the Fargate (CPU units, MiB)."""
    service = definition.name
    where = f"ServiceSpec {name!r}"
    problems = _option_problems(options)
    problems += _deploy_problems(definition, version, run, aliases, deploy)
    if definition.uses_gpu and not platform.eks_enabled:
        problems.append(
            f"service {service!r} asks for resources.gpu={definition.resources.gpu}, but the "
            "platform has no EKS cluster (got eks_enabled=False). Set flowhost:eksEnabled: "
            "true in the platform stack's Pulumi.<env>.yaml and run pulumi up there, then "
            "read it with PlatformRef.from_stack(..., eks_enabled=True); or set gpu=0"
        )
    if version is not None and version < 1:
        problems.append(f"version must be 1 or more (got {version}). Versions are v1, v2, ...")
    if len(name) > MAX_COMPONENT_NAME:
        problems.append(
            f"the name is longer than {MAX_COMPONENT_NAME} characters (got {len(name)}), too "
            "long for its IAM role names. Use a shorter component name"
        )
    queue = queue_base_name(service, version or LONGEST_VERSION)
    prefix = _known(platform.queue_name_prefix) or ""
    if len(prefix + queue + DEAD_LETTER_SUFFIX) > MAX_QUEUE_NAME:
        problems.append(
            f"the queue {prefix + queue + DEAD_LETTER_SUFFIX!r} is longer than SQS's "
            f"{MAX_QUEUE_NAME} characters (got {len(prefix + queue + DEAD_LETTER_SUFFIX)}). "
            "Use a shorter service name"
        )
    wanted = [*aliases, *(deploy.aliases if deploy is not None else ())]
    for alias in wanted:
        if not ALIAS.match(alias):
            problems.append(
                f"alias {alias!r} is not a lowercase slug (got {alias!r}). Use letters, "
                "digits and '-', starting with a letter, e.g. 'production' or 'canary'"
            )
    if len(set(wanted)) != len(wanted):
        problems.append(f"aliases must be distinct (got {wanted})")
    pinned = run or (deploy.run if deploy is not None else None)
    if pinned is not None and definition.artifacts is None:
        problems.append(
            f"run={pinned!r} is given but service {service!r} declares no Artifacts (got none). "
            "Declare artifacts = Artifacts(flow=...) on the class, or drop run"
        )
    problems += _environment_problems(definition, environment_digest)
    sizes = (0, 0)
    if not definition.uses_gpu:
        try:
            sizes = fargate_size(name, definition.resources.cpu, definition.resources.memory)
        except ValueError as error:
            problems.append(str(error).split(": ", 1)[1].rstrip("."))
    if problems:
        raise ValueError("\n".join(f"{where}: {p}." for p in problems))
    return sizes

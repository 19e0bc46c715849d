"""A service version's target group and its ALB listener rules, in the control plane's shape.

Each rule matches one (service, alias) by path (``/S``, ``/S/*`` for ``production``;
``/S@alias``, ``/S@alias/*`` otherwise, versions too: ``/S@v3``) and forwards to two
target groups, the version's and the activator's, with all the weight on one
(``flowhost.lambdas.aws.AlbRoutes``). The control plane parks, wakes and repoints a
route by modifying that forward action, so Pulumi ignores changes to ``actions``.

Priorities: AlbRoutes only reads rules in 1000-49999 and gives new rules the lowest
free priority from 1000 up (a listener holds at most a few hundred rules), so rules
made here take a priority from the top half of the band, 25000-49999, derived from a
hash of ``service@alias``: stable across runs and programs. Two rules of one program
whose hashes meet take the next free one, in creation order.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi.runtime.settings import get_root_resource

from flowhost.infra.network import SERVICE_PORT
from flowhost.infra.tags import Tagging
from flowhost.services.routing import PRODUCTION, path_patterns

__all__ = [
    "ALIAS",
    "FIRST_STACK_PRIORITY",
    "LAST_STACK_PRIORITY",
    "PRODUCTION",
    "RouteArgs",
    "ServiceRoutes",
    "create_routes",
    "path_patterns",
    "rule_priority",
    "target_group_name",
]

ALIAS = re.compile(r"^[a-z][a-z0-9-]*$")
FIRST_STACK_PRIORITY = 25000  # AlbRoutes' band is 1000-49999, filled from the bottom
LAST_STACK_PRIORITY = 49999
_SPAN = LAST_STACK_PRIORITY - FIRST_STACK_PRIORITY + 1
MAX_TARGET_GROUP_NAME = 32
# Priorities (and aliases) taken in the running program, per root stack resource.
_TAKEN: weakref.WeakKeyDictionary[object, dict[int, str]] = weakref.WeakKeyDictionary()
_GLOBAL_KEY = type("_NoRoot", (), {})()


def rule_priority(service: str, alias: str) -> int:
    """The rule's home priority in 25000-49999 (before probing past a taken one)."""
    digest = hashlib.sha256(f"{service}@{alias}".encode()).digest()
    return FIRST_STACK_PRIORITY + int.from_bytes(digest[:8], "big") % _SPAN


def _claim(service: str, alias: str) -> int:
    root = get_root_resource()
    taken = _TAKEN.setdefault(root if root is not None else _GLOBAL_KEY, {})
    route = f"{service}@{alias}"
    if route in taken.values():
        raise ValueError(
            f"ServiceSpec {service!r}: alias {alias!r} is routed by another ServiceSpec in "
            f"this program (got it twice). Give the alias to one version only; the control "
            "plane moves it afterwards (flowhost promote)."
        )
    priority = rule_priority(service, alias)
    while priority in taken:
        priority = FIRST_STACK_PRIORITY + (priority - FIRST_STACK_PRIORITY + 1) % _SPAN
    taken[priority] = route
    return priority


def target_group_name(environment: str, service: str, version: int) -> str:
    """``<env>-<service>-v<N>``, or, when that passes ALB's 32 characters, a prefix of it
    with a hash of the whole (unique per account and region)."""
    full = f"{environment}-{service}-v{version}"
    if len(full) <= MAX_TARGET_GROUP_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    head = full[: MAX_TARGET_GROUP_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


@dataclass(frozen=True)
class RouteArgs:
    service: str
    version: int
    aliases: Sequence[str]
    parked: bool
    environment: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    listener_arn: pulumi.Input[str]
    activator_target_group_arn: pulumi.Input[str]
    deregistration_delay_seconds: int
    tagging: Tagging


@dataclass(frozen=True)
class ServiceRoutes:
    target_group: aws.lb.TargetGroup
    rules: dict[str, aws.lb.ListenerRule]
    priorities: dict[str, int]


def route_aliases(version: int, aliases: Sequence[str]) -> list[str]:
    """The version's own route ``v<N>`` first, then the aliases it is given."""
    own = f"v{version}"
    return [own, *(a for a in aliases if a != own)]


def create_routes(name: str, args: RouteArgs, parent: pulumi.Resource) -> ServiceRoutes:
    child = pulumi.ResourceOptions(parent=parent)
    tags = args.tagging.tags
    target_group = aws.lb.TargetGroup(
        f"{name}-tg",
        name=pulumi.Output.from_input(args.environment).apply(
            lambda env: target_group_name(env, args.service, args.version)
        ),
        port=SERVICE_PORT,
        protocol="HTTP",
        target_type="ip",
        vpc_id=args.vpc_id,
        deregistration_delay=args.deregistration_delay_seconds,
        health_check={
            "path": "/readyz",
            "matcher": "200",
            "interval": 15,
            "timeout": 5,
            "healthy_threshold": 2,
            "unhealthy_threshold": 3,
        },
        tags=tags(f"{name}-tg"),
        opts=child,
    )
    weights = (0, 1) if args.parked else (1, 0)
    rules: dict[str, aws.lb.ListenerRule] = {}
    priorities: dict[str, int] = {}
    for alias in route_aliases(args.version, args.aliases):
        priorities[alias] = priority = _claim(args.service, alias)
        rules[alias] = aws.lb.ListenerRule(
            f"{name}-route-{alias}",
            listener_arn=args.listener_arn,
            priority=priority,
            conditions=[{"path_pattern": {"values": list(path_patterns(args.service, alias))}}],
            actions=[
                {
                    "type": "forward",
                    "forward": {
                        "target_groups": [
                            {"arn": target_group.arn, "weight": weights[0]},
                            {"arn": args.activator_target_group_arn, "weight": weights[1]},
                        ]
                    },
                }
            ],
            tags=tags(f"{name}-route-{alias}"),
            # The control plane parks, wakes and repoints the route by changing its
            # forward weights; a later `pulumi up` must not undo that.
            opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["actions"]),
        )
    return ServiceRoutes(target_group, rules, priorities)

"""Routes on AWS: one ALB listener rule per (service, alias), changed with one API call.

A rule matches the alias's paths and forwards to two target groups at once: the
version's and the activator's, with all the weight on one of them::

    /sentiment  /sentiment/*            production  -> sentiment-v3 (1), activator (0)
    /sentiment@canary  /sentiment@canary/*  canary  -> sentiment-v4 (0), activator (1)

So the rule itself always names its version, whether the version is serving or
*parked* (at zero instances, requests held by the activator), and each change of
traffic (repoint, park, wake) is a single ``ModifyRule`` of the forward action: ALB
applies it atomically, and the next request follows it.

Priorities: rules live in the band ``FIRST_PRIORITY..LAST_PRIORITY`` (1000-49999);
below 1000 is left to the platform stack. The paths of two different (service,
alias) pairs never overlap (names are ``[a-z][a-z0-9-]*``), so order within the band
does not matter and a new rule takes the lowest free priority; a concurrent writer
that took it first (``PriorityInUse``) makes us take the next. A rule is found again
by its path patterns, never by a stored priority.

The boto3 ELBv2 client is typed ``Any`` (no stubs installed); what is read from it is
checked into ``Route`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from flowhost.errors import NotFoundError
from flowhost.lambdas.aws.errors import AwsError, aws_errors, error_code
from flowhost.lambdas.store import PRODUCTION
from flowhost.services.routing import path_patterns

__all__ = ["FIRST_PRIORITY", "LAST_PRIORITY", "AlbRoutes", "Route", "path_patterns"]

FIRST_PRIORITY = 1000
LAST_PRIORITY = 49999
_CREATE_ATTEMPTS = 5
_RULE_MISSING = ("RuleNotFound",)


def _parse_patterns(values: list[str]) -> tuple[str, str] | None:
    """(service, alias) whose path patterns are exactly ``values``, or None."""
    wild = [v for v in values if v.endswith("/*")]
    if len(wild) != 1 or not wild[0].startswith("/"):
        return None
    service, at, alias = wild[0][1:-2].partition("@")
    alias = alias if at else PRODUCTION
    if not service or "/" in service or (at and not alias):
        return None
    try:
        expected = path_patterns(service, alias)
    except ValueError:
        return None
    return (service, alias) if sorted(values) == sorted(expected) else None


@dataclass(frozen=True, slots=True)
class Route:
    service: str
    alias: str
    rule_arn: str
    priority: int
    target_group_arn: str  # the version's target group, parked or not
    parked: bool  # forwarding to the activator while the version is at zero


class AlbRoutes:
    """The flowhost rules of one ALB listener; ``activator_target_group_arn`` is where
    parked routes send their requests."""

    def __init__(self, client: Any, listener_arn: str, activator_target_group_arn: str) -> None:
        self.client: Any = client
        self.listener_arn = listener_arn
        self.activator = activator_target_group_arn

    # reading

    def _rules(self) -> list[Mapping[str, Any]]:
        rules: list[Mapping[str, Any]] = []
        marker: str | None = None
        with aws_errors(
            f"ALB listener {self.listener_arn}",
            "DescribeRules",
            missing=("ListenerNotFound",),
            missing_fix="Check the platform stack's listener ARN output and the region",
        ):
            while True:
                page = self.client.describe_rules(
                    ListenerArn=self.listener_arn, **({"Marker": marker} if marker else {})
                )
                rules.extend(page.get("Rules") or [])
                marker = page.get("NextMarker")
                if not marker:
                    return rules

    def _route(self, rule: Mapping[str, Any]) -> Route | None:
        priority = str(rule.get("Priority", ""))
        if rule.get("IsDefault") or not priority.isdigit():
            return None
        if not FIRST_PRIORITY <= int(priority) <= LAST_PRIORITY:
            return None
        conditions: list[Mapping[str, Any]] = list(rule.get("Conditions") or [])
        if len(conditions) != 1 or conditions[0].get("Field") != "path-pattern":
            return None
        values = conditions[0].get("PathPatternConfig", {}).get("Values") or conditions[0].get(
            "Values", []
        )
        names = _parse_patterns([str(v) for v in values])
        actions: list[Mapping[str, Any]] = list(rule.get("Actions") or [])
        forwards = [a for a in actions if a.get("Type") == "forward"]
        if names is None or len(forwards) != 1:
            return None
        forward = forwards[0]
        groups: list[Mapping[str, Any]] = list(
            forward.get("ForwardConfig", {}).get("TargetGroups") or []
        )
        weights = {str(g["TargetGroupArn"]): int(g.get("Weight", 1)) for g in groups}
        if not weights and forward.get("TargetGroupArn"):
            weights = {str(forward["TargetGroupArn"]): 1}
        versions = [arn for arn in weights if arn != self.activator]
        if len(versions) != 1:
            return None
        return Route(
            service=names[0],
            alias=names[1],
            rule_arn=str(rule["RuleArn"]),
            priority=int(priority),
            target_group_arn=versions[0],
            parked=weights.get(self.activator, 0) > 0 and weights[versions[0]] == 0,
        )

    def routes(self, service: str | None = None) -> list[Route]:
        """Every flowhost route on the listener (of ``service``), by priority."""
        found = [r for r in map(self._route, self._rules()) if r is not None]
        return sorted(
            (r for r in found if service is None or r.service == service),
            key=lambda r: r.priority,
        )

    def find(self, service: str, alias: str) -> Route | None:
        return next((r for r in self.routes(service) if r.alias == alias), None)

    def get(self, service: str, alias: str) -> Route:
        route = self.find(service, alias)
        if route is None:
            raise NotFoundError(
                f"route {service}@{alias}: no rule on listener {self.listener_arn} (got none "
                f"matching {path_patterns(service, alias)[1]!r}). Promote a version to "
                f"{alias!r} first."
            )
        return route

    # changing

    def _actions(self, target_group_arn: str, parked: bool) -> list[dict[str, Any]]:
        groups = [
            {"TargetGroupArn": target_group_arn, "Weight": 0 if parked else 1},
            {"TargetGroupArn": self.activator, "Weight": 1 if parked else 0},
        ]
        return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]

    def _modify(self, route: Route, target_group_arn: str, parked: bool) -> Route:
        with aws_errors(
            f"route {route.service}@{route.alias} (rule {route.rule_arn})",
            "ModifyRule",
            missing=_RULE_MISSING,
            missing_fix="It was deleted meanwhile; point the alias again",
        ):
            self.client.modify_rule(
                RuleArn=route.rule_arn, Actions=self._actions(target_group_arn, parked)
            )
        return Route(
            route.service, route.alias, route.rule_arn, route.priority, target_group_arn, parked
        )

    def point(
        self, service: str, alias: str, target_group_arn: str, *, parked: bool = False
    ) -> Route:
        """Send ``service@alias`` to ``target_group_arn`` (or, ``parked``, to the
        activator on its behalf): one ModifyRule, or CreateRule the first time."""
        if target_group_arn == self.activator:
            raise ValueError(
                f"route {service}@{alias}: the target must be the version's target group, "
                f"not the activator's (got {target_group_arn}). Pass parked=True instead."
            )
        patterns = path_patterns(service, alias)
        existing = [r for r in self.routes(service) if r.alias == alias]
        if existing:
            for duplicate in existing[1:]:  # left by a concurrent first point: never effective
                self._delete(duplicate)
            return self._modify(existing[0], target_group_arn, parked)
        return self._create(service, alias, patterns, target_group_arn, parked)

    def _create(
        self, service: str, alias: str, patterns: tuple[str, str], target: str, parked: bool
    ) -> Route:
        where = f"route {service}@{alias}"
        for _ in range(_CREATE_ATTEMPTS):
            taken = {
                int(str(r.get("Priority")))
                for r in self._rules()
                if str(r.get("Priority", "")).isdigit()
            }
            priority = next(
                (p for p in range(FIRST_PRIORITY, LAST_PRIORITY + 1) if p not in taken), None
            )
            if priority is None:
                raise AwsError(
                    f"{where}: listener {self.listener_arn} has no free rule priority between "
                    f"{FIRST_PRIORITY} and {LAST_PRIORITY}. Undeploy unused versions."
                )
            try:
                created = self.client.create_rule(
                    ListenerArn=self.listener_arn,
                    Priority=priority,
                    Conditions=[
                        {"Field": "path-pattern", "PathPatternConfig": {"Values": list(patterns)}}
                    ],
                    Actions=self._actions(target, parked),
                )
            except ClientError as error:
                if error_code(error) == "PriorityInUse":  # a concurrent writer took it
                    continue
                with aws_errors(where, "CreateRule"):
                    raise
            rule_arn = str(created["Rules"][0]["RuleArn"])
            return Route(service, alias, rule_arn, priority, target, parked)
        raise AwsError(
            f"{where}: CreateRule kept losing its priority to concurrent writers "
            f"({_CREATE_ATTEMPTS} attempts). Try again."
        )

    def park(self, target_group_arn: str) -> list[Route]:
        """Every route of the version behind ``target_group_arn`` now goes to the activator."""
        return [
            self._modify(r, target_group_arn, True)
            for r in self.routes()
            if r.target_group_arn == target_group_arn and not r.parked
        ]

    def healthy(self, target_group_arn: str) -> int:
        """How many of the target group's targets pass the ALB health check: a version
        is ready for traffic once one does, not merely once ECS reports a task running
        (a task runs before its server answers ``/readyz``)."""
        with aws_errors(f"target group {target_group_arn!r}", "DescribeTargetHealth"):
            found = self.client.describe_target_health(TargetGroupArn=target_group_arn)
        states = [d.get("TargetHealth", {}).get("State") for d in found["TargetHealthDescriptions"]]
        return sum(state == "healthy" for state in states)

    def wake(self, target_group_arn: str) -> list[Route]:
        """Every parked route of that version goes back to the version's own target group."""
        return [
            self._modify(r, target_group_arn, False)
            for r in self.routes()
            if r.target_group_arn == target_group_arn and r.parked
        ]

    def _delete(self, route: Route) -> None:
        try:
            self.client.delete_rule(RuleArn=route.rule_arn)
        except ClientError as error:
            if error_code(error) in _RULE_MISSING:  # already gone: what we wanted
                return
            with aws_errors(f"route {route.service}@{route.alias}", "DeleteRule"):
                raise

    def remove(self, service: str, alias: str) -> bool:
        """Delete the route of ``service@alias``; False if there was none."""
        found = [r for r in self.routes(service) if r.alias == alias]
        for route in found:
            self._delete(route)
        return bool(found)

    def remove_target(self, target_group_arn: str) -> list[Route]:
        """Delete every route to that version (it is being undeployed)."""
        found = [r for r in self.routes() if r.target_group_arn == target_group_arn]
        for route in found:
            self._delete(route)
        return found

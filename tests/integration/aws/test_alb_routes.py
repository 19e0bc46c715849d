"""AlbRoutes through the real boto3 ELBv2 client against moto: one listener rule per
(service, alias), pointed, repointed, parked and woken with one ModifyRule each."""

from __future__ import annotations

from typing import Any

import pytest

from flowhost.errors import NotFoundError
from flowhost.lambdas.aws import FIRST_PRIORITY, AlbRoutes, Route
from tests.integration.aws.support import Balancer


def forward(rule: dict[str, Any]) -> dict[str, int]:
    """The rule's forward action as {target group: weight}."""
    (action,) = rule["Actions"]
    assert action["Type"] == "forward"
    return {g["TargetGroupArn"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}


def patterns(rule: dict[str, Any]) -> list[str]:
    (condition,) = rule["Conditions"]
    assert condition["Field"] == "path-pattern"
    return sorted(condition["PathPatternConfig"]["Values"])


class CountingClient:
    """The ELBv2 client, counting the calls that change rules."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("create_rule", "modify_rule", "delete_rule"):
            self.calls.append(name)
        return getattr(self.client, name)


def test_point_creates_the_rule_then_repoints_it_in_one_call(balancer: Balancer) -> None:
    v1, v2 = balancer.target_group(), balancer.target_group()
    client = CountingClient(balancer.client)
    routes = AlbRoutes(client, balancer.listener, balancer.activator)

    first = routes.point("sentiment", "production", v1)
    assert client.calls == ["create_rule"]
    assert first == Route("sentiment", "production", first.rule_arn, FIRST_PRIORITY, v1, False)
    (rule,) = balancer.rules()
    assert patterns(rule) == ["/sentiment", "/sentiment/*"]
    assert rule["Priority"] == str(FIRST_PRIORITY)
    assert forward(rule) == {v1: 1, balancer.activator: 0}

    client.calls.clear()
    second = routes.point("sentiment", "production", v2)
    assert client.calls == ["modify_rule"]  # atomic: ALB swaps the action in one call
    assert (second.rule_arn, second.priority) == (first.rule_arn, first.priority)
    (rule,) = balancer.rules()
    assert forward(rule) == {v2: 1, balancer.activator: 0}
    assert routes.get("sentiment", "production") == second


def test_aliases_and_versions_get_their_own_paths_and_priorities(
    routes: AlbRoutes, balancer: Balancer
) -> None:
    v1, v2 = balancer.target_group(), balancer.target_group()
    routes.point("sentiment", "production", v1)
    routes.point("sentiment", "canary", v2)
    routes.point("sentiment", "v2", v2)
    routes.point("other", "production", v1)
    by_priority = sorted(balancer.rules(), key=lambda r: int(r["Priority"]))
    assert [patterns(r) for r in by_priority] == [
        ["/sentiment", "/sentiment/*"],
        ["/sentiment@canary", "/sentiment@canary/*"],
        ["/sentiment@v2", "/sentiment@v2/*"],
        ["/other", "/other/*"],
    ]
    assert [int(r["Priority"]) for r in by_priority] == [1000, 1001, 1002, 1003]
    assert [(r.alias, r.target_group_arn) for r in routes.routes("sentiment")] == [
        ("production", v1), ("canary", v2), ("v2", v2),
    ]  # fmt: skip


def test_rules_outside_the_band_are_left_alone_and_gaps_are_reused(
    routes: AlbRoutes, balancer: Balancer
) -> None:
    v1 = balancer.target_group()
    platform_rule = balancer.client.create_rule(
        ListenerArn=balancer.listener, Priority=10,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/x/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": v1}],
    )["Rules"][0]["RuleArn"]  # fmt: skip
    a = routes.point("a", "production", v1)
    b = routes.point("b", "production", v1)
    assert (a.priority, b.priority) == (1000, 1001)
    assert routes.remove("a", "production")
    assert not routes.remove("a", "production")  # already gone
    assert routes.point("c", "production", v1).priority == 1000  # the gap, taken again
    assert [r.service for r in routes.routes()] == ["c", "b"]
    assert platform_rule in [r["RuleArn"] for r in balancer.rules()]


def test_a_priority_taken_concurrently_is_skipped(balancer: Balancer) -> None:
    v1 = balancer.target_group()

    class RacingClient(CountingClient):
        """Another writer takes priority 1000 between our read and our create."""

        raced = False

        def create_rule(self, **kwargs: Any) -> Any:
            if not self.raced:
                self.raced = True
                other = {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/y/*"]}}
                self.client.create_rule(**{**kwargs, "Conditions": [other]})
            return self.client.create_rule(**kwargs)

    routes = AlbRoutes(RacingClient(balancer.client), balancer.listener, balancer.activator)
    assert routes.point("svc", "production", v1).priority == 1001


def test_park_and_wake_move_every_route_of_a_version(routes: AlbRoutes, balancer: Balancer) -> None:
    v1, v2 = balancer.target_group(), balancer.target_group()
    routes.point("svc", "production", v1)
    routes.point("svc", "v1", v1)
    routes.point("svc", "v2", v2)

    parked = routes.park(v1)
    assert sorted(r.alias for r in parked) == ["production", "v1"]
    assert all(r.parked and r.target_group_arn == v1 for r in parked)
    weights = {tuple(patterns(r)): forward(r) for r in balancer.rules()}
    assert weights[("/svc", "/svc/*")] == {v1: 0, balancer.activator: 1}
    assert weights[("/svc@v2", "/svc@v2/*")] == {v2: 1, balancer.activator: 0}
    assert routes.park(v1) == []  # already parked: no calls

    # Promoting to a parked version keeps it parked until it is woken.
    assert routes.point("svc", "canary", v1, parked=True).parked
    woken = routes.wake(v1)
    assert sorted(r.alias for r in woken) == ["canary", "production", "v1"]
    assert not any(r.parked for r in routes.routes("svc"))


def test_remove_target_deletes_only_that_versions_rules(
    routes: AlbRoutes, balancer: Balancer
) -> None:
    v1, v2 = balancer.target_group(), balancer.target_group()
    routes.point("svc", "v1", v1)
    routes.point("svc", "production", v2)
    routes.point("svc", "v2", v2)
    assert [r.alias for r in routes.remove_target(v1)] == ["v1"]
    assert [r.alias for r in routes.routes("svc")] == ["production", "v2"]


def test_missing_routes_and_bad_targets_say_what_to_do(
    routes: AlbRoutes, balancer: Balancer
) -> None:
    with pytest.raises(NotFoundError, match=r"^route svc@canary: no rule on listener .* "
                       r"\(got none matching '/svc@canary/\*'\)\. Promote a version"):  # fmt: skip
        routes.get("svc", "canary")
    assert routes.find("svc", "canary") is None
    with pytest.raises(ValueError, match=r"not the activator's .*Pass parked=True instead"):
        routes.point("svc", "production", balancer.activator)
    with pytest.raises(ValueError, match=r"longer than ALB's 128 characters \(got 130\)"):
        routes.point("s" * 63, "a" * 63, balancer.target_group())
    assert balancer.rules() == []


def test_a_missing_listener_is_not_found(balancer: Balancer) -> None:
    routes = AlbRoutes(balancer.client, balancer.listener + "0", balancer.activator)
    with pytest.raises(
        NotFoundError, match=r"^ALB listener arn:.*: not found \(got ListenerNotFound\)"
    ):
        routes.routes()

"""Security groups: no ingress from anywhere except TCP 80/443 on the marked public edge."""

from typing import Any

import pytest

from policies.engine import Resource
from policies.model import EDGE_TAG
from policies.rules import network
from policies.rules.network import INGRESS_RULE, SECURITY_GROUP, SECURITY_GROUP_RULE, is_open_cidr
from tests.policies.support import TAGS, messages, res, run

EDGE_TAGS = {**TAGS, EDGE_TAG: "public"}
HTTPS = {"protocol": "tcp", "fromPort": 443, "toPort": 443}


def group(
    name: str = "svc", ingress: list[dict[str, Any]] | None = None, *, edge: bool = False
) -> Resource:
    props = {"vpcId": "vpc-1", "ingress": ingress or [], "tags": EDGE_TAGS if edge else TAGS}
    return res(SECURITY_GROUP, name, props, id=f"sg-{name}")


@pytest.mark.parametrize(
    ("cidr", "open_"),
    [
        ("0.0.0.0/0", True),
        ("::/0", True),
        ("0.0.0.0/00", True),
        ("10.0.0.0/16", False),
        ("x", False),
    ],
)
def test_open_cidrs(cidr: str, open_: bool) -> None:
    assert is_open_cidr(cidr) is open_


def test_ingress_from_the_vpc_or_another_group_passes() -> None:
    sg = group(
        ingress=[{**HTTPS, "cidrBlocks": ["10.0.0.0/16"]}, {**HTTPS, "securityGroups": ["sg-alb"]}]
    )
    assert run(network.RULES, [sg]) == []


@pytest.mark.parametrize(("key", "cidr"), [("cidrBlocks", "0.0.0.0/0"), ("ipv6CidrBlocks", "::/0")])
def test_inline_ingress_from_anywhere_fails(key: str, cidr: str) -> None:
    found = messages(run(network.RULES, [group(ingress=[{**HTTPS, key: [cidr]}])]))
    assert len(found) == 1
    assert "ingress[0]" in found[0]
    assert cidr in found[0]
    assert EDGE_TAG in found[0]


def test_the_public_edge_may_accept_https_from_anywhere() -> None:
    assert (
        run(network.RULES, [group(ingress=[{**HTTPS, "cidrBlocks": ["0.0.0.0/0"]}], edge=True)])
        == []
    )


def test_the_public_edge_still_may_not_open_other_ports() -> None:
    ssh = {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
    found = messages(run(network.RULES, [group(ingress=[ssh], edge=True)]))
    assert len(found) == 1
    assert "TCP 80 or 443" in found[0]


def test_separate_ingress_rule_from_anywhere_fails() -> None:
    sg = group()
    rule = res(
        INGRESS_RULE,
        "svc-https",
        {
            "securityGroupId": sg.id,
            "ipProtocol": "tcp",
            "fromPort": 443,
            "toPort": 443,
            "cidrIpv4": "0.0.0.0/0",
        },
    )
    assert [v.resource_name for v in run(network.RULES, [sg, rule])] == ["svc-https"]


def test_separate_ingress_rule_on_the_edge_group_passes() -> None:
    edge = group("edge", edge=True)
    by_id = res(
        INGRESS_RULE,
        "by-id",
        {
            "securityGroupId": edge.id,
            "ipProtocol": "tcp",
            "fromPort": 443,
            "toPort": 443,
            "cidrIpv6": "::/0",
        },
    )
    by_dep = res(
        INGRESS_RULE,
        "by-dep",
        {"ipProtocol": "tcp", "fromPort": 80, "toPort": 80, "cidrIpv4": "0.0.0.0/0"},
        dependencies=[edge.urn],
    )
    assert run(network.RULES, [edge, by_id, by_dep]) == []


def test_security_group_rule_ingress_from_anywhere_fails_and_egress_passes() -> None:
    sg = group()
    common = {
        "securityGroupId": sg.id,
        "protocol": "tcp",
        "fromPort": 443,
        "toPort": 443,
        "cidrBlocks": ["0.0.0.0/0"],
    }
    ingress = res(SECURITY_GROUP_RULE, "in", {**common, "type": "ingress"})
    egress = res(SECURITY_GROUP_RULE, "out", {**common, "type": "egress"})
    assert [v.resource_name for v in run(network.RULES, [sg, ingress, egress])] == ["in"]


def test_security_group_rule_on_the_edge_group_passes() -> None:
    edge = group("edge", edge=True)
    rule = res(
        SECURITY_GROUP_RULE,
        "in",
        {"type": "ingress", "securityGroupId": edge.id, **HTTPS, "cidrBlocks": ["0.0.0.0/0"]},
    )
    assert run(network.RULES, [edge, rule]) == []

"""Security groups: nothing accepts traffic from anywhere except the marked public edge,
and the edge only on HTTP(S)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from policies.model import (
    EDGE_TAG,
    EDGE_TAG_VALUE,
    PolicyConfig,
    Resource,
    StackRule,
    as_list,
    by_type,
    refers_to,
)

SECURITY_GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP_RULE: Final = "aws:ec2/securityGroupRule:SecurityGroupRule"
EDGE_PORTS: Final = frozenset({80, 443})


def is_open_cidr(cidr: object) -> bool:
    """0.0.0.0/0, ::/0 and every other spelling of "the whole internet"."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def is_edge(resource: Resource) -> bool:
    tags = resource.props.get("tags")
    return isinstance(tags, Mapping) and tags.get(EDGE_TAG) == EDGE_TAG_VALUE


def _open_cidrs(props: Mapping[str, Any], *keys: str) -> list[str]:
    return [c for key in keys for c in as_list(props.get(key)) if is_open_cidr(c)]


def _web_only(props: Mapping[str, Any], protocol_key: str) -> bool:
    """TCP on exactly port 80 or exactly 443."""
    protocol = str(props.get(protocol_key, "")).lower()
    low, high = props.get("fromPort"), props.get("toPort")
    return protocol in ("tcp", "6") and low == high and low in EDGE_PORTS


def _message(resource: Resource, what: str, cidrs: list[str], *, edge: bool) -> str:
    if edge:
        return (
            f"{resource.where}: {what} opens {cidrs} on something other than TCP 80 or 443. "
            "The public edge accepts only HTTP(S) from anywhere; narrow the port range."
        )
    return (
        f"{resource.where}: {what} allows ingress from {cidrs}. Allow only the load "
        f"balancer's security group or the VPC CIDR; only a security group tagged "
        f"{EDGE_TAG}={EDGE_TAG_VALUE!r} (the public edge) may accept traffic from anywhere."
    )


def check_no_open_ingress(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[tuple[Resource, str]]:
    del config
    groups = by_type(resources, SECURITY_GROUP)

    def edge_group(rule: Resource) -> bool:
        return is_edge(rule) or any(
            is_edge(g) and refers_to(rule, "securityGroupId", g) for g in groups
        )

    for group in groups:
        edge = is_edge(group)
        for i, ingress in enumerate(as_list(group.props.get("ingress"))):
            if not isinstance(ingress, Mapping):
                continue
            cidrs = _open_cidrs(ingress, "cidrBlocks", "ipv6CidrBlocks")
            if cidrs and not (edge and _web_only(ingress, "protocol")):
                yield (group, _message(group, f"ingress[{i}]", cidrs, edge=edge))
    for rule in by_type(resources, INGRESS_RULE):
        cidrs = _open_cidrs(rule.props, "cidrIpv4", "cidrIpv6")
        edge = bool(cidrs) and edge_group(rule)
        if cidrs and not (edge and _web_only(rule.props, "ipProtocol")):
            yield (rule, _message(rule, "the rule", cidrs, edge=edge))
    for rule in by_type(resources, SECURITY_GROUP_RULE):
        if rule.props.get("type") != "ingress":
            continue
        cidrs = _open_cidrs(rule.props, "cidrBlocks", "ipv6CidrBlocks")
        edge = bool(cidrs) and edge_group(rule)
        if cidrs and not (edge and _web_only(rule.props, "protocol")):
            yield (rule, _message(rule, "the rule", cidrs, edge=edge))


RULES: Final = (
    StackRule(
        name="ec2-no-open-ingress",
        description="No security group ingress from 0.0.0.0/0 or ::/0, except TCP 80/443 on "
        f"security groups tagged {EDGE_TAG}={EDGE_TAG_VALUE}.",
        check=check_no_open_ingress,
    ),
)

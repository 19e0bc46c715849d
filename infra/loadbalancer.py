"""The internal Application Load Balancer that sync traffic goes through.

Internal only (in the private subnets, security group open to the VPC's CIDR), reached
from API Gateway through a VPC link and, for long synchronous requests (up to 20
minutes, past API Gateway's 30 s), directly from inside the VPC. The default listener
answers 404; user stacks add one rule per alias pointing at a version's target group
(or at the activator while that version is at zero).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from flowhost.infra.tags import Tagging

__all__ = ["IDLE_TIMEOUT_SECONDS", "LoadBalancer", "LoadBalancerArgs"]

IDLE_TIMEOUT_SECONDS = 1200  # 20 minutes: the longest synchronous request
NOT_FOUND = json.dumps({"error": {"code": "not_found", "message": "no such service route"}})


@dataclass(frozen=True)
class LoadBalancerArgs:
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    tagging: Tagging


class LoadBalancer(pulumi.ComponentResource):
    """Internal ALB and its HTTP listener with a fixed 404 default action."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            internal=True,
            load_balancer_type="application",
            subnets=list(args.subnet_ids),
            security_groups=[args.security_group_id],
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            drop_invalid_header_fields=True,
            enable_deletion_protection=False,
            tags=args.tagging.tags(f"{name}-alb"),
            opts=child,
        )
        listener = aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {
                    "type": "fixed-response",
                    "fixed_response": {
                        "content_type": "application/json",
                        "status_code": "404",
                        "message_body": NOT_FOUND,
                    },
                }
            ],
            tags=args.tagging.tags(f"{name}-http"),
            opts=child,
        )
        self.alb_arn = alb.arn
        self.alb_dns_name = alb.dns_name
        self.listener_arn = listener.arn
        self.register_outputs({"alb_arn": alb.arn, "listener_arn": listener.arn})

"""The authenticated public edge: an API Gateway HTTP API.

Control-plane and async-request routes go to the API Lambda; everything else
(synchronous service calls) goes through a VPC link to the internal ALB's listener.
Every route needs the stack's authorizer: IAM (SigV4) or a JWT issuer and audience.
The API is the one public thing in the platform and is tagged ``flowhost:edge=public``.

Built in two steps, because the control plane needs the API's URL (``FLOWHOST_PUBLIC_URL``,
for links in callbacks) and the API needs the control plane's Lambda: constructing
:class:`Edge` creates the API, its stage, authorizer and the VPC link to the ALB;
:meth:`Edge.connect_control_plane` then adds the Lambda integration, its routes and the
invoke permission, and registers the component's outputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from flowhost.infra.api_grants import JWT_READ_ROUTE, route_scopes
from flowhost.infra.tags import EDGE_TAG, Tagging
from flowhost.services.edge import EDGE_HEADER

__all__ = ["LAMBDA_ROUTES", "Edge", "EdgeArgs"]

LAMBDA_ROUTES = (
    "ANY /api/{proxy+}",
    "ANY /requests/{proxy+}",
    "POST /{service}/{endpoint}/async",
)
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "latencyMs": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
    },
    sort_keys=True,
)


@dataclass(frozen=True)
class EdgeArgs:
    authorizer: Literal["iam", "jwt"]
    jwt_issuer: str | None
    jwt_audience: Sequence[str]
    listener_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    vpc_link_security_group_id: pulumi.Input[str]
    log_retention_days: int
    tagging: Tagging


class Edge(pulumi.ComponentResource):
    """HTTP API, stage with access logs, authorizer, VPC link, integrations and routes.

    Call :meth:`connect_control_plane` once the API Lambda exists."""

    def __init__(
        self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Edge", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tagging.tags
        api = aws.apigatewayv2.Api(
            f"{name}-api",
            protocol_type="HTTP",
            description=f"flowhost {args.tagging.environment}: control plane and services",
            tags=tags(f"{name}-api", **{EDGE_TAG: "public"}),
            opts=child,
        )
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=f"/flowhost/{args.tagging.environment}/edge/access",
            retention_in_days=args.log_retention_days,
            tags=tags(f"{name}-access-logs"),
            opts=child,
        )
        aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=api.id,
            name="$default",
            auto_deploy=True,
            access_log_settings={
                "destination_arn": access_logs.arn,
                "format": ACCESS_LOG_FORMAT,
            },
            default_route_settings={
                "detailed_metrics_enabled": True,
                "throttling_burst_limit": 500,
                "throttling_rate_limit": 1000,
            },
            tags=tags(f"{name}-stage", **{EDGE_TAG: "public"}),
            opts=child,
        )

        authorization_type = "AWS_IAM"
        authorizer_id: pulumi.Input[str] | None = None
        if args.authorizer == "jwt":
            authorizer = aws.apigatewayv2.Authorizer(
                f"{name}-jwt",
                api_id=api.id,
                authorizer_type="JWT",
                identity_sources=["$request.header.Authorization"],
                jwt_configuration={
                    "issuer": args.jwt_issuer,
                    "audiences": list(args.jwt_audience),
                },
                opts=child,
            )
            authorization_type, authorizer_id = "JWT", authorizer.id

        self._api = api
        self._authorization_type, self._authorizer_id = authorization_type, authorizer_id
        self.api_id = api.id
        self.api_url = api.api_endpoint  # the $default stage serves at the endpoint itself

        link = aws.apigatewayv2.VpcLink(
            f"{name}-vpc-link",
            subnet_ids=list(args.subnet_ids),
            security_group_ids=[args.vpc_link_security_group_id],
            tags=tags(f"{name}-vpc-link"),
            opts=child,
        )
        services = aws.apigatewayv2.Integration(
            f"{name}-services",
            api_id=api.id,
            integration_type="HTTP_PROXY",
            integration_method="ANY",
            integration_uri=args.listener_arn,
            connection_type="VPC_LINK",
            connection_id=link.id,
            payload_format_version="1.0",
            timeout_milliseconds=30000,
            # Tells the activator and instances the caller is behind the 30 s limit, so a
            # call that cannot be answered in time is held (flowhost.services.edge).
            request_parameters={f"overwrite:header.{EDGE_HEADER}": "1"},
            opts=child,
        )
        self._route("$default", services)

    def connect_control_plane(
        self, function_name: pulumi.Input[str], function_invoke_arn: pulumi.Input[str]
    ) -> None:
        """The API Lambda's integration, its routes (:data:`LAMBDA_ROUTES`) and the
        permission for API Gateway to invoke it; then the component's outputs."""
        name, api = self._name, self._api
        child = pulumi.ResourceOptions(parent=self)
        control_plane = aws.apigatewayv2.Integration(
            f"{name}-control-plane",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_uri=function_invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=29000,
            opts=child,
        )
        jwt = self._authorization_type == "JWT"  # reads get their own route, for their scope
        for key in (JWT_READ_ROUTE, *LAMBDA_ROUTES) if jwt else LAMBDA_ROUTES:
            self._route(key, control_plane)
        aws.lambda_.Permission(
            f"{name}-invoke-api-function",
            action="lambda:InvokeFunction",
            function=function_name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, "/*/*"),
            opts=child,
        )
        self.register_outputs({"api_url": api.api_endpoint})

    def _route(self, key: str, integration: aws.apigatewayv2.Integration) -> None:
        aws.apigatewayv2.Route(
            f"{self._name}-route-{_slug(key)}",
            api_id=self._api.id,
            route_key=key,
            target=pulumi.Output.concat("integrations/", integration.id),
            authorization_type=self._authorization_type,
            authorizer_id=self._authorizer_id,
            # JWT: the role's scopes (flowhost.infra.api_grants); IAM: the role's policy
            authorization_scopes=(
                list(route_scopes(key)) if self._authorization_type == "JWT" else None
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


def _slug(route_key: str) -> str:
    """A stable resource-name key for a route: ``ANY /api/{proxy+}`` -> ``any-api-proxy``."""
    words = "".join(c if c.isalnum() else " " for c in route_key.lower()).split()
    return "-".join(words) or "default"

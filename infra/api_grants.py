"""Who may call which route of the public API: managed policies for three roles.

On an IAM-authorized API (``flowhost:authorizer: iam``) a caller needs ``execute-api:Invoke``
on ``arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/<path>`` for the
request it signs. The platform creates one managed policy per role, each made of
route-scoped statements (the pack's ``api-grants-route-scoped`` rule refuses a grant on
``*`` or on the whole API):

- ``readers``: every ``GET`` of the control plane (``/api/*``).
- ``deployers``: what readers have, plus each mutating control-plane route: upload a
  package, deploy, audit, promote, roll back, undeploy, register a named environment
  (:data:`CONTROL_PLANE_ROUTES`).
- ``invokers``: the service routes (``/<service>/<endpoint>``, ``/<service>@<ref>/...``,
  their ``/async`` variants, held calls) and the async results (``GET /requests/*``);
  with ``flowhost:invokerServices`` only those services' routes. A Deny on ``/api/*``
  keeps the service grants off the control plane whatever a method wildcard would match.

:data:`CONTROL_PLANE_ROUTES` is the one list of the control plane's routes and their role;
``tests/infra/test_api_grants.py`` holds it against the control-plane app's OpenAPI, so a
route added there without a role here fails the tests. With a JWT authorizer the same
split is made by scopes (:func:`route_scopes`, applied to the routes in
:mod:`flowhost.infra.edge`): ``flowhost/read`` opens the control plane's ``GET`` routes,
``flowhost/deploy`` all of the control plane, ``flowhost/invoke`` the service routes and
async results (not per service: a token's scopes name no service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_aws as aws

from flowhost.infra.iam import Statement, policy_json
from flowhost.infra.tags import Tagging

__all__ = [
    "CONTROL_PLANE_ROUTES",
    "JWT_READ_ROUTE",
    "ROLES",
    "SCOPES",
    "ApiGrants",
    "ApiGrantsArgs",
    "Role",
    "grant_statements",
    "route_pattern",
    "route_scopes",
]

Role = Literal["readers", "deployers", "invokers"]
ROLES: Final[tuple[Role, ...]] = ("readers", "deployers", "invokers")
STAGE: Final = "$default"  # the one stage of the HTTP API (infra/edge.py)

# Every control-plane route (method, path as the app declares it) and the role it is for.
CONTROL_PLANE_ROUTES: Final[tuple[tuple[str, str, Role], ...]] = (
    ("GET", "/api/healthz", "readers"),
    ("GET", "/api/whoami", "readers"),
    ("GET", "/api/drift", "readers"),
    ("GET", "/api/services", "readers"),
    ("GET", "/api/services/{service}", "readers"),
    ("GET", "/api/services/{service}/events", "readers"),
    ("GET", "/api/services/{service}/versions/{number}", "readers"),
    ("GET", "/api/services/{service}/versions/{number}/logs", "readers"),
    ("GET", "/api/services/{service}/versions/{number}/openapi.json", "readers"),
    ("GET", "/api/requests/{request_id}/detail", "readers"),
    ("GET", "/api/environments", "readers"),
    ("GET", "/api/environments/{name}", "readers"),
    ("GET", "/api/environments/{name}/revisions/{revision}", "readers"),
    ("GET", "/api/environments/{name}/revisions/{revision}/build", "readers"),
    ("PUT", "/api/packages/{digest}", "deployers"),
    ("POST", "/api/services/{service}/versions", "deployers"),
    ("POST", "/api/services/{service}/versions/{number}/audits", "deployers"),
    ("POST", "/api/services/{service}/aliases/{alias}", "deployers"),
    ("POST", "/api/services/{service}/aliases/{alias}/rollback", "deployers"),
    ("DELETE", "/api/services/{service}/versions/{number}", "deployers"),
    ("PUT", "/api/environments/{name}", "deployers"),
    ("POST", "/api/environments/{name}/revisions/{revision}/build", "deployers"),
)
# JWT authorizer: the scopes a route accepts (any one of them), by the role it is for.
SCOPES: Final[dict[Role, tuple[str, ...]]] = {
    "readers": ("flowhost/read", "flowhost/deploy"),
    "deployers": ("flowhost/deploy",),
    "invokers": ("flowhost/invoke",),
}
_SERVICE_METHODS: Final = ("GET", "POST")  # what the service routes answer
# With a JWT authorizer the control plane's reads get a route of their own, so that
# ``flowhost/read`` opens them and not the writes (API Gateway picks the most specific).
JWT_READ_ROUTE: Final = "GET /api/{proxy+}"


def route_scopes(route_key: str) -> tuple[str, ...]:
    """The scopes (any one) a JWT must carry for an API Gateway route of the edge."""
    if route_key == JWT_READ_ROUTE:
        return SCOPES["readers"]
    if route_key.split(" ", 1)[-1].startswith("/api/"):
        return SCOPES["deployers"]
    return SCOPES["invokers"]  # services, their async variants and results, held calls


def route_pattern(method: str, path: str) -> str:
    """``POST /api/services/{service}/versions`` -> ``POST/api/services/*/versions``: the
    method and path part of an ``execute-api`` ARN (a ``{parameter}`` becomes ``*``)."""
    parts = ["*" if p.startswith("{") and p.endswith("}") else p for p in path.split("/")]
    return f"{method}{'/'.join(parts)}"


def _service_patterns(services: Sequence[str]) -> list[str]:
    if not services:  # every service: any path, with /api/* denied below
        return [f"{m}/*" for m in _SERVICE_METHODS]
    found: list[str] = []
    for service in services:
        for ref in (service, f"{service}@*"):
            found += [f"{m}/{ref}/*" for m in _SERVICE_METHODS]
            found.append(f"POST/requests/hold/{ref}/*")  # a held call (flowhost.services.edge)
    return found


def grant_patterns(role: Role, services: Sequence[str] = ()) -> list[str]:
    """The ``METHOD/path`` patterns ``role`` may invoke (``services``: invokers' filter)."""
    if role == "readers":
        return ["GET/api/*"]
    if role == "deployers":
        writes = [route_pattern(m, p) for m, p, r in CONTROL_PLANE_ROUTES if r == "deployers"]
        return ["GET/api/*", *writes]
    return [*_service_patterns(services), "GET/requests/*"]


def grant_statements(
    role: Role, execution_arn: pulumi.Input[str], services: Sequence[str] = ()
) -> list[Statement]:
    """The role's statements on the API whose execution ARN is ``execution_arn``."""

    def arn(pattern: str) -> pulumi.Output[str]:
        return pulumi.Output.concat(execution_arn, f"/{STAGE}/", pattern)

    allow = Statement(
        f"Invoke{role.capitalize()}Routes",
        ["execute-api:Invoke"],
        [arn(p) for p in grant_patterns(role, services)],
    )
    if role != "invokers":
        return [allow]
    deny = Statement("NoControlPlane", ["execute-api:Invoke"], [arn("*/api/*")], effect="Deny")
    return [allow, deny]


@dataclass(frozen=True)
class ApiGrantsArgs:
    execution_arn: pulumi.Input[str]
    invoker_services: Sequence[str]
    tagging: Tagging


class ApiGrants(pulumi.ComponentResource):
    """``<name>-readers``, ``<name>-deployers``, ``<name>-invokers``: managed policies to
    attach to the people and machines of each role (:attr:`policy_arns`)."""

    policy_arns: dict[Role, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ApiGrantsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:ApiGrants", name, None, opts)
        env = args.tagging.environment
        what = {
            "readers": "read the control plane",
            "deployers": "read the control plane, deploy, audit, promote, roll back, undeploy",
            "invokers": "call services and read async results",
        }
        self.policy_arns = {}
        for role in ROLES:
            policy = aws.iam.Policy(
                f"{name}-{role}",
                description=f"flowhost {env} API {role}: {what[role]}",
                policy=policy_json(
                    grant_statements(role, args.execution_arn, args.invoker_services)
                ),
                tags=args.tagging.tags(f"{name}-{role}"),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.policy_arns[role] = policy.arn
        self.register_outputs({f"{role}_policy_arn": arn for role, arn in self.policy_arns.items()})

"""The control plane on Lambda: the API, the activator and the scaler.

All three run the one bundle (``build/lambda.zip``, built by the project's bundle
script), inside the VPC's private subnets, with X-Ray tracing active, JSON logs into a
log group created here with the stack's retention, and a role of their own whose
inline policy grants only what that function does (see :mod:`flowhost.infra.grants`), plus
the statements the platform adds per function (``extra_grants``: the Metaflow settings').

The API function invokes itself asynchronously to advance deploys past its own timeout:
its role may invoke that one function, by an ARN built from account, region and name (the
function's own ``arn`` output would make the role depend on the function it serves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from flowhost.infra.grants import Grants
from flowhost.infra.iam import Statement, assume_role_policy, policy_json
from flowhost.infra.tags import Tagging

__all__ = ["HANDLERS", "RUNTIME", "Functions", "FunctionsArgs", "self_invocation"]

RUNTIME = "python3.11"
ARCHITECTURE = "x86_64"
# Module-level handlers in the bundle (flowhost.lambdas); one place to change them.
HANDLERS = {
    "api": "flowhost.lambdas.handler.handler",
    "activator": "flowhost.lambdas.handler.activator",
    "scaler": "flowhost.lambdas.handler.scaler",
}
# AWS's policy for a Lambda's network interfaces in a VPC (ec2:CreateNetworkInterface
# and friends, which AWS documents with Resource "*").
VPC_ACCESS_POLICY = "AWSLambdaVPCAccessExecutionRole"
TIMEOUTS = {"api": 29, "activator": 300, "scaler": 60}  # API Gateway cuts off at 30 s


@dataclass(frozen=True)
class FunctionsArgs:
    bundle_path: str
    memory_mb: int
    log_retention_days: int
    scaler_schedule: str
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]
    grants: Grants
    tagging: Tagging
    # function key ("api", "activator", "scaler") -> statements added to its role
    extra_grants: Mapping[str, Sequence[Statement]] = field(default_factory=dict)


def self_invocation(grants: Grants, function_name: str) -> Statement:
    """``lambda:InvokeFunction`` on one function only (its unqualified ARN)."""
    return Statement(
        "InvokeItself",
        ["lambda:InvokeFunction"],
        [grants.account.arn("lambda", f"function:{function_name}")],
    )


class Functions(pulumi.ComponentResource):
    """Three Lambdas with their roles, log groups, the ALB target and the schedule."""

    api: aws.lambda_.Function
    activator: aws.lambda_.Function
    scaler: aws.lambda_.Function

    def __init__(
        self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("flowhost:platform:Functions", name, None, opts)
        self._name = name
        self._args = args
        self._partition = aws.get_partition_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).partition
        self.roles: dict[str, aws.iam.Role] = {}
        child = pulumi.ResourceOptions(parent=self)
        # The activator is a load balancer target: rules point at it while a version is
        # at zero. Created first so every function knows its ARN.
        self.activator_target_group = aws.lb.TargetGroup(
            f"{name}-activator",
            target_type="lambda",
            lambda_multi_value_headers_enabled=True,
            tags=args.tagging.tags(f"{name}-activator"),
            opts=child,
        )
        self._env = {
            **args.environment,
            "FLOWHOST_ACTIVATOR_TARGET_GROUP_ARN": self.activator_target_group.arn,
        }
        grants = args.grants
        self.api = self._function("api", [*grants.api(), self_invocation(grants, f"{name}-api")])
        # The activator finishes a wake in a second invocation of itself while the edge
        # caller it held follows the 303 (flowhost.services.edge).
        self.activator = self._function(
            "activator", [*grants.activator(), self_invocation(grants, f"{name}-activator")]
        )
        self.scaler = self._function("scaler", grants.scaler(), reserved_concurrency=1)

        allow_alb = aws.lambda_.Permission(
            f"{name}-activator-from-alb",
            action="lambda:InvokeFunction",
            function=self.activator.name,
            principal="elasticloadbalancing.amazonaws.com",
            source_arn=self.activator_target_group.arn,
            opts=child,
        )
        aws.lb.TargetGroupAttachment(
            f"{name}-activator",
            target_group_arn=self.activator_target_group.arn,
            target_id=self.activator.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[allow_alb]),
        )

        # The scaler runs on a schedule: idle versions go to zero, backlogs scale out.
        rule = aws.cloudwatch.EventRule(
            f"{name}-scaler-schedule",
            description="flowhost scaler tick",
            schedule_expression=args.scaler_schedule,
            tags=args.tagging.tags(f"{name}-scaler-schedule"),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-scaler-schedule",
            rule=rule.name,
            arn=self.scaler.arn,
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-scaler-from-events",
            action="lambda:InvokeFunction",
            function=self.scaler.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=child,
        )
        self.register_outputs(
            {
                "api_arn": self.api.arn,
                "activator_target_group_arn": self.activator_target_group.arn,
            }
        )

    def function(self, key: str) -> aws.lambda_.Function:
        """The function ``key`` of ``HANDLERS`` ("api", "activator" or "scaler")."""
        return {"api": self.api, "activator": self.activator, "scaler": self.scaler}[key]

    def _function(
        self, key: str, statements: list[Statement], reserved_concurrency: int = -1
    ) -> aws.lambda_.Function:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{name}-{key}"
        logs = aws.cloudwatch.LogGroup(
            f"{name}-{key}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            tags=args.tagging.tags(f"{name}-{key}-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-{key}-role",
            description=f"flowhost {key} Lambda",
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            tags=args.tagging.tags(f"{name}-{key}-role"),
            opts=child,
        )
        self.roles[key] = role
        vpc_access = aws.iam.RolePolicyAttachment(
            f"{name}-{key}-vpc-access",
            role=role.name,
            policy_arn=pulumi.Output.concat(
                "arn:", self._partition, ":iam::aws:policy/service-role/", VPC_ACCESS_POLICY
            ),
            opts=child,
        )
        own_logs = Statement(
            "OwnLogGroup",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [pulumi.Output.concat(logs.arn, ":*")],
        )
        extra = args.extra_grants.get(key, ())
        policy = aws.iam.RolePolicy(
            f"{name}-{key}-policy",
            role=role.id,
            policy=policy_json([own_logs, *statements, *extra]),
            opts=child,
        )
        return aws.lambda_.Function(
            f"{name}-{key}",
            name=function_name,
            description=f"flowhost control plane: {key}",
            role=role.arn,
            runtime=RUNTIME,
            architectures=[ARCHITECTURE],
            handler=HANDLERS[key],
            code=pulumi.FileArchive(args.bundle_path),
            memory_size=args.memory_mb,
            timeout=TIMEOUTS[key],
            reserved_concurrent_executions=reserved_concurrency,
            kms_key_arn=args.kms_key_arn,
            environment={"variables": {**self._env, "FLOWHOST_FUNCTION": key}},
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": [args.security_group_id],
            },
            tracing_config={"mode": "Active"},
            logging_config={"log_format": "JSON", "log_group": logs.name},
            tags=args.tagging.tags(function_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, policy, vpc_access]),
        )

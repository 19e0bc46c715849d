"""Creators for ECS (cluster, task definitions, services) and ELBv2 (load balancer,
listener, target groups, listener rules, attachments) in moto. Pulumi's camelCase inputs
become the APIs' shapes here."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.e2e.aws.creators import Created, autoname, best_effort, creates

if TYPE_CHECKING:
    from tests.e2e.aws.stack import StackBridge

__all__ = ["action", "condition"]


def _pascal(key: str) -> str:
    return key[0].upper() + key[1:]


# -- ECS -----------------------------------------------------------------------------------


@creates("aws:ecs/cluster:Cluster")
def _cluster(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    cluster = bridge.client("ecs").create_cluster(clusterName=autoname(name, inputs, 255))[
        "cluster"
    ]
    return Created(cluster["clusterArn"], {"arn": cluster["clusterArn"],
                                           "name": cluster["clusterName"]})  # fmt: skip


@creates("aws:ecs/taskDefinition:TaskDefinition")
def _task_definition(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    args: dict[str, Any] = {
        "family": inputs["family"],
        "containerDefinitions": json.loads(inputs["containerDefinitions"]),
    }
    for key in ("cpu", "memory", "networkMode", "executionRoleArn", "taskRoleArn"):
        if inputs.get(key) is not None:
            args[key] = str(inputs[key])
    if inputs.get("requiresCompatibilities"):
        args["requiresCompatibilities"] = list(inputs["requiresCompatibilities"])
    if inputs.get("runtimePlatform"):
        args["runtimePlatform"] = {_pascal(k)[0].lower() + _pascal(k)[1:]: v
                                   for k, v in inputs["runtimePlatform"].items()}  # fmt: skip
    found = bridge.client("ecs").register_task_definition(**args)["taskDefinition"]
    arn = found["taskDefinitionArn"]
    return Created(found["family"], {"arn": arn, "revision": found["revision"],
                                     "arnWithoutRevision": arn.rsplit(":", 1)[0]})  # fmt: skip


@creates("aws:ecs/service:Service")
def _service(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    args: dict[str, Any] = {
        "cluster": inputs["cluster"],
        "serviceName": autoname(name, inputs, 255),
        "taskDefinition": inputs["taskDefinition"],
        "desiredCount": int(inputs.get("desiredCount") or 0),
    }
    if inputs.get("launchType"):
        args["launchType"] = inputs["launchType"]
    strategies = inputs.get("capacityProviderStrategies") or []
    if strategies:
        args["capacityProviderStrategy"] = [
            {"capacityProvider": s["capacityProvider"], "weight": int(s.get("weight", 0)),
             "base": int(s.get("base", 0))} for s in strategies
        ]  # fmt: skip
    network = inputs.get("networkConfiguration")
    if network:
        args["networkConfiguration"] = {"awsvpcConfiguration": {
            "subnets": list(network.get("subnets", [])),
            "securityGroups": list(network.get("securityGroups", [])),
            "assignPublicIp": "ENABLED" if network.get("assignPublicIp") else "DISABLED",
        }}  # fmt: skip
    balancers = inputs.get("loadBalancers") or []
    if balancers:
        args["loadBalancers"] = [
            {"targetGroupArn": b["targetGroupArn"], "containerName": b["containerName"],
             "containerPort": int(b["containerPort"])} for b in balancers
        ]  # fmt: skip
    service = bridge.client("ecs").create_service(**args)["service"]
    return Created(service["serviceArn"], {"name": service["serviceName"],
                                           "arn": service["serviceArn"]})  # fmt: skip


# -- ELBv2 ---------------------------------------------------------------------------------


def action(spec: dict[str, Any]) -> dict[str, Any]:
    """A listener action from Pulumi's shape to ELBv2's."""
    kind = spec["type"]
    out: dict[str, Any] = {"Type": kind}
    if spec.get("order") is not None:
        out["Order"] = int(spec["order"])
    if kind == "fixed-response":
        fixed = spec["fixedResponse"]
        out["FixedResponseConfig"] = {
            "StatusCode": str(fixed["statusCode"]),
            **({"ContentType": fixed["contentType"]} if fixed.get("contentType") else {}),
            **({"MessageBody": fixed["messageBody"]} if fixed.get("messageBody") else {}),
        }
    elif kind == "forward":
        if spec.get("targetGroupArn"):
            out["TargetGroupArn"] = spec["targetGroupArn"]
        forward = spec.get("forward")
        if forward:
            out["ForwardConfig"] = {"TargetGroups": [
                {"TargetGroupArn": g["arn"], "Weight": int(g.get("weight", 1))}
                for g in forward.get("targetGroups", [])
            ]}  # fmt: skip
    elif kind == "redirect":
        out["RedirectConfig"] = {_pascal(k): str(v) for k, v in spec["redirect"].items()}
    return out


CONDITIONS = {
    "pathPattern": ("path-pattern", "PathPatternConfig"),
    "hostHeader": ("host-header", "HostHeaderConfig"),
    "httpRequestMethod": ("http-request-method", "HttpRequestMethodConfig"),
    "sourceIp": ("source-ip", "SourceIpConfig"),
}


def condition(spec: dict[str, Any]) -> dict[str, Any]:
    """A listener rule condition from Pulumi's shape to ELBv2's."""
    for key, (field, config) in CONDITIONS.items():
        if spec.get(key):
            return {"Field": field, config: {"Values": list(spec[key]["values"])}}
    if spec.get("httpHeader"):
        header = spec["httpHeader"]
        return {
            "Field": "http-header",
            "HttpHeaderConfig": {
                "HttpHeaderName": header["httpHeaderName"],
                "Values": list(header["values"]),
            },
        }
    if spec.get("queryStrings"):
        return {
            "Field": "query-string",
            "QueryStringConfig": {
                "Values": [
                    {"Key": q.get("key", ""), "Value": q["value"]} for q in spec["queryStrings"]
                ]
            },
        }
    raise ValueError(f"listener rule condition not understood: {spec}")  # fmt: skip


@creates("aws:lb/loadBalancer:LoadBalancer")
def _load_balancer(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    found = bridge.client("elbv2").create_load_balancer(
        Name=autoname(name, inputs, 32), Subnets=list(inputs.get("subnets", [])),
        SecurityGroups=list(inputs.get("securityGroups", [])),
        Scheme="internal" if inputs.get("internal") else "internet-facing",
        Type=inputs.get("loadBalancerType", "application"),
    )["LoadBalancers"][0]  # fmt: skip
    arn = found["LoadBalancerArn"]
    return Created(arn, {"arn": arn, "dnsName": found["DNSName"], "name": found["LoadBalancerName"],
                         "arnSuffix": arn.split(":loadbalancer/", 1)[1],
                         "zoneId": found.get("CanonicalHostedZoneId", "")})  # fmt: skip


@creates("aws:lb/targetGroup:TargetGroup")
def _target_group(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    kind = inputs.get("targetType", "instance")
    args: dict[str, Any] = {"Name": autoname(name, inputs, 32), "TargetType": kind}
    if kind != "lambda":
        args |= {"Protocol": inputs.get("protocol", "HTTP"), "Port": int(inputs.get("port", 80)),
                 "VpcId": inputs["vpcId"]}  # fmt: skip
    check = inputs.get("healthCheck") or {}
    for key, target in (("path", "HealthCheckPath"), ("interval", "HealthCheckIntervalSeconds"),
                        ("timeout", "HealthCheckTimeoutSeconds"),
                        ("healthyThreshold", "HealthyThresholdCount"),
                        ("unhealthyThreshold", "UnhealthyThresholdCount")):  # fmt: skip
        if check.get(key) is not None:
            args[target] = check[key] if key == "path" else int(check[key])
    if check.get("matcher"):
        args["Matcher"] = {"HttpCode": str(check["matcher"])}
    found = bridge.client("elbv2").create_target_group(**args)["TargetGroups"][0]
    arn = found["TargetGroupArn"]
    return Created(arn, {"arn": arn, "name": found["TargetGroupName"],
                         "arnSuffix": arn.split(":", 5)[5]})  # fmt: skip


@creates("aws:lb/listener:Listener")
def _listener(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    found = bridge.client("elbv2").create_listener(
        LoadBalancerArn=inputs["loadBalancerArn"], Protocol=inputs.get("protocol", "HTTP"),
        Port=int(inputs.get("port", 80)),
        DefaultActions=[action(a) for a in inputs.get("defaultActions", [])],
    )["Listeners"][0]  # fmt: skip
    return Created(found["ListenerArn"], {"arn": found["ListenerArn"]})


@creates("aws:lb/listenerRule:ListenerRule")
def _listener_rule(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    found = bridge.client("elbv2").create_rule(
        ListenerArn=inputs["listenerArn"], Priority=int(inputs["priority"]),
        Conditions=[condition(c) for c in inputs.get("conditions", [])],
        Actions=[action(a) for a in inputs.get("actions", [])],
    )["Rules"][0]  # fmt: skip
    return Created(found["RuleArn"], {"arn": found["RuleArn"]})


@creates("aws:lb/targetGroupAttachment:TargetGroupAttachment")
def _attachment(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    target: dict[str, Any] = {"Id": inputs["targetId"]}
    if inputs.get("port") is not None:
        target["Port"] = int(inputs["port"])
    elbv2 = bridge.client("elbv2")
    best_effort(bridge, f"register {inputs['targetId']}", lambda: elbv2.register_targets(
        TargetGroupArn=inputs["targetGroupArn"], Targets=[target]))  # fmt: skip
    return Created(f"{inputs['targetGroupArn']}-{inputs['targetId']}", {})

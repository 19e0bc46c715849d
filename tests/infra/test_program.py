"""Component tier: the whole platform program under Pulumi mocks, for both stacks.

Exact resource counts per stack, the inputs that matter for security (ports, CIDRs,
encryption, public access, backups, tracing, retention), tags and stack outputs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pulumi

from flowhost.infra import EKS_OUTPUTS, OUTPUTS, PlatformConfig
from flowhost.infra.functions import HANDLERS
from flowhost.infra.gpu.cluster import GPU_LABEL
from flowhost.infra.network import INTERFACE_ENDPOINTS
from tests.infra.recording import ROOT, PlatformRun, Recorded

SG = "aws:ec2/securityGroup:SecurityGroup"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION = "aws:lambda/function:Function"

COMMON = {
    "aws:apigatewayv2/api:Api": 1,
    "aws:apigatewayv2/integration:Integration": 2,
    "aws:apigatewayv2/route:Route": 4,
    "aws:apigatewayv2/stage:Stage": 1,
    "aws:apigatewayv2/vpcLink:VpcLink": 1,
    "aws:cloudwatch/eventRule:EventRule": 1,
    "aws:cloudwatch/eventTarget:EventTarget": 1,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 6,
    "aws:ec2/vpc:Vpc": 1,
    "aws:ec2/vpcEndpoint:VpcEndpoint": 12,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": 1,
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": 1,
    "aws:ecr/repository:Repository": 1,
    "aws:ecs/cluster:Cluster": 1,
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders": 1,
    "aws:ecs/taskDefinition:TaskDefinition": 1,  # the environment build's
    "aws:iam/policy:Policy": 4,  # the boundary, and readers, deployers, invokers
    "aws:kms/alias:Alias": 1,
    "aws:kms/key:Key": 1,
    "aws:lambda/function:Function": 3,
    "aws:lambda/permission:Permission": 3,
    "aws:lb/listener:Listener": 1,
    "aws:lb/loadBalancer:LoadBalancer": 1,
    "aws:lb/targetGroup:TargetGroup": 1,
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": 1,
    "aws:rds/instance:Instance": 1,
    "aws:rds/parameterGroup:ParameterGroup": 1,
    "aws:rds/subnetGroup:SubnetGroup": 1,
    "aws:s3/bucket:Bucket": 1,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
    "aws:s3/bucketPolicy:BucketPolicy": 1,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
    "aws:s3/bucketVersioning:BucketVersioning": 1,
    "aws:secretsmanager/secret:Secret": 1,
    "aws:secretsmanager/secretVersion:SecretVersion": 1,
    "aws:sns/topic:Topic": 1,
    "aws:sns/topicSubscription:TopicSubscription": 1,
    "aws:ssm/parameter:Parameter": 1,
    "aws:xray/group:Group": 1,
    "aws:xray/samplingRule:SamplingRule": 1,
    "docker-build:index:Image": 1,
    "flowhost:platform:Alarms": 1,
    "flowhost:platform:ApiGrants": 1,
    "flowhost:platform:Boundary": 1,
    "flowhost:platform:CallbackSecret": 1,
    "flowhost:platform:Containers": 1,
    "flowhost:platform:Database": 1,
    "flowhost:platform:Edge": 1,
    "flowhost:platform:Encryption": 1,
    "flowhost:platform:EnvironmentBuilds": 1,
    "flowhost:platform:Functions": 1,
    "flowhost:platform:ImageCache": 1,
    "flowhost:platform:LoadBalancer": 1,
    "flowhost:platform:Network": 1,
    "flowhost:platform:Observability": 1,
    "flowhost:platform:Platform": 1,
    "flowhost:platform:RuntimeImage": 1,
    "flowhost:platform:Storage": 1,
}
# dev: 2 AZs, no NAT, no EKS, IAM authorizer.
DEV = COMMON | {
    "aws:cloudwatch/logGroup:LogGroup": 7,
    "aws:ec2/routeTable:RouteTable": 1,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": 2,
    "aws:ec2/securityGroup:SecurityGroup": 7,
    "aws:ec2/subnet:Subnet": 2,
    "aws:iam/role:Role": 5,  # three functions', two of environment builds
    "aws:iam/rolePolicy:RolePolicy": 5,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 3,
}
# prod: 3 AZs with public subnets and a NAT gateway, EKS with add-ons, JWT authorizer.
PROD = COMMON | {
    "aws:apigatewayv2/authorizer:Authorizer": 1,
    "aws:apigatewayv2/route:Route": 5,  # JWT: the control plane's reads get a route
    "aws:cloudwatch/logGroup:LogGroup": 9,
    "aws:ec2/eip:Eip": 1,
    "aws:ec2/internetGateway:InternetGateway": 1,
    "aws:ec2/natGateway:NatGateway": 1,
    "aws:ec2/route:Route": 1,
    "aws:ec2/routeTable:RouteTable": 2,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": 6,
    "aws:ec2/securityGroup:SecurityGroup": 8,
    "aws:ec2/subnet:Subnet": 6,
    "aws:eks/cluster:Cluster": 1,
    "aws:eks/nodeGroup:NodeGroup": 2,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": 1,
    "aws:iam/role:Role": 10,
    "aws:iam/rolePolicy:RolePolicy": 9,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 7,
    "flowhost:platform:GpuAddons": 1,
    "flowhost:platform:GpuCluster": 1,
    "kubernetes:core/v1:Namespace": 2,
    "kubernetes:helm.sh/v3:Release": 4,
    "pulumi:providers:kubernetes": 1,
}
# AWS resources that take no tags (sub-resources of a tagged parent, or untaggable).
UNTAGGED = {
    "aws:apigatewayv2/authorizer:Authorizer",
    "aws:apigatewayv2/integration:Integration",
    "aws:apigatewayv2/route:Route",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:ec2/route:Route",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:kms/alias:Alias",
    "aws:lambda/permission:Permission",
    "aws:lb/targetGroupAttachment:TargetGroupAttachment",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:secretsmanager/secretVersion:SecretVersion",
    "aws:sns/topicSubscription:TopicSubscription",
}


def one(run: PlatformRun, token: str) -> Recorded:
    (found,) = run.of_type(token)
    return found


def rules(sg: Recorded, direction: str) -> list[tuple[str, int, int, tuple[str, ...], int]]:
    """(protocol, from, to, CIDRs, number of source groups) per rule."""
    return [
        (
            r["protocol"],
            int(r["fromPort"]),
            int(r["toPort"]),
            tuple(r.get("cidrBlocks", ())),
            len(r.get("securityGroups", ())),
        )
        for r in sg.inputs.get(direction, [])
    ]


def test_exact_resource_counts(dev: PlatformRun, prod: PlatformRun) -> None:
    assert Counter(r.type for r in dev.resources) == DEV
    assert Counter(r.type for r in prod.resources) == PROD


def test_urns_are_unique_and_children_name_after_their_component(stack: PlatformRun) -> None:
    urns = [r.urn for r in stack.resources]
    assert len(urns) == len(set(urns))
    env = stack.outputs["environment"]
    for r in stack.resources:
        assert r.urn.startswith(f"urn:pulumi:{env}::flowhost-platform::")
        assert r.name.startswith(f"flowhost-{env}")
        if r.type != "flowhost:platform:Platform":
            assert "flowhost:platform:Platform$" in r.urn, r.urn


def test_every_taggable_resource_carries_the_required_tags(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    required = {
        "flowhost:environment": env,
        "flowhost:service": "platform",
        "owner": "platform-team",
    }
    checked = 0
    for r in stack.resources:
        if not r.type.startswith("aws:") or r.type in UNTAGGED:
            continue
        tags = r.inputs.get("tags", {})
        assert {k: tags.get(k) for k in required} == required, r.name
        checked += 1
    assert checked > 40


def test_only_the_api_is_the_public_edge(stack: PlatformRun) -> None:
    edge = sorted(
        r.type
        for r in stack.resources
        if r.type.startswith("aws:") and r.inputs.get("tags", {}).get("flowhost:edge")
    )
    assert edge == ["aws:apigatewayv2/api:Api", "aws:apigatewayv2/stage:Stage"]
    assert one(stack, "aws:apigatewayv2/api:Api").inputs["tags"]["flowhost:edge"] == "public"


def test_security_groups_open_nothing_to_the_internet(stack: PlatformRun) -> None:
    cidr = stack.outputs["vpcCidr"]
    sgs = {r.name.split("-", 2)[2]: r for r in stack.of_type(SG)}
    assert rules(sgs["net-endpoints"], "ingress") == [("tcp", 443, 443, (cidr,), 0)]
    assert rules(sgs["net-alb"], "ingress") == [("tcp", 80, 80, (cidr,), 0)]
    assert rules(sgs["net-alb"], "egress") == [("tcp", 8080, 8080, (cidr,), 0)]
    assert rules(sgs["net-services"], "ingress") == [("tcp", 8080, 8080, (), 1)]
    assert sgs["net-services"].inputs["ingress"][0]["securityGroups"] == [sgs["net-alb"].id]
    assert rules(sgs["net-database"], "ingress") == [("tcp", 5432, 5432, (), 1)]
    assert sgs["net-database"].inputs["ingress"][0]["securityGroups"] == [sgs["net-lambdas"].id]
    assert rules(sgs["net-lambdas"], "ingress") == []
    assert rules(sgs["net-vpc-link"], "ingress") == []
    assert rules(sgs["net-vpc-link"], "egress") == [("tcp", 80, 80, (cidr,), 0)]
    # Environment builds reach the package index (through the NAT gateway, if any).
    assert rules(sgs["net-builds"], "ingress") == []
    anywhere = ("0.0.0.0/0",)
    assert rules(sgs["net-builds"], "egress") == [
        ("tcp", 443, 443, anywhere, 0),
        ("tcp", 80, 80, anywhere, 0),
    ]
    if "eks-api" in sgs:
        assert rules(sgs["eks-api"], "ingress") == [("tcp", 443, 443, (cidr,), 0)]
    for sg in sgs.values():
        for rule in sg.inputs.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []), sg.name


def test_network_spans_the_configured_azs_with_endpoints(
    dev: PlatformRun, prod: PlatformRun
) -> None:
    for run, cidr, zones in ((dev, "10.40.0.0/16", 2), (prod, "10.50.0.0/16", 3)):
        vpc = one(run, "aws:ec2/vpc:Vpc")
        assert vpc.inputs["cidrBlock"] == cidr
        subnets = sorted(run.of_type("aws:ec2/subnet:Subnet"), key=lambda s: s.name)
        private = [s for s in subnets if "-private-" in s.name]
        assert len(private) == zones
        assert [s.inputs["availabilityZone"] for s in private] == [
            "us-east-1a",
            "us-east-1b",
            "us-east-1c",
        ][:zones]
        assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in private)
        assert run.outputs["privateSubnetIds"] == [s.id for s in private]
        endpoints = {
            e.inputs["serviceName"]: e.inputs["vpcEndpointType"]
            for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        }
        expected = {f"com.amazonaws.us-east-1.{s}": "Interface" for s in INTERFACE_ENDPOINTS}
        assert endpoints == expected | {"com.amazonaws.us-east-1.s3": "Gateway"}
    assert not dev.of_type("aws:ec2/natGateway:NatGateway")
    (egress,) = prod.of_type("aws:ec2/route:Route")
    assert egress.inputs["destinationCidrBlock"] == "0.0.0.0/0"


def test_bucket_is_encrypted_versioned_private_and_expires_ttls(stack: PlatformRun) -> None:
    key = one(stack, "aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    sse = one(
        stack,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    assert sse.inputs["rules"] == [
        {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": stack.outputs["kmsKeyArn"],
            },
            "bucketKeyEnabled": True,
        }
    ]
    block = one(stack, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {f: block[f] for f in flags} == dict.fromkeys(flags, True)
    versioning = one(stack, "aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    ownership = one(stack, "aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    lifecycle = one(stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    ttl = {
        r["filter"]["prefix"]: r.get("expiration", {}).get("days")
        for r in lifecycle.inputs["rules"]
    }
    expected = {"dev": (3, 14), "prod": (7, 90)}[stack.outputs["environment"]]
    assert (ttl["async/"], ttl["request-logs/"]) == expected
    bucket_id = one(stack, "aws:s3/bucket:Bucket").id
    for token in (
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketPolicy:BucketPolicy",
    ):
        assert one(stack, token).inputs["bucket"] == bucket_id


def test_database_is_private_encrypted_backed_up(dev: PlatformRun, prod: PlatformRun) -> None:
    for run, multi_az, protected, backups, klass in (
        (dev, False, False, 3, "db.t4g.micro"),
        (prod, True, True, 14, "db.r6g.large"),
    ):
        db = one(run, "aws:rds/instance:Instance").inputs
        assert db["storageEncrypted"] is True
        assert db["kmsKeyId"] == run.outputs["kmsKeyArn"]
        assert db["publiclyAccessible"] is False
        assert db["manageMasterUserPassword"] is True
        assert "password" not in db
        assert db["masterUserSecretKmsKeyId"] == run.outputs["kmsKeyArn"]
        assert db["multiAz"] is multi_az
        assert db["deletionProtection"] is protected
        assert db["skipFinalSnapshot"] is not protected
        assert db["backupRetentionPeriod"] == backups
        assert db["instanceClass"] == klass
        assert db["engine"] == "postgres"
        params = one(run, "aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
        assert {"name": "rds.force_ssl", "value": "1"} in params
        subnets = one(run, "aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"]
        assert subnets == run.outputs["privateSubnetIds"]


def test_ecs_cluster_has_fargate_and_spot_and_no_services(stack: PlatformRun) -> None:
    """No ECS services (the control plane owns versions); one task definition, the
    environment build's (tests/infra/test_environment_builds.py)."""
    providers = one(stack, "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders").inputs
    assert providers["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert one(stack, "aws:ecs/cluster:Cluster").inputs["settings"] == [
        {"name": "containerInsights", "value": "enabled"}
    ]
    assert not stack.of_type("aws:ecs/service:Service")
    (task,) = stack.of_type("aws:ecs/taskDefinition:TaskDefinition")
    assert task.inputs["family"] == f"flowhost-{stack.outputs['environment']}-environment-build"


def test_alb_is_internal_with_a_404_default(stack: PlatformRun) -> None:
    alb = one(stack, "aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is True
    assert alb["subnets"] == stack.outputs["privateSubnetIds"]
    assert alb["securityGroups"] == [stack.outputs["albSecurityGroupId"]]
    assert alb["dropInvalidHeaderFields"] is True
    assert alb["idleTimeout"] == 1200
    listener = one(stack, "aws:lb/listener:Listener").inputs
    (action,) = listener["defaultActions"]
    assert action["type"] == "fixed-response"
    assert action["fixedResponse"]["statusCode"] == "404"


def test_lambdas_run_in_the_vpc_traced_with_retained_logs(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    retention = {"dev": 14, "prod": 90}[env]
    groups = {g.inputs["name"]: g.inputs for g in stack.of_type(LOG_GROUP)}
    assert all(g["retentionInDays"] == retention for g in groups.values())
    lambda_sg = stack.named(f"flowhost-{env}-net-lambdas").id
    functions = {f.inputs["name"].rsplit("-", 1)[1]: f.inputs for f in stack.of_type(FUNCTION)}
    assert set(functions) == set(HANDLERS)
    for key, fn in functions.items():
        assert fn["handler"] == HANDLERS[key]
        assert fn["runtime"] == "python3.11"
        assert fn["tracingConfig"] == {"mode": "Active"}
        assert fn["vpcConfig"] == {
            "subnetIds": stack.outputs["privateSubnetIds"],
            "securityGroupIds": [lambda_sg],
        }
        assert fn["loggingConfig"]["logGroup"] == f"/aws/lambda/{fn['name']}"
        assert fn["loggingConfig"]["logGroup"] in groups
        code = fn["code"]
        assert isinstance(code, pulumi.FileArchive)
        assert code.path == "build/lambda.zip"
        variables = fn["environment"]["variables"]
        assert variables["FLOWHOST_BUCKET"] == stack.outputs["bucketName"]
        assert variables["FLOWHOST_FUNCTION"] == key
        assert variables["FLOWHOST_ACTIVATOR_TARGET_GROUP_ARN"].startswith("arn:")
        assert variables["FLOWHOST_BALANCER_URL"] == f"http://{stack.outputs['albDnsName']}"
        assert variables["FLOWHOST_DB_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
        assert variables["FLOWHOST_CALLBACK_SECRET_ARN"] == stack.outputs["callbackSecretArn"]
        assert variables["FLOWHOST_PUBLIC_URL"] == stack.outputs["apiUrl"]
        assert variables["FLOWHOST_CALLBACK_ALLOW_PRIVATE"] == "false"  # public hosts only
    assert functions["scaler"]["reservedConcurrentExecutions"] == 1
    assert functions["api"]["timeout"] == 29
    rule = one(stack, "aws:cloudwatch/eventRule:EventRule").inputs
    assert rule["scheduleExpression"] == "rate(1 minute)"
    target = one(stack, "aws:cloudwatch/eventTarget:EventTarget").inputs
    assert target["arn"].endswith(f":function:flowhost-{env}-fn-scaler")
    principals = sorted(
        p.inputs["principal"] for p in stack.of_type("aws:lambda/permission:Permission")
    )
    assert principals == [
        "apigateway.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
        "events.amazonaws.com",
    ]


def test_callback_signing_key_is_generated_once_and_encrypted(stack: PlatformRun) -> None:
    secret = one(stack, "aws:secretsmanager/secret:Secret")
    assert secret.inputs["kmsKeyId"] == stack.outputs["kmsKeyArn"]
    assert secret.inputs["namePrefix"] == f"flowhost-{stack.outputs['environment']}-callback-"
    assert stack.outputs["callbackSecretArn"] == (
        f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret.id}"
    )
    version = one(stack, "aws:secretsmanager/secretVersion:SecretVersion")
    assert version.inputs["secretId"] == secret.id
    assert version.secret_inputs == ("secretString",)
    assert len(version.inputs["secretString"]) == 48  # the mock's invoke answer, 48 long
    # GetRandomPassword answers anew on every run: without this, each `up` would rotate it.
    assert version.ignore_changes == ("secretString",)
    # The Lambdas wait for the value, not only the secret (they read it at start).
    for fn in stack.of_type(FUNCTION):
        assert version.urn in fn.property_dependencies["environment"], fn.name


def test_the_api_exists_before_the_functions_that_link_to_it(stack: PlatformRun) -> None:
    """FLOWHOST_PUBLIC_URL is the API's endpoint: the Api resource is registered before
    the functions and they depend on it; the control-plane routes come after them."""
    order = [r.type for r in stack.resources]
    api = one(stack, "aws:apigatewayv2/api:Api")
    assert order.index(api.type) < order.index(FUNCTION)
    for fn in stack.of_type(FUNCTION):
        assert api.urn in fn.property_dependencies["environment"], fn.name
    control_plane = stack.named(f"{api.name.removesuffix('-api')}-control-plane")
    api_function = next(f for f in stack.of_type(FUNCTION) if f.name.endswith("-fn-api"))
    assert control_plane.inputs["integrationUri"].endswith(
        f"function:{api_function.inputs['name']}/invocations"
    )
    assert api_function.urn in control_plane.property_dependencies["integrationUri"]
    assert control_plane.parent == stack.named(api.name.removesuffix("-api")).urn


def test_tracing_setup(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    rule = one(stack, "aws:xray/samplingRule:SamplingRule").inputs
    assert rule["fixedRate"] == {"dev": 0.2, "prod": 0.05}[env]
    assert rule["serviceName"] == f"flowhost-{env}-*"
    parameter = one(stack, "aws:ssm/parameter:Parameter").inputs
    assert parameter["name"] == stack.outputs["adotConfigParameter"]
    assert "awsxray" in parameter["value"]


def test_edge_routes_need_the_configured_authorizer(dev: PlatformRun, prod: PlatformRun) -> None:
    for run, kind in ((dev, "AWS_IAM"), (prod, "JWT")):
        routes = {
            r.inputs["routeKey"]: r.inputs for r in run.of_type("aws:apigatewayv2/route:Route")
        }
        reads = {"GET /api/{proxy+}"} if kind == "JWT" else set()  # read scope's own route
        assert set(routes) - reads == {
            "ANY /api/{proxy+}",
            "ANY /requests/{proxy+}",
            "POST /{service}/{endpoint}/async",
            "$default",
        }
        assert {r["authorizationType"] for r in routes.values()} == {kind}
    jwt = one(prod, "aws:apigatewayv2/authorizer:Authorizer").inputs
    assert jwt["jwtConfiguration"] == {
        "issuer": "https://auth.example.com/",
        "audiences": ["flowhost-api"],
    }
    assert not dev.of_type("aws:apigatewayv2/authorizer:Authorizer")
    link = one(prod, "aws:apigatewayv2/vpcLink:VpcLink")
    kinds = {
        i.inputs["integrationType"]: i.inputs
        for i in prod.of_type("aws:apigatewayv2/integration:Integration")
    }
    assert set(kinds) == {"AWS_PROXY", "HTTP_PROXY"}
    assert kinds["HTTP_PROXY"]["connectionType"] == "VPC_LINK"
    assert kinds["HTTP_PROXY"]["connectionId"] == link.id
    assert kinds["HTTP_PROXY"]["integrationUri"] == prod.outputs["albListenerArn"]
    # the edge marks sync calls, so a call that cannot be answered in 30 s is held
    assert kinds["HTTP_PROXY"]["requestParameters"] == {"overwrite:header.x-flowhost-edge": "1"}
    assert link.inputs["securityGroupIds"] == [prod.named("flowhost-prod-net-vpc-link").id]


def test_gpu_cluster_scales_from_zero_with_allowed_types(prod: PlatformRun) -> None:
    cluster = one(prod, "aws:eks/cluster:Cluster").inputs
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    groups = {g.name.rsplit("-", 1)[1]: g for g in prod.of_type("aws:eks/nodeGroup:NodeGroup")}
    gpu = groups["gpu"]
    assert gpu.inputs["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 4}
    assert gpu.inputs["instanceTypes"] == ["g5.xlarge", "g5.2xlarge", "g6.xlarge"]
    assert gpu.inputs["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    assert gpu.inputs["labels"]["flowhost.io/pool"] == "gpu"
    assert gpu.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert "scalingConfig.desiredSize" in gpu.ignore_changes
    assert groups["system"].inputs["scalingConfig"]["minSize"] == 1
    provider = one(prod, "pulumi:providers:kubernetes")
    for release in prod.of_type("kubernetes:helm.sh/v3:Release"):
        assert release.provider.startswith(provider.urn + "::")
    releases = {r.inputs["name"]: r.inputs for r in prod.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {
        "nvidia-device-plugin",
        "keda",
        "cluster-autoscaler",
        "aws-for-fluent-bit",
    }
    assert releases["nvidia-device-plugin"]["values"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert releases["keda"]["values"]["podIdentity"]["aws"]["irsa"]["enabled"] is True
    assert releases["cluster-autoscaler"]["values"]["autoDiscovery"] == {
        "clusterName": "flowhost-prod-gpu"
    }


def test_outputs_have_stable_names(dev: PlatformRun, prod: PlatformRun) -> None:
    assert set(dev.outputs) == set(OUTPUTS)
    assert set(prod.outputs) == set(OUTPUTS) | set(EKS_OUTPUTS)
    assert dev.outputs["eksEnabled"] is False
    assert prod.outputs["eksEnabled"] is True
    assert prod.secret_outputs == {"eksKubeconfig"}
    assert dev.outputs["queueNamePrefix"] == "flowhost-dev-"
    assert dev.outputs["serviceLogGroupPrefix"] == "/flowhost/dev/"
    assert dev.outputs["apiUrl"].startswith("https://")
    assert dev.outputs["callbackSecretArn"].startswith(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
    )
    boundary = dev.named("flowhost-dev-boundary-policy")
    assert (
        dev.outputs["servicePermissionsBoundaryArn"]
        == f"arn:aws:iam::123456789012:policy/{boundary.name}"
    )
    assert prod.outputs["eksOidcProviderArn"].startswith("arn:aws:iam::123456789012:oidc-provider/")
    kubeconfig: dict[str, Any] = json.loads(prod.outputs["eksKubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "aws"


FLUENT_BIT = "aws-for-fluent-bit"


def test_gpu_container_logs_go_to_one_retained_log_group(
    dev: PlatformRun, prod: PlatformRun
) -> None:
    """Fluent Bit, its role and its log group exist with EKS only; the role may write to
    that one group, under the services' permissions boundary, and nothing else."""
    for run in (dev, prod):
        env = run.outputs["environment"]
        names = {g.inputs["name"] for g in run.of_type(LOG_GROUP)}
        assert (f"/flowhost/{env}/eks/containers" in names) is (env == "prod")
        assert any(FLUENT_BIT in r.name for r in run.resources) is (env == "prod")
    group = prod.named("flowhost-prod-eks-addons-container-logs")
    assert group.inputs["name"] == "/flowhost/prod/eks/containers"
    assert group.inputs["retentionInDays"] == 90
    # The role, its policy and the release share the name (each is another type).
    key = f"flowhost-prod-eks-addons-{FLUENT_BIT}"
    (role,) = [r for r in prod.of_type("aws:iam/role:Role") if r.name == key]
    (policy,) = [r for r in prod.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == key]
    boundary = prod.named("flowhost-prod-boundary-policy")
    assert role.inputs["permissionsBoundary"] == prod.outputs["servicePermissionsBoundaryArn"]
    assert policy.inputs["role"] == role.id
    stream_arn = "arn:aws:logs:us-east-1:123456789012:log-group:/flowhost/prod/eks/containers:*"
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {
            "Sid": "WriteContainerLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": stream_arn,
        }
    ]
    # Every action it has is one the boundary allows on the platform's log groups.
    allowed = json.loads(boundary.inputs["policy"])["Statement"]
    (logs,) = [s for s in allowed if s["Sid"] == "ServiceLogs"]
    assert set(logs["Action"]) >= {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert stream_arn.startswith(logs["Resource"].removesuffix("*"))

    (release,) = [
        r for r in prod.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == FLUENT_BIT
    ]
    assert release.inputs["chart"] == FLUENT_BIT
    assert release.inputs["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert release.inputs["version"].count(".") == 2  # pinned
    assert group.urn in release.dependencies
    values = release.inputs["values"]
    assert values["input"]["path"] == "/var/log/containers/*_flowhost-services_*.log"
    assert values["cloudWatchLogs"] == {
        "enabled": True,
        "match": "kube.*",
        "region": "us-east-1",
        "logGroupName": "/flowhost/prod/eks/containers",
        "logStreamTemplate": "$kubernetes['pod_name']",
        "logStreamPrefix": "unmatched-",
        "logKey": "log",
        "autoCreateGroup": False,
    }
    assert {k for k, v in values.items() if isinstance(v, dict) and v.get("enabled")} == {
        "cloudWatchLogs"
    }
    assert values["serviceAccount"]["name"] == FLUENT_BIT
    annotations = values["serviceAccount"]["annotations"]
    assert annotations == {
        "eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/{role.name}"
    }
    assert values["nodeSelector"] == GPU_LABEL  # where the services' pods run
    assert values["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_docs_list_every_output_and_config_key() -> None:
    """docs/aws.md's tables of stack outputs and `flowhost:` keys name every one."""
    text = (ROOT / "docs" / "aws.md").read_text()
    outputs = text.split("## Stack outputs", 1)[1].split("\n## ", 1)[0]
    config = text.split("## Config (`flowhost:` keys)", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in outputs.splitlines() if line.startswith("| `")]
    documented = set(re.findall(r"`(\w+)`", "".join(rows)))
    assert documented == set(OUTPUTS) | set(EKS_OUTPUTS)
    keys = [line.split("|")[1] for line in config.splitlines() if line.startswith("| `")]
    assert set(re.findall(r"`(\w+)`", "".join(keys))) == {
        field.alias or name for name, field in PlatformConfig.model_fields.items()
    }

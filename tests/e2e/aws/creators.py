"""What ``new_resource`` does for each type the journey needs: create it in the emulated
account (moto through boto3, the Lambda and API Gateway emulations, PostgreSQL for RDS) and
answer the provider's real id and state. Inputs arrive as the engine sends them (camelCase).
Steps moto does not model are best effort: refused ones are noted on the bridge."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.e2e.aws.apigw import ApiGateway
from tests.e2e.aws.lambdas import LambdaFunction
from tests.e2e.aws.postgres import RdsPostgres

if TYPE_CHECKING:
    from tests.e2e.aws.stack import StackBridge

__all__ = ["CREATORS", "Created"]

ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class Created:
    id: str
    outputs: dict[str, Any]


Creator = Callable[["StackBridge", str, dict[str, Any]], Created]
CREATORS: dict[str, Creator] = {}


def creates(token: str) -> Callable[[Creator], Creator]:
    def register(function: Creator) -> Creator:
        CREATORS[token] = function
        return function

    return register


def autoname(name: str, inputs: dict[str, Any], limit: int = 63) -> str:
    """The physical name: ``name`` if given, else ``namePrefix`` or the logical name plus a
    random suffix, as the provider's autonaming does."""
    if inputs.get("name"):
        return str(inputs["name"])
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(7))
    prefix = str(inputs.get("namePrefix") or f"{name}-")
    return prefix[: limit - len(suffix)] + suffix


def best_effort(bridge: StackBridge, what: str, call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception as exc:
        bridge.note(f"{what}: {type(exc).__name__}: {exc}")


def _tags(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in (inputs.get("tags") or {}).items()]


# -- network -------------------------------------------------------------------------------


@creates("aws:ec2/vpc:Vpc")
def _vpc(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    vpc = bridge.client("ec2").create_vpc(CidrBlock=inputs["cidrBlock"])["Vpc"]
    arn = f"arn:aws:ec2:{bridge.region}:{ACCOUNT_ID}:vpc/{vpc['VpcId']}"
    return Created(vpc["VpcId"], {"id": vpc["VpcId"], "arn": arn})


@creates("aws:ec2/subnet:Subnet")
def _subnet(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    subnet = bridge.client("ec2").create_subnet(
        VpcId=inputs["vpcId"], CidrBlock=inputs["cidrBlock"],
        AvailabilityZone=inputs.get("availabilityZone", f"{bridge.region}a"),
    )["Subnet"]  # fmt: skip
    return Created(subnet["SubnetId"], {"id": subnet["SubnetId"], "arn": subnet["SubnetArn"]})


@creates("aws:ec2/securityGroup:SecurityGroup")
def _security_group(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    group = bridge.client("ec2").create_security_group(
        GroupName=autoname(name, inputs, 255), VpcId=inputs["vpcId"],
        Description=inputs.get("description") or "Managed by Pulumi",
    )  # fmt: skip
    group_id = group["GroupId"]
    arn = f"arn:aws:ec2:{bridge.region}:{ACCOUNT_ID}:security-group/{group_id}"
    return Created(group_id, {"id": group_id, "arn": arn})


# -- keys, storage, secrets, queues ---------------------------------------------------------


@creates("aws:kms/key:Key")
def _kms_key(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    key = bridge.client("kms").create_key(Description=inputs.get("description", ""))["KeyMetadata"]
    return Created(key["KeyId"], {"keyId": key["KeyId"], "arn": key["Arn"]})


@creates("aws:kms/alias:Alias")
def _kms_alias(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    alias = str(inputs["name"])
    best_effort(bridge, f"kms alias {alias}", lambda: bridge.client("kms").create_alias(
        AliasName=alias, TargetKeyId=inputs["targetKeyId"]))  # fmt: skip
    return Created(alias, {"arn": f"arn:aws:kms:{bridge.region}:{ACCOUNT_ID}:{alias}"})


@creates("aws:s3/bucket:Bucket")
def _bucket(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    bucket = str(inputs.get("bucket") or autoname(name, {"namePrefix": inputs.get("bucketPrefix")}))
    bucket = bucket.lower()
    bridge.client("s3").create_bucket(Bucket=bucket)
    return Created(bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}",
                            "bucketDomainName": f"{bucket}.s3.amazonaws.com"})  # fmt: skip


@creates("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
def _bucket_encryption(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    rules = [
        {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"],
                "KMSMasterKeyID": rule["applyServerSideEncryptionByDefault"].get(
                    "kmsMasterKeyId", ""
                ),
            },
            "BucketKeyEnabled": bool(rule.get("bucketKeyEnabled")),
        }
        for rule in inputs.get("rules", [])
    ]
    best_effort(bridge, "bucket encryption", lambda: bridge.client("s3").put_bucket_encryption(
        Bucket=inputs["bucket"], ServerSideEncryptionConfiguration={"Rules": rules}))  # fmt: skip
    return Created(str(inputs["bucket"]), {})


@creates("aws:s3/bucketVersioning:BucketVersioning")
def _bucket_versioning(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    status = inputs.get("versioningConfiguration", {}).get("status", "Enabled")
    best_effort(bridge, "bucket versioning", lambda: bridge.client("s3").put_bucket_versioning(
        Bucket=inputs["bucket"], VersioningConfiguration={"Status": status}))  # fmt: skip
    return Created(str(inputs["bucket"]), {})


@creates("aws:s3/bucketPolicy:BucketPolicy")
def _bucket_policy(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    """Recorded, not put: moto (5.2) treats a Deny statement whose condition does not hold
    as a match, so the platform's TLS-only Deny (aws:SecureTransport false) would refuse
    every call; layers 1-3 check the policy itself."""
    bridge.note(f"bucket policy of {inputs['bucket']}: recorded, not enforced by moto")
    return Created(str(inputs["bucket"]), {})


@creates("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
def _bucket_public_access(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    config = {
        key[0].upper() + key[1:]: bool(inputs.get(key))
        for key in ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy",
                    "restrictPublicBuckets")
    }  # fmt: skip
    best_effort(bridge, "public access block", lambda: bridge.client(
        "s3").put_public_access_block(Bucket=inputs["bucket"],
                                      PublicAccessBlockConfiguration=config))  # fmt: skip
    return Created(str(inputs["bucket"]), {})


@creates("aws:s3/bucketObjectv2:BucketObjectv2")
def _bucket_object(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    key = str(inputs.get("key") or name)
    source = inputs.get("source")
    body: bytes
    if isinstance(inputs.get("content"), str):
        body = inputs["content"].encode()
    elif isinstance(source, dict) and source.get("path"):
        with open(str(source["path"]), "rb") as file:
            body = file.read()
    else:
        body = b""
    answer = bridge.client("s3").put_object(Bucket=inputs["bucket"], Key=key, Body=body)
    return Created(key, {"key": key, "etag": answer.get("ETag", "").strip('"'),
                         "versionId": answer.get("VersionId", "")})  # fmt: skip


@creates("aws:secretsmanager/secret:Secret")
def _secret(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    args: dict[str, Any] = {"Name": autoname(name, inputs, 256)}
    if inputs.get("description"):
        args["Description"] = inputs["description"]
    if inputs.get("kmsKeyId"):
        args["KmsKeyId"] = inputs["kmsKeyId"]
    secret = bridge.client("secretsmanager").create_secret(**args)
    return Created(secret["ARN"], {"arn": secret["ARN"], "name": secret["Name"]})


@creates("aws:secretsmanager/secretVersion:SecretVersion")
def _secret_version(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    args: dict[str, Any] = {"SecretId": inputs["secretId"]}
    if inputs.get("secretString") is not None:
        args["SecretString"] = inputs["secretString"]
    version = bridge.client("secretsmanager").put_secret_value(**args)
    return Created(f"{version['ARN']}|{version['VersionId']}",
                   {"arn": version["ARN"], "secretArn": version["ARN"],
                    "versionId": version["VersionId"]})  # fmt: skip


SQS_ATTRIBUTES = {
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "redrivePolicy": "RedrivePolicy",
    "fifoQueue": "FifoQueue",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
}


@creates("aws:sqs/queue:Queue")
def _queue(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    queue_name = autoname(name, inputs, 80)
    attributes = {}
    for key, attribute in SQS_ATTRIBUTES.items():
        value = inputs.get(key)
        if value is None or (isinstance(value, bool) and not value and key == "fifoQueue"):
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, float):
            value = int(value)
        attributes[attribute] = str(value)
    sqs = bridge.client("sqs")
    url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
    arn = f"arn:aws:sqs:{bridge.region}:{ACCOUNT_ID}:{queue_name}"
    return Created(url, {"arn": arn, "url": url, "name": queue_name})


# -- identity ------------------------------------------------------------------------------


@creates("aws:iam/role:Role")
def _role(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    args: dict[str, Any] = {
        "RoleName": autoname(name, inputs, 64),
        "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
        "Path": inputs.get("path", "/"),
    }
    if inputs.get("permissionsBoundary"):
        args["PermissionsBoundary"] = inputs["permissionsBoundary"]
    role = bridge.client("iam").create_role(**args)["Role"]
    return Created(role["RoleName"], {"arn": role["Arn"], "name": role["RoleName"],
                                      "uniqueId": role["RoleId"]})  # fmt: skip


@creates("aws:iam/policy:Policy")
def _policy(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    policy = bridge.client("iam").create_policy(
        PolicyName=autoname(name, inputs, 128), PolicyDocument=inputs["policy"]
    )["Policy"]
    return Created(policy["Arn"], {"arn": policy["Arn"], "name": policy["PolicyName"]})


@creates("aws:iam/rolePolicy:RolePolicy")
def _role_policy(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    policy_name = autoname(name, inputs, 128)
    best_effort(bridge, f"role policy {policy_name} {inputs['policy']}", lambda: bridge.client(
        "iam").put_role_policy(RoleName=inputs["role"], PolicyName=policy_name,
                               PolicyDocument=inputs["policy"]))  # fmt: skip
    return Created(f"{inputs['role']}:{policy_name}", {"name": policy_name})


@creates("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def _role_policy_attachment(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    iam = bridge.client("iam")
    best_effort(bridge, f"attach {inputs['policyArn']}", lambda: iam.attach_role_policy(
        RoleName=inputs["role"], PolicyArn=inputs["policyArn"]))  # fmt: skip
    return Created(f"{inputs['role']}-{name}", {})


# -- the database: PostgreSQL on loopback, its master secret in Secrets Manager ------------


@creates("aws:rds/instance:Instance")
def _rds_instance(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    identifier = str(inputs.get("identifier") or name)
    server = RdsPostgres.start(
        database=str(inputs.get("dbName") or "postgres"),
        username=str(inputs.get("username") or "postgres"),
        port=int(inputs.get("port") or 5432),
    )
    bridge.databases[identifier] = server
    secret_args: dict[str, Any] = {
        "Name": f"rds!db-{secrets.token_hex(8)}",
        "SecretString": json.dumps({"username": server.username, "password": server.password}),
    }
    if inputs.get("masterUserSecretKmsKeyId"):
        secret_args["KmsKeyId"] = inputs["masterUserSecretKmsKeyId"]
    secret = bridge.client("secretsmanager").create_secret(**secret_args)
    arn = f"arn:aws:rds:{bridge.region}:{ACCOUNT_ID}:db:{identifier}"
    return Created(identifier, {
        "identifier": identifier, "arn": arn, "address": server.host, "port": server.port,
        "endpoint": f"{server.host}:{server.port}", "resourceId": f"db-{identifier}",
        "masterUserSecrets": [{"secretArn": secret["ARN"], "secretStatus": "active",
                               "kmsKeyId": inputs.get("masterUserSecretKmsKeyId", "")}],
    })  # fmt: skip


# -- functions and the edge ---------------------------------------------------------------


@creates("aws:lambda/function:Function")
def _function(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    function = LambdaFunction(
        name=autoname(name, inputs, 64),
        handler=str(inputs["handler"]),
        environment=dict((inputs.get("environment") or {}).get("variables") or {}),
        timeout=int(inputs.get("timeout") or 3),
        memory_mb=int(inputs.get("memorySize") or 128),
        role=str(inputs.get("role", "")),
        region=bridge.region,
    )
    bridge.lambdas.register(function)
    invoke_arn = (f"arn:aws:apigateway:{bridge.region}:lambda:path/2015-03-31/functions/"
                  f"{function.arn}/invocations")  # fmt: skip
    return Created(function.name, {"name": function.name, "arn": function.arn,
                                   "qualifiedArn": f"{function.arn}:$LATEST",
                                   "invokeArn": invoke_arn, "version": "$LATEST"})  # fmt: skip


def _gateway_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


@creates("aws:apigatewayv2/api:Api")
def _api(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    api_id = _gateway_id()
    gateway = ApiGateway(api_id, bridge.lambdas, region=bridge.region)
    bridge.gateways[api_id] = gateway
    return Created(api_id, {
        "apiEndpoint": gateway.url,
        "executionArn": f"arn:aws:execute-api:{bridge.region}:{ACCOUNT_ID}:{api_id}",
        "arn": f"arn:aws:apigateway:{bridge.region}::/apis/{api_id}",
    })  # fmt: skip


def _api_part(kind: str) -> Creator:
    def create(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
        part_id = _gateway_id()[:7]
        bridge.gateways[str(inputs["apiId"])].add(kind, part_id, inputs)
        return Created(part_id, {"id": part_id})

    return create


for _kind in ("route", "integration", "authorizer", "stage", "vpcLink"):
    _token = f"aws:apigatewayv2/{_kind}:{_kind[0].upper()}{_kind[1:]}"
    if _kind == "vpcLink":
        CREATORS[_token] = lambda bridge, name, inputs: Created(_gateway_id()[:6], {})
    else:
        CREATORS[_token] = _api_part(_kind)

from tests.e2e.aws import creators_compute  # noqa: E402, F401  (ECS and ELB creators)

# -- parameters ----------------------------------------------------------------------------


@creates("aws:ssm/parameter:Parameter")
def _parameter(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    """An SSM parameter (the platform's ADOT config, a service's envelope)."""
    parameter = autoname(name, inputs, 2048)
    args: dict[str, Any] = {
        "Name": parameter, "Value": str(inputs["value"]),
        "Type": str(inputs.get("type") or "String"), "Overwrite": True,
    }  # fmt: skip
    if inputs.get("tier"):
        args["Tier"] = inputs["tier"]
    bridge.client("ssm").put_parameter(**args)
    arn = f"arn:aws:ssm:{bridge.region}:{ACCOUNT_ID}:parameter/{parameter.lstrip('/')}"
    return Created(parameter, {"arn": arn, "name": parameter, "value": inputs["value"]})


# -- dynamic resources -----------------------------------------------------------------------


@creates("pulumi-python:dynamic:Resource")
def _dynamic(bridge: StackBridge, name: str, inputs: dict[str, Any]) -> Created:
    """Runs the resource's own provider as Pulumi's dynamic provider host does: the
    provider is unpickled from ``__provider``, ``check`` then ``create`` get the inputs
    (``ServiceSpec(deploy=...)``: a deploy through the control plane)."""
    import base64

    import dill  # pyright: ignore[reportMissingTypeStubs]

    props = {k: v for k, v in inputs.items() if k != "__provider"}
    provider: Any = dill.loads(base64.b64decode(str(inputs["__provider"])))  # pyright: ignore[reportUnknownMemberType]
    checked = provider.check({}, props)
    if checked.failures:
        reasons = "; ".join(f"{f.property}: {f.reason}" for f in checked.failures)
        raise ValueError(f"{name}: check failed: {reasons}")
    created = provider.create(checked.inputs if checked.inputs is not None else props)
    return Created(str(created.id), {**props, **dict(created.outs or {})})

"""``pulumi up`` of the dev platform into moto: what the program declared exists in the
emulated account, with the ids and outputs the stack exports."""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg
import pytest

from tests.e2e.aws.stack import StackBridge, StackRecord


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(  # pyright: ignore[reportCallIssue]
        service,  # pyright: ignore[reportArgumentType]
        endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def test_the_stack_s_resources_exist_in_moto(platform: StackRecord, moto_endpoint: str) -> None:
    out = platform.outputs
    _client(moto_endpoint, "s3").head_bucket(Bucket=out["bucketName"])
    (vpc,) = _client(moto_endpoint, "ec2").describe_vpcs(VpcIds=[out["vpcId"]])["Vpcs"]
    assert vpc["CidrBlock"] == out["vpcCidr"]
    (cluster,) = _client(moto_endpoint, "ecs").describe_clusters(
        clusters=[out["ecsClusterName"]])["clusters"]  # fmt: skip
    assert cluster["clusterArn"] == out["ecsClusterArn"]
    elbv2 = _client(moto_endpoint, "elbv2")
    (listener,) = elbv2.describe_listeners(ListenerArns=[out["albListenerArn"]])["Listeners"]
    assert listener["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    targets = elbv2.describe_target_health(TargetGroupArn=out["activatorTargetGroupArn"])
    assert [t["Target"]["Id"] for t in targets["TargetHealthDescriptions"]] == [
        "arn:aws:lambda:us-east-1:123456789012:function:flowhost-dev-fn-activator"
    ]


def test_every_inline_policy_is_accepted(bridge: StackBridge, platform: StackRecord) -> None:
    """moto parses each role's inline policy; one with a null resource is refused."""
    refused = [note for note in bridge.notes if note.startswith("role policy")]
    assert refused == []


def test_the_database_takes_the_managed_secret_over_tls_only(
    platform: StackRecord, bridge: StackBridge, moto_endpoint: str
) -> None:
    (instance,) = platform.of_type("aws:rds/instance:Instance")
    state = platform.state_of(instance)
    secret_arn = state["masterUserSecrets"][0]["secretArn"]
    secrets = _client(moto_endpoint, "secretsmanager")
    creds = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    connect = {"host": state["address"], "port": state["port"], "dbname": instance.inputs["dbName"],
               "user": creds["username"], "password": creds["password"]}  # fmt: skip
    with psycopg.connect(**connect, sslmode="require") as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**connect, sslmode="disable")

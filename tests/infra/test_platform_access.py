"""Component tier: what the platform gives the AWS path to read runs and pull images.

The prod stack sets ``flowhost:metaflow`` (service metadata, an auth key secret, an S3
datastore root, namespace ``production``); the dev stack does not. Both cache ECR Public
through a pull-through rule and export the collector's private image; the API function
may invoke itself and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

from tests.infra.recording import ACCOUNT_ID, REGION, PlatformRun, Recorded

SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:metaflow-service-key"
PROD_METAFLOW = {
    "METAFLOW_DEFAULT_METADATA": "service",
    "METAFLOW_SERVICE_URL": "https://metaflow.example.com/api",
    "METAFLOW_DEFAULT_DATASTORE": "s3",
    "METAFLOW_DATASTORE_SYSROOT_S3": "s3://acme-metaflow/metaflow",
    "USERNAME": "flowhost",
    "FLOWHOST_METAFLOW_NAMESPACE": "production",
}
DATASTORE_READ = [
    {
        "Sid": "MetaflowDatastoreObjects",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": "arn:aws:s3:::acme-metaflow/metaflow/*",
    },
    {
        "Sid": "MetaflowDatastoreListing",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": "arn:aws:s3:::acme-metaflow",
        "Condition": {"StringLike": {"s3:prefix": "metaflow/*"}},
    },
]
AUTH_KEY = {
    "Sid": "MetaflowAuthKey",
    "Effect": "Allow",
    "Action": ["secretsmanager:GetSecretValue"],
    "Resource": SECRET,
}


def functions(run: PlatformRun) -> dict[str, dict[str, Any]]:
    found = run.of_type("aws:lambda/function:Function")
    return {f.inputs["name"].rsplit("-", 1)[1]: f.inputs for f in found}


def statements(run: PlatformRun, name: str) -> dict[str, dict[str, Any]]:
    document = json.loads(run.named(name).inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def one(run: PlatformRun, token: str) -> Recorded:
    (found,) = run.of_type(token)
    return found


def test_functions_get_the_metaflow_settings_and_where_the_key_is(prod: PlatformRun) -> None:
    for fn in functions(prod).values():
        variables = fn["environment"]["variables"]
        assert {k: variables[k] for k in PROD_METAFLOW} == PROD_METAFLOW
        assert variables["FLOWHOST_METAFLOW_AUTH_SECRET_ARN"] == SECRET
        assert "METAFLOW_SERVICE_AUTH_KEY" not in variables  # the key itself never


def test_without_metaflow_settings_the_functions_get_none(dev: PlatformRun) -> None:
    for fn in functions(dev).values():
        assert not [k for k in fn["environment"]["variables"] if "METAFLOW" in k]
        assert "USERNAME" not in fn["environment"]["variables"]
    for key in ("api", "activator", "scaler"):
        sids = statements(dev, f"flowhost-dev-fn-{key}-policy")
        assert not [s for s in sids if s.startswith("Metaflow")]
    assert dev.outputs["metaflowEnvironment"] == {}
    assert dev.outputs["metaflowAuthSecretArn"] == ""
    assert dev.outputs["metaflowDatastoreRoot"] == ""


def test_functions_read_the_key_and_the_datastore_root_only(prod: PlatformRun) -> None:
    api = statements(prod, "flowhost-prod-fn-api-policy")
    scaler = statements(prod, "flowhost-prod-fn-scaler-policy")
    activator = statements(prod, "flowhost-prod-fn-activator-policy")
    for policy in (api, scaler):
        assert [policy["MetaflowDatastoreObjects"], policy["MetaflowDatastoreListing"]] == (
            DATASTORE_READ
        )
        assert policy["MetaflowAuthKey"] == AUTH_KEY
    # The activator resolves no runs: the key (read at cold start), not the datastore.
    assert activator["MetaflowAuthKey"] == AUTH_KEY
    assert "MetaflowDatastoreObjects" not in activator


def test_the_api_and_the_activator_may_invoke_themselves_and_nothing_else(
    stack: PlatformRun,
) -> None:
    env = stack.outputs["environment"]
    for key in ("api", "activator"):  # deploys advance, and wakes finish, in new invocations
        name = f"flowhost-{env}-fn-{key}"
        assert statements(stack, f"{name}-policy")["InvokeItself"] == {
            "Sid": "InvokeItself",
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
        }
    assert functions(stack)["api"]["timeout"] == 29  # unchanged: it hands work to itself
    others = statements(stack, f"flowhost-{env}-fn-scaler-policy")
    assert "InvokeItself" not in others
    assert not [s for s in others.values() if "lambda:InvokeFunction" in s["Action"]]


def test_ecr_public_is_cached_and_the_collector_comes_from_it(stack: PlatformRun) -> None:
    env = stack.outputs["environment"]
    rule = one(stack, "aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    assert rule.inputs == {
        "ecrRepositoryPrefix": f"flowhost-{env}",
        "upstreamRegistryUrl": "public.ecr.aws",
    }
    assert stack.outputs["collectorImage"] == (
        f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/flowhost-{env}/"
        "aws-observability/aws-otel-collector:v0.40.0"
    )


def test_the_outputs_carry_the_metaflow_settings(prod: PlatformRun) -> None:
    assert prod.outputs["metaflowEnvironment"] == PROD_METAFLOW
    assert prod.outputs["metaflowAuthSecretArn"] == SECRET
    assert prod.outputs["metaflowDatastoreRoot"] == "s3://acme-metaflow/metaflow"


def test_the_boundary_allows_the_datastore_the_key_and_filling_the_cache(
    dev: PlatformRun, prod: PlatformRun
) -> None:
    boundary = {
        s["Sid"]: s
        for s in json.loads(prod.named("flowhost-prod-boundary-policy").inputs["policy"])[
            "Statement"
        ]
    }
    assert [boundary["MetaflowDatastoreObjects"], boundary["MetaflowDatastoreListing"]] == (
        DATASTORE_READ
    )
    assert boundary["MetaflowAuthKey"] == AUTH_KEY
    assert boundary["FillImageCache"] == {
        "Sid": "FillImageCache",
        "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/flowhost-prod/*",
    }
    dev_sids = [
        s["Sid"]
        for s in json.loads(dev.named("flowhost-dev-boundary-policy").inputs["policy"])["Statement"]
    ]
    assert not [s for s in dev_sids if s.startswith("Metaflow")]


def test_gpu_nodes_may_pull_the_collector_through_the_cache(prod: PlatformRun) -> None:
    repository = (
        f"arn:aws:ecr:{REGION}:{ACCOUNT_ID}:repository/flowhost-prod/"
        "aws-observability/aws-otel-collector"
    )
    policy = statements(prod, "flowhost-prod-eks-node-images")
    assert policy == {
        "CollectorImage": {
            "Sid": "CollectorImage",
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": repository,
        },
        "CollectorImageFillCache": {
            "Sid": "CollectorImageFillCache",
            "Effect": "Allow",
            "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
            "Resource": repository,
        },
    }
    node_role = prod.named("flowhost-prod-eks-node-role")
    assert prod.named("flowhost-prod-eks-node-images").inputs["role"] == node_role.id

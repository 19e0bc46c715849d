"""Unit tier: the stack config is read once into a validated model; bad values name the key."""

from __future__ import annotations

import pulumi
import pytest

from flowhost.infra import PlatformConfig, PlatformConfigError, load_config
from flowhost.infra.config import GPU_FAMILIES, LOG_RETENTION_DAYS
from tests.infra.recording import run_program, stack_config


def config_with(**changes: str) -> dict[str, str]:
    raw = stack_config("dev")
    for key, value in changes.items():
        raw[f"flowhost:{key}"] = value
    return raw


def error_for(**changes: str) -> str:
    with pytest.raises(PlatformConfigError) as caught:
        load_config(config_with(**changes), "dev")
    return caught.value.message


def test_both_stack_files_validate() -> None:
    dev = load_config(stack_config("dev"), "dev")
    prod = load_config(stack_config("prod"), "prod")
    assert isinstance(dev, PlatformConfig)
    assert (dev.environment, prod.environment) == ("dev", "prod")
    assert (dev.eks_enabled, prod.eks_enabled) == (False, True)
    assert (dev.db_multi_az, prod.db_multi_az) == (False, True)
    assert (dev.db_deletion_protection, prod.db_deletion_protection) == (False, True)
    assert (dev.authorizer, prod.authorizer) == ("iam", "jwt")
    assert prod.gpu_instance_types == ("g5.xlarge", "g5.2xlarge", "g6.xlarge")
    assert prod.jwt_audience == ("flowhost-api",)
    assert dev.lambda_bundle == "build/lambda.zip"


def test_config_is_frozen() -> None:
    cfg = load_config(stack_config("dev"), "dev")
    with pytest.raises(ValueError, match="frozen"):
        cfg.owner = "someone-else"  # type: ignore[misc]


def test_a_bad_retention_lists_the_allowed_values() -> None:
    message = error_for(logRetentionDays="31")
    allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
    assert message == (
        f"Pulumi.dev.yaml: flowhost:logRetentionDays: must be one of {allowed} (got '31'). "
        "Fix it in the stack file."
    )


def test_a_bad_choice_names_the_choices() -> None:
    message = error_for(authorizer="cognito")
    assert message.startswith("Pulumi.dev.yaml: flowhost:authorizer: ")
    assert "'iam' or 'jwt'" in message
    assert "(got 'cognito')" in message


def test_a_non_gpu_instance_type_lists_the_gpu_families() -> None:
    message = error_for(gpuInstanceTypes='["g5.xlarge", "m5.large"]')
    assert "flowhost:gpuInstanceTypes" in message
    assert "'m5.large' is not a GPU instance type" in message
    assert ", ".join(GPU_FAMILIES) in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("vpcCidr", "10.0.0.0/8", "private IPv4 block from /16 to /20"),
        ("vpcCidr", "not-a-cidr", "IPv4 CIDR block"),
        ("azCount", "5", "less than or equal to 3"),
        ("dbMultiAz", "sometimes", "valid boolean"),
        ("dbInstanceClass", "t4g.micro", "RDS instance class"),
        ("alertEmail", "nobody", "email address"),
        ("eksApiAccessCidrs", '["0.0.0.0/0"]', "open the Kubernetes API to everyone"),
        ("scalerSchedule", "every minute", "EventBridge schedule"),
        ("tracingSampleRate", "2", "less than or equal to 1"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, expected: str) -> None:
    message = error_for(**{key: value})
    assert message.startswith(f"Pulumi.dev.yaml: flowhost:{key}: ")
    assert expected in message


def test_an_unknown_key_is_refused_with_the_known_keys() -> None:
    message = error_for(logRetentionDay="30")
    assert message.startswith(
        "Pulumi.dev.yaml: flowhost:logRetentionDay is not a platform setting. Known keys: "
    )
    assert "logRetentionDays" in message


def test_a_missing_key_is_named() -> None:
    raw = stack_config("dev")
    del raw["flowhost:owner"]
    with pytest.raises(PlatformConfigError) as caught:
        load_config(raw, "dev")
    assert caught.value.message == (
        "Pulumi.dev.yaml: flowhost:owner is required. Set it in the stack file."
    )


def test_jwt_needs_issuer_and_audience() -> None:
    message = error_for(authorizer="jwt")
    assert message == (
        "Pulumi.dev.yaml: flowhost:authorizer is jwt, so flowhost:jwtIssuer and "
        "flowhost:jwtAudience must be set."
    )


def test_every_problem_is_reported_at_once() -> None:
    message = error_for(azCount="9", logRetentionDays="2")
    assert len(message.splitlines()) == 2


def test_other_namespaces_are_ignored() -> None:
    raw = config_with()
    raw["aws:region"] = "eu-west-1"
    raw["pulumi:tags"] = "{}"
    assert load_config(raw, "dev").environment == "dev"


def test_the_program_stops_with_a_run_error() -> None:
    """Under mocks: a bad value ends the program as a RunError, which pulumi prints bare."""
    with pytest.raises(pulumi.RunError, match=r"flowhost:dbInstanceClass"):
        run_program("dev", config_with(dbInstanceClass="huge"))


METAFLOW_OK = (
    '{"serviceUrl": "https://metaflow.example.com/api", '
    '"datastoreRoot": "s3://acme-metaflow/mf/", "namespace": "production"}'
)


def test_metaflow_settings_are_read_with_defaults() -> None:
    cfg = load_config(config_with(metaflow=METAFLOW_OK), "dev")
    assert cfg.metaflow is not None
    assert (cfg.metaflow.metadata, cfg.metaflow.datastore) == ("service", "s3")
    assert cfg.metaflow.datastore_root == "s3://acme-metaflow/mf"  # no trailing slash
    assert load_config(stack_config("dev"), "dev").metaflow is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            '{"datastoreRoot": "s3://b-1/x", "namespace": "production"}',
            "Pulumi.dev.yaml: flowhost:metaflow.serviceUrl: is required when metadata is "
            "service: set it to the metadata service's URL, e.g. https://metaflow.example.com/api,"
            " or set metadata: local (got None). Fix it in the stack file.",
        ),
        (
            '{"serviceUrl": "https://m.example.com", "datastoreRoot": "acme/mf", '
            '"namespace": "production"}',
            "Pulumi.dev.yaml: flowhost:metaflow.datastoreRoot: must be an s3:// root "
            "(s3://<bucket>[/<prefix>]) when datastore is s3, e.g. s3://acme-metaflow/metaflow "
            "(got 'acme/mf'). Fix it in the stack file.",
        ),
        (
            '{"metadata": "local", "datastore": "local", "datastoreRoot": "s3://b-1", '
            '"namespace": "production"}',
            "Pulumi.dev.yaml: flowhost:metaflow.datastoreRoot: must be an absolute path when "
            "datastore is local, e.g. /mnt/metaflow; or set datastore: s3 with an s3:// root "
            "(got 's3://b-1'). Fix it in the stack file.",
        ),
        (
            '{"serviceUrl": "https://m.example.com", "datastoreRoot": "s3://b-1", '
            '"namespace": "production", "authSecretArn": "metaflow-key"}',
            "Pulumi.dev.yaml: flowhost:metaflow.authSecretArn: must be the ARN of a Secrets "
            "Manager secret holding the metadata service's auth key, e.g. arn:aws:secretsmanager:"
            "us-east-1:123456789012:secret:metaflow-key (got 'metaflow-key'). Fix it in the "
            "stack file.",
        ),
    ],
)
def test_bad_metaflow_settings_name_the_key_the_value_and_the_fix(
    value: str, expected: str
) -> None:
    assert error_for(metaflow=value) == expected


def test_an_unknown_metaflow_key_lists_the_known_ones() -> None:
    message = error_for(metaflow=METAFLOW_OK.replace('"namespace"', '"tag": "x", "namespace"'))
    assert message == (
        "Pulumi.dev.yaml: flowhost:metaflow.tag is not a platform setting. Known keys: "
        "authSecretArn, datastore, datastoreRoot, metadata, namespace, serviceUrl."
    )


def test_eks_needs_the_nat_gateway() -> None:
    message = error_for(eksEnabled="true")
    assert message.startswith(
        "Pulumi.dev.yaml: flowhost:eksEnabled is true, so flowhost:natGateway must be true "
        "(got false)"
    )


def test_environment_builds_have_working_defaults_and_an_optional_index() -> None:
    cfg = load_config(stack_config("dev"), "dev")
    size = cfg.environment_build
    assert (size.cpu, size.memory_mib, size.ephemeral_storage_gib) == (1024, 4096, 40)
    assert cfg.package_index is None
    index = '{"url": "https://pypi.example.com/simple"}'
    found = load_config(config_with(packageIndex=index), "dev").package_index
    assert found is not None
    assert (found.url, found.credentials_secret_arn) == ("https://pypi.example.com/simple", None)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "environmentBuild",
            '{"cpu": 1000}',
            "Pulumi.dev.yaml: flowhost:environmentBuild.cpu: must be Fargate CPU units, one of "
            "256, 512, 1024, 2048, 4096, 8192, 16384 (got 1000). Fix it in the stack file.",
        ),
        (
            "environmentBuild",
            '{"cpu": 1024, "memoryMib": 1024}',
            "Pulumi.dev.yaml: flowhost:environmentBuild.memoryMib: Fargate takes 2048 to 8192 "
            "MiB in steps of 1024 with cpu 1024; change memoryMib or cpu (got 1024). Fix it in "
            "the stack file.",
        ),
        (
            "environmentBuild",
            '{"ephemeralStorageGib": 20}',
            "Pulumi.dev.yaml: flowhost:environmentBuild.ephemeralStorageGib: Input should be "
            "greater than or equal to 21 (got 20). Fix it in the stack file.",
        ),
        (
            "environmentBuild",
            '{"disk": 40}',
            "Pulumi.dev.yaml: flowhost:environmentBuild.disk is not a platform setting. Known "
            "keys: cpu, ephemeralStorageGib, memoryMib.",
        ),
        (
            "packageIndex",
            '{"url": "pypi.example.com"}',
            "Pulumi.dev.yaml: flowhost:packageIndex.url: must be the index's URL, e.g. "
            "https://pypi.example.com/simple (got 'pypi.example.com'). Fix it in the stack file.",
        ),
        (
            "packageIndex",
            '{"credentialsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:p"}',
            "Pulumi.dev.yaml: flowhost:packageIndex.url is required. Set it in the stack file.",
        ),
        (
            "packageIndex",
            '{"url": "http://pypi.internal/simple", '
            '"credentialsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:p"}',
            "Pulumi.dev.yaml: flowhost:packageIndex.credentialsSecretArn: is sent to the index "
            "only over https: make url an https:// URL (got 'arn:aws:secretsmanager:us-east-1:"
            "123456789012:secret:p'). Fix it in the stack file.",
        ),
        (
            "packageIndex",
            '{"url": "https://pypi.example.com/simple", "credentialsSecretArn": "pypi-creds"}',
            "Pulumi.dev.yaml: flowhost:packageIndex.credentialsSecretArn: must be the ARN of a "
            'Secrets Manager secret holding {"username": ..., "password": ...}, e.g. '
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:pypi-credentials "
            "(got 'pypi-creds'). Fix it in the stack file.",
        ),
    ],
)
def test_bad_build_settings_name_the_key_the_value_and_the_fix(
    key: str, value: str, expected: str
) -> None:
    assert error_for(**{key: value}) == expected


def test_an_index_url_with_credentials_is_refused_without_showing_them() -> None:
    message = error_for(packageIndex='{"url": "https://bob:hunter2@pypi.example.com/simple"}')
    assert message == (
        "Pulumi.dev.yaml: flowhost:packageIndex.url: must not carry credentials "
        "(user:password@): put them in a Secrets Manager secret and set credentialsSecretArn "
        "(got 'https://***@pypi.example.com/simple'). Fix it in the stack file."
    )
    assert "hunter2" not in message

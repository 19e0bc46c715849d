"""The serving container's settings: the environment contract read and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhost.lambdas.aws.container import main
from flowhost.lambdas.aws.container_settings import (
    CONTRACT,
    KNOBS,
    OPTIONAL,
    ContainerSettings,
    ContainerSettingsError,
)

DIGEST = "sha256-" + "ab" * 32
GOOD = {
    "FLOWHOST_SERVICE": "tiny",
    "FLOWHOST_VERSION": "v3",
    "FLOWHOST_ENVIRONMENT": "prod",
    "FLOWHOST_PORT": "8080",
    "FLOWHOST_CODE_PACKAGE": f"s3://flowhost-prod-data/packages/{DIGEST}.tar.gz",
    "FLOWHOST_CODE_DIGEST": DIGEST,
    "FLOWHOST_ENTRYPOINT": "tiny.py:Tiny",
    "FLOWHOST_BUCKET": "flowhost-prod-data",
    "FLOWHOST_KMS_KEY_ARN": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd",
    "FLOWHOST_ASYNC_PREFIX": "async/tiny/",
    "FLOWHOST_QUEUE_NAME": "flowhost-prod-tiny-v3",
    "FLOWHOST_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/flowhost-prod-tiny-v3",
    "FLOWHOST_DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/"
    "flowhost-prod-tiny-v3-dlq",
    "AWS_REGION": "eu-west-1",
    "OTEL_SERVICE_NAME": "tiny",  # set too, read by others: ignored here
}


def error_of(**changes: str | None) -> str:
    env = {**GOOD, **{k: v for k, v in changes.items() if v is not None}}
    for name in [k for k, v in changes.items() if v is None]:
        del env[name]
    with pytest.raises(ContainerSettingsError) as raised:
        ContainerSettings.from_env(env)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("container environment: ")
    return message


def test_the_contract_is_read() -> None:
    settings = ContainerSettings.from_env(GOOD)
    assert (settings.service, settings.version, settings.label) == ("tiny", 3, "v3")
    assert settings.port == 8080
    assert settings.package_location == ("flowhost-prod-data", f"packages/{DIGEST}.tar.gz")
    assert settings.run is None
    assert settings.region == "eu-west-1"
    runtime = settings.runtime()
    assert (runtime.version, runtime.environment, runtime.run) == ("v3", "prod", None)
    assert (runtime.metrics, runtime.metrics_interval, runtime.threads) == ("emf", 60.0, 32)


def test_knobs_have_working_defaults() -> None:
    settings = ContainerSettings.from_env(GOOD)
    assert settings.host == "0.0.0.0"
    assert settings.code_dir == Path("/tmp/flowhost/code")
    assert settings.async_jobs is True
    assert settings.result_ttl == 24 * 3600
    assert settings.async_visibility == 60


def test_knobs_are_read() -> None:
    settings = ContainerSettings.from_env(
        {
            **GOOD,
            "FLOWHOST_RUN": "TrainFlow/42",
            "FLOWHOST_HOST": "127.0.0.1",
            "FLOWHOST_ASYNC": "OFF",
            "FLOWHOST_METRICS": "prometheus",
            "FLOWHOST_METRICS_INTERVAL": "5",
            "FLOWHOST_THREADS": "4",
            "FLOWHOST_RESULT_TTL": "3600",
            "FLOWHOST_ASYNC_VISIBILITY": "30",
            "FLOWHOST_CODE_DIR": "/var/tmp/code",
        }
    )
    assert settings.async_jobs is False
    assert (settings.host, settings.code_dir) == ("127.0.0.1", Path("/var/tmp/code"))
    assert (settings.result_ttl, settings.async_visibility) == (3600, 30)
    runtime = settings.runtime()
    assert (runtime.run, runtime.metrics, runtime.metrics_interval) == (
        "TrainFlow/42",
        "prometheus",
        5,
    )
    assert runtime.threads == 4


def test_an_empty_variable_counts_as_unset() -> None:
    assert (
        ContainerSettings.from_env({**GOOD, "FLOWHOST_RUN": "", "FLOWHOST_ASYNC": " "}).run is None
    )
    assert "FLOWHOST_PORT is not set" in error_of(FLOWHOST_PORT="")


def test_a_missing_variable_is_named_with_the_fix() -> None:
    message = error_of(FLOWHOST_QUEUE_URL=None)
    assert "FLOWHOST_QUEUE_URL is not set" in message
    assert "ServiceSpec sets them" in message
    assert "docs/aws.md" in message


def test_every_missing_variable_is_named_once() -> None:
    with pytest.raises(ContainerSettingsError) as raised:
        ContainerSettings.from_env({})
    message = str(raised.value)
    required = [n for n in CONTRACT if n not in OPTIONAL]
    for name in required:
        assert message.count(name) == 1, name
    for name in OPTIONAL - set(KNOBS):  # (a knob's name may be part of a required one's)
        assert name not in message


def test_the_platform_metaflow_settings_are_read_and_checked() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:metaflow-AbCdEf"
    settings = ContainerSettings.from_env(
        {**GOOD, "FLOWHOST_METAFLOW_NAMESPACE": "team:ml", "FLOWHOST_METAFLOW_AUTH_SECRET_ARN": arn}
    )
    assert (settings.metaflow_namespace, settings.metaflow_auth_secret_arn) == ("team:ml", arn)
    assert ContainerSettings.from_env(GOOD).metaflow_namespace is None
    assert "FLOWHOST_METAFLOW_NAMESPACE: " in error_of(FLOWHOST_METAFLOW_NAMESPACE="user: x")
    assert "FLOWHOST_METAFLOW_AUTH_SECRET_ARN: " in error_of(FLOWHOST_METAFLOW_AUTH_SECRET_ARN="x")


@pytest.mark.parametrize(
    ("name", "value", "what", "fix"),
    [
        ("FLOWHOST_VERSION", "3", "not a version label", "v<N>, e.g. v3"),
        ("FLOWHOST_VERSION", "v0", "not a version label", "v<N>"),
        ("FLOWHOST_PORT", "http", "valid integer", "1-65535"),
        ("FLOWHOST_PORT", "70000", "less than or equal to 65535", "1-65535"),
        ("FLOWHOST_CODE_PACKAGE", "https://bucket/key", "not an S3 URI", "s3://<bucket>/"),
        ("FLOWHOST_CODE_PACKAGE", "s3://bucket-only", "not an S3 URI", "s3://<bucket>/"),
        ("FLOWHOST_CODE_DIGEST", "sha256-XYZ", "not a package digest", "64 lowercase hex"),
        ("FLOWHOST_ENTRYPOINT", "tiny.py", "not <file>.py:<Class>", "relative to the"),
        ("FLOWHOST_ENTRYPOINT", "../up.py:Tiny", "not <file>.py:<Class>", "relative to the"),
        ("FLOWHOST_ENTRYPOINT", "/abs/tiny.py:Tiny", "not <file>.py:<Class>", "relative"),
        ("FLOWHOST_KMS_KEY_ARN", "alias/x", "match pattern", "KMS key's ARN"),
        ("FLOWHOST_QUEUE_URL", "flowhost-prod-tiny-v3", "match pattern", "queue URL"),
        ("AWS_REGION", "Ireland", "match pattern", "eu-west-1"),
        ("FLOWHOST_ASYNC_PREFIX", "async/other/", "not async/tiny/", "async/<service>/"),
        ("FLOWHOST_ASYNC", "maybe", "neither on nor off", "Set on"),
        ("FLOWHOST_METRICS", "statsd", "'prometheus' or 'emf'", "Set emf"),
        ("FLOWHOST_THREADS", "0", "greater than or equal to 1", "1-1024"),
        ("FLOWHOST_ASYNC_VISIBILITY", "86400", "less than or equal", "heartbeats"),
        ("FLOWHOST_CODE_DIR", "code", "not an absolute path", "absolute, writable"),
    ],
)
def test_a_bad_value_is_one_line_with_the_variable_value_and_fix(
    name: str, value: str, what: str, fix: str
) -> None:
    message = error_of(**{name: value})
    assert message.startswith(f"container environment: {name}: ")
    assert f"(got {value!r})" in message
    assert what in message
    assert fix in message


def test_problems_are_reported_together_on_one_line() -> None:
    message = error_of(FLOWHOST_VERSION="three", FLOWHOST_BUCKET=None, FLOWHOST_PORT="x")
    assert "FLOWHOST_BUCKET is not set" in message
    assert "FLOWHOST_VERSION: " in message
    assert "FLOWHOST_PORT: " in message


def test_a_long_value_is_shortened() -> None:
    message = error_of(FLOWHOST_CODE_PACKAGE="x" * 5000)
    assert len(message) < 500


def test_every_variable_has_a_fix() -> None:
    fields = {str(f.alias) for f in ContainerSettings.model_fields.values() if f.alias is not None}
    assert fields == set(CONTRACT) | set(KNOBS)
    assert all(hint.startswith("Set ") for hint in (*CONTRACT.values(), *KNOBS.values()))


def test_main_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({**GOOD, "FLOWHOST_VERSION": "latest"}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("flowhost container: container environment: FLOWHOST_VERSION: ")
    assert "'latest'" in err
    assert "Traceback" not in err

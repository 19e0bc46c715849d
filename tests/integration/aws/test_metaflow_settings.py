"""The Metaflow settings on AWS (flowhost.lambdas.aws.metaflow): the metadata service's auth
key fetched from Secrets Manager (moto) and put where Metaflow's service provider reads it,
whether or not Metaflow was imported first; never shown in an error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from flowhost.lambdas.aws.metaflow import (
    AUTH_KEY_ENV,
    AUTH_SECRET_ENV,
    MetaflowSettingsError,
    apply_metaflow_settings,
)

ClientFactory = Callable[[str], Any]
KEY = "mf-key-" + uuid.uuid4().hex


def secret(aws_client: ClientFactory, value: str) -> str:
    made = aws_client("secretsmanager").create_secret(
        Name=f"flowhost-test-metaflow-{uuid.uuid4().hex[:8]}", SecretString=value
    )
    return str(made["ARN"])


@pytest.mark.parametrize("value", [KEY, f"  {KEY}\n", json.dumps({AUTH_KEY_ENV: KEY, "x": 1}),
                                   json.dumps({"auth_key": KEY})])  # fmt: skip
def test_the_key_is_fetched_into_the_environment(aws_client: ClientFactory, value: str) -> None:
    env = {AUTH_SECRET_ENV: secret(aws_client, value)}
    apply_metaflow_settings(lambda: aws_client("secretsmanager"), env)
    assert env[AUTH_KEY_ENV] == KEY


def test_nothing_is_fetched_without_a_secret_or_with_the_key_injected() -> None:
    def refused() -> Any:
        raise AssertionError("no Secrets Manager client should be made")

    apply_metaflow_settings(refused, {})
    injected = {AUTH_SECRET_ENV: "arn:aws:secretsmanager:us-east-1:1:secret:x", AUTH_KEY_ENV: "k"}
    apply_metaflow_settings(refused, injected)
    assert injected[AUTH_KEY_ENV] == "k"


def test_an_unreadable_secret_is_one_line_naming_the_arn(aws_client: ClientFactory) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:flowhost-missing-AbCdEf"
    with pytest.raises(MetaflowSettingsError) as raised:
        apply_metaflow_settings(lambda: aws_client("secretsmanager"), {AUTH_SECRET_ENV: arn})
    message = raised.value.message
    assert message.startswith(f"{AUTH_SECRET_ENV}: Secrets Manager GetSecretValue failed (")
    assert f"(got {arn})" in message
    assert "secretsmanager:GetSecretValue" in message
    assert "\n" not in message


def test_a_json_secret_without_the_key_never_shows_its_value(aws_client: ClientFactory) -> None:
    arn = secret(aws_client, json.dumps({"password": KEY}))
    with pytest.raises(MetaflowSettingsError, match="without a non-empty") as raised:
        apply_metaflow_settings(lambda: aws_client("secretsmanager"), {AUTH_SECRET_ENV: arn})
    assert KEY not in raised.value.message


PROBE = """
import json, sys
if sys.argv[1] == "metaflow-first":
    import metaflow.plugins.metadata_providers.service  # reads its config now
from flowhost.lambdas.aws.metaflow import apply_metaflow_settings
apply_metaflow_settings()
from metaflow.plugins.metadata_providers import service
print(json.dumps(service.SERVICE_HEADERS.get("x-api-key")))
"""


@pytest.mark.parametrize("order", ["settings-first", "metaflow-first"])
def test_metaflow_sends_the_key(
    aws_client: ClientFactory, moto_endpoint: str, base_env: dict[str, str], order: str
) -> None:
    """What Metaflow's service provider sends as x-api-key, in a fresh process whose
    environment is the function's (boto3's default client, AWS_ENDPOINT_URL to moto)."""
    env = {k: v for k, v in base_env.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
        METAFLOW_DEFAULT_METADATA="service", METAFLOW_SERVICE_URL="http://127.0.0.1:9/api",
        **{AUTH_SECRET_ENV: secret(aws_client, KEY)},
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", PROBE, order], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == KEY

"""No credentials in plain environment variables of ECS containers or Lambda functions."""

import json
from typing import Any

import pytest

from policies.engine import UNKNOWN
from policies.rules import credentials
from policies.rules.credentials import FUNCTION, TASK_DEFINITION
from tests.policies.support import messages, res, run

(RULE,) = credentials.RULES
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pypi-AbCdEf"


def task(*environment: tuple[str, str], secrets: list[dict[str, str]] | None = None) -> Any:
    container: dict[str, Any] = {
        "name": "build",
        "image": "registry/runtime:1",
        "environment": [{"name": n, "value": v} for n, v in environment],
    }
    if secrets is not None:
        container["secrets"] = secrets
    return res(TASK_DEFINITION, "build", {"containerDefinitions": json.dumps([container])})


def function(**variables: str) -> Any:
    return res(FUNCTION, "api", {"environment": {"variables": variables}})


def test_names_of_secrets_and_urls_without_credentials_pass() -> None:
    resources = [
        task(
            ("FLOWHOST_PACKAGE_INDEX_URL", "https://pypi.example.com/simple"),
            ("FLOWHOST_KMS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/1"),
            ("FLOWHOST_DB_SECRET_ARN", SECRET),
            ("EMPTY_PASSWORD", ""),
            secrets=[{"name": "FLOWHOST_PACKAGE_INDEX_CREDENTIALS", "valueFrom": SECRET}],
        ),
        function(
            FLOWHOST_CALLBACK_SECRET_ARN=SECRET,
            FLOWHOST_METAFLOW_AUTH_SECRET_ARN=SECRET,
            FLOWHOST_BALANCER_URL="http://internal-alb.elb.amazonaws.com",
            TOKENIZER="bert-base",
        ),
    ]
    assert run([RULE], resources) == []


@pytest.mark.parametrize(
    "name", ["DB_PASSWORD", "FLOWHOST_PACKAGE_INDEX_CREDENTIALS", "GITHUB_TOKEN", "api_key",
             "AWS_SECRET_ACCESS_KEY", "METAFLOW_SERVICE_AUTH_KEY", "SECRET"],
)  # fmt: skip
def test_a_variable_named_like_a_credential_with_a_value_fails(name: str) -> None:
    (message,) = messages(run([RULE], [task((name, "s3cr3t-value"))]))
    assert f"build variable {name!r} is named like a credential" in message
    assert "(got 12 characters)" in message
    assert "s3cr3t" not in message  # the value is never repeated
    assert "secrets (valueFrom a Secrets Manager or SSM ARN)" in message
    (message,) = messages(run([RULE], [function(**{name: "s3cr3t-value"})]))
    assert "function variable" in message
    assert "pass the secret's ARN" in message


def test_a_url_with_a_password_fails_without_showing_it() -> None:
    url = "postgresql://flowhost:hunter2@db.internal:5432/state"
    for resource in (task(("DATABASE_URL", url)), function(INDEX=f"x {url}")):
        (message,) = messages(run([RULE], [resource]))
        assert "holds a URL with user:password@" in message
        assert "hunter2" not in message
        assert "db.internal:5432/state" in message


def test_values_not_known_yet_and_other_resources_are_not_judged() -> None:
    resources = [
        res(TASK_DEFINITION, "later", {"containerDefinitions": UNKNOWN}),
        res(FUNCTION, "later", {"environment": {"variables": {"DB_PASSWORD": UNKNOWN}}}),
        res(TASK_DEFINITION, "not-json", {"containerDefinitions": "[{"}),
        res(FUNCTION, "bare", {}),
        res("aws:ssm/parameter:Parameter", "p", {"value": "DB_PASSWORD=x"}),
    ]
    assert run([RULE], resources) == []

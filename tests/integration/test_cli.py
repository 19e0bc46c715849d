"""The ``flowhost`` command: readable one-line errors, and the definition as JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.support import SERVICES, free_port, run_flowhost


def assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2, nothing on stdout, one line on stderr starting 'error:', no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_serve_missing_file_is_one_readable_line(base_env: dict[str, str]) -> None:
    result = run_flowhost("serve", "missing.py", "--port", str(free_port()), env=base_env)

    line = assert_one_error_line(result)
    assert line.startswith("error: missing.py: no such file (")
    assert "Give the path to a service .py file." in line


def test_error_line_keeps_brackets_in_the_message(base_env: dict[str, str]) -> None:
    result = run_flowhost("serve", "model[dev].py", "--port", str(free_port()), env=base_env)

    line = assert_one_error_line(result)
    assert line.startswith("error: model[dev].py: no such file (")


def test_serve_unknown_class_lists_the_classes_found(base_env: dict[str, str]) -> None:
    result = run_flowhost(
        "serve", "examples/services/sentiment.py:Nope", "--port", str(free_port()), env=base_env
    )

    line = assert_one_error_line(result)
    assert "no WebServiceSpec class 'Nope' in sentiment.py" in line
    assert "Classes found: Sentiment." in line


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("lots", "--max-body-size: cannot read 'lots' as a size"),
        ("100", "--max-body-size: must be between 1Ki and 1Gi (got '100')."),
        ("2Gi", "--max-body-size: must be between 1Ki and 1Gi (got '2Gi')."),
    ],
    ids=["unreadable", "too-small", "too-large"],
)
def test_serve_bad_body_size_is_one_readable_line(
    base_env: dict[str, str], size: str, expected: str
) -> None:
    toolbox = str(SERVICES / "toolbox.py")
    result = run_flowhost(
        "serve", toolbox, "--port", str(free_port()), "--max-body-size", size, env=base_env
    )

    assert expected in assert_one_error_line(result)


def test_definition_prints_the_service_definition_as_json(base_env: dict[str, str]) -> None:
    result = run_flowhost("definition", "examples/services/sentiment.py", env=base_env)

    assert result.returncode == 0, result.stderr
    definition = json.loads(result.stdout)
    assert definition["schema_version"] == 1
    assert definition["name"] == "sentiment"
    assert definition["class_name"] == "Sentiment"
    assert definition["entrypoint"] == "sentiment.py:Sentiment"
    assert definition["description"] == "Scores the sentiment of short texts."
    assert definition["artifacts"] == {"flow": "SentimentFlow", "run": None, "namespace": None}
    [predict] = definition["endpoints"]
    assert predict["name"] == "predict"
    assert predict["http_methods"] == ["POST"]
    request = predict["request"]
    assert request["kind"] == "model"
    assert request["type_name"] == "PredictIn"
    assert request["json_schema"]["required"] == ["text"]
    assert request["json_schema"]["properties"]["text"]["maxLength"] == 10_000
    response = predict["response"]
    assert response["type_name"] == "PredictOut"
    assert set(response["json_schema"]["properties"]) == {"label", "score"}


def test_definition_of_a_dict_style_service(base_env: dict[str, str]) -> None:
    result = run_flowhost("definition", "examples/services/show_data.py", env=base_env)

    assert result.returncode == 0, result.stderr
    [show] = json.loads(result.stdout)["endpoints"]
    assert show["request"]["kind"] == "dict"
    assert show["request"]["type_name"] is None
    assert show["request"]["json_schema"]["type"] == "object"
    assert show["response"]["kind"] == "dict"


TARGETS = """
[targets.prod]
url = "https://abc123.execute-api.eu-west-1.amazonaws.com"
auth = "sigv4"
profile = "ml"

[targets.staging]
url = "https://flowhost.staging.example.com"
auth = "token"
"""


def with_config(base_env: dict[str, str], tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return {**base_env, "FLOWHOST_CONFIG": str(path)}


def test_targets_lists_name_url_auth_and_marks_the_default(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**with_config(base_env, tmp_path, TARGETS), "FLOWHOST_TARGET": "staging"}

    result = run_flowhost("targets", env=env)

    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.strip().splitlines()]
    assert rows == [
        ["target", "url", "auth"],
        ["local", "http://127.0.0.1:8080", "none"],
        ["prod", "https://abc123.execute-api.eu-west-1.amazonaws.com", "sigv4", "(profile=ml)"],
        ["*", "staging", "https://flowhost.staging.example.com", "token"],
        ["config:", str(tmp_path / "config.toml")],
    ]


def test_without_a_config_file_local_is_the_default(base_env: dict[str, str]) -> None:
    result = run_flowhost("targets", env=base_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == ["*", "local", "http://127.0.0.1:8080", "none"]
    assert "(absent: only the implicit local target)" in result.stdout


def test_an_unknown_target_is_one_line_listing_the_configured_ones(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    env = with_config(base_env, tmp_path, TARGETS)

    result = run_flowhost("ls", "--target", "prd", env=env)

    assert assert_one_error_line(result) == (
        f"error: target 'prd': not configured in {tmp_path / 'config.toml'} "
        "(targets: local, prod, staging). Add a [targets.prd] table to that file, "
        "or pick one of those."
    )


def test_a_bad_config_file_is_one_line_naming_the_file_the_key_and_the_fix(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    env = with_config(base_env, tmp_path, TARGETS.replace('auth = "token"', 'auth = "oauth"'))

    result = run_flowhost("status", "sentiment", "--target", "prod", env=env)

    assert assert_one_error_line(result) == (
        f"error: {tmp_path / 'config.toml'}: targets.staging.auth: Input should be 'none', "
        "'sigv4' or 'token' (got 'oauth'). Use auth = \"none\", \"sigv4\" or \"token\"."
    )


def test_target_and_url_together_are_one_line(base_env: dict[str, str]) -> None:
    result = run_flowhost("ls", "--target", "local", "--url", "http://127.0.0.1:1", env=base_env)

    assert "--target and --url: give one of them" in assert_one_error_line(result)

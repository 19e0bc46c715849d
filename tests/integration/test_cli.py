"""The ``flowhost`` command: readable one-line errors, and the definition as JSON."""

from __future__ import annotations

import json
import subprocess

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

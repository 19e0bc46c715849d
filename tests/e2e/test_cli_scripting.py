"""The ``flowhost`` command as a pipeline runs it: every ``--json`` document validated
against the schema shipped in the package, and each exit code for its class of failure
(flowhost/cli/exits.py), against a real local platform."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import jsonschema
import pytest

from flowhost.cli.output import schema_of
from tests.e2e.harness import EXAMPLE, SERVICES, Platform
from tests.integration.support import free_port, poll, run_flowhost

STRICT = str(SERVICES / "sentiment_strict.py")  # breaks v1's contract
COMPATIBLE = str(SERVICES / "sentiment_v2.py")


def run(platform_url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_flowhost(*args, "--url", platform_url, env=env, timeout=120.0)


def document(result: subprocess.CompletedProcess[str], exit_code: int, schema: str) -> Any:
    """The one JSON document on stdout, checked against ``schema`` after checking the
    exit code; a failure's (schema ``error``) also has its one line on stderr."""
    assert result.returncode == exit_code, result.stdout + result.stderr
    found = json.loads(result.stdout)  # exactly one document: trailing text would not parse
    jsonschema.validate(found, schema_of(schema))
    assert "Traceback" not in result.stderr
    if schema == "error":
        last = result.stderr.strip().splitlines()[-1]
        assert last.lower().startswith("error: "), result.stderr  # typer says "Error: "
        assert found["error"]["exit_code"] == exit_code
    return found


def test_read_commands_print_documents_of_their_schemas(
    sentiment_platform: Platform, base_env: dict[str, str]
) -> None:
    url = sentiment_platform.url

    listed = document(run(url, base_env, "ls", "--json"), 0, "ls")
    assert [s["name"] for s in listed["services"]] == ["sentiment"]
    assert listed["services"][0]["aliases"] == {"production": 1}
    status = document(run(url, base_env, "status", "sentiment", "--json"), 0, "status")
    assert [v["number"] for v in status["service"]["versions"]] == [1]
    assert any(e["kind"] == "promote" for e in status["events"])
    answer = document(
        run(url, base_env, "invoke", "sentiment", "predict", "--data", '{"text":"great"}',
            "--json"), 0, "invoke",
    )  # fmt: skip
    assert answer["result"]["label"] == "positive"
    logs = document(run(url, base_env, "logs", "sentiment", "--tail", "5", "--json"), 0, "logs")
    assert (logs["service"], logs["version"]) == ("sentiment", 1)
    who = document(run(url, base_env, "whoami", "--json"), 0, "whoami")
    assert who["url"] == url

    queued = run(
        url, base_env, "invoke", "sentiment", "predict", "--async", "--data", '{"text":"bad"}',
        "--json",
    )  # fmt: skip
    waited = document(queued, 0, "invoke")
    assert waited["result"]["label"] == "negative"
    request_id = waited["request"]["id"]
    assert request_id in queued.stderr  # "queued <id>" is progress: stderr
    seen = document(run(url, base_env, "request", request_id, "--json"), 0, "request")
    assert seen["status"]["status"] == "succeeded"
    result = document(run(url, base_env, "request", request_id, "--result", "--json"), 0, "request")
    assert result["result"] == waited["result"]
    why = document(run(url, base_env, "request", request_id, "--detail", "--json"), 0, "request")
    assert (why["detail"]["id"], why["detail"].get("detail")) == (request_id, None)  # no failure


def test_local_commands_print_documents_of_their_schemas(base_env: dict[str, str]) -> None:
    version = run_flowhost("version", "--json", env=base_env)
    assert document(version, 0, "version")["version"]
    flag = run_flowhost("--version", env=base_env)
    assert flag.returncode == 0
    assert flag.stdout.strip() == json.loads(version.stdout)["version"]
    definition = run_flowhost("definition", str(EXAMPLE), "--json", env=base_env)
    assert document(definition, 0, "definition")["name"] == "sentiment"
    targets = document(run_flowhost("targets", "--json", env=base_env), 0, "targets")
    assert targets["default"] == "local"
    completion = run_flowhost("--show-completion", "bash", env=base_env)
    assert completion.returncode == 0, completion.stderr
    assert "_flowhost_completion" in completion.stdout


def test_contract_check_lists_breaking_changes_and_exits_4(
    sentiment_platform: Platform, base_env: dict[str, str]
) -> None:
    url = sentiment_platform.url

    broken = run(url, base_env, "contract", "check", STRICT, "--json")
    report = document(broken, 4, "contract-check")
    assert report == {
        "service": "sentiment",
        "alias": "production",
        "version": 1,
        "compatible": False,
        "breaking_changes": [
            "endpoint 'predict' request: field 'language' is a new required field",
            "endpoint 'predict' response: field 'score' was removed",
        ],
    }
    plain = run(url, base_env, "contract", "check", STRICT)
    assert plain.returncode == 4
    assert plain.stdout.splitlines()[1:] == [f"  {c}" for c in report["breaking_changes"]]

    fine = document(
        run(url, base_env, "contract", "check", COMPATIBLE, "--json"), 0, "contract-check"
    )
    assert (fine["compatible"], fine["breaking_changes"], fine["version"]) == (True, [], 1)
    first = run(url, base_env, "contract", "check", str(SERVICES / "quality_good.py"), "--json")
    assert document(first, 0, "contract-check")["version"] is None  # nothing deployed yet
    other_alias = run(url, base_env, "contract", "check", STRICT, "--alias", "canary", "--json")
    assert document(other_alias, 0, "contract-check")["compatible"] is True


@pytest.mark.parametrize(
    ("args", "exit_code", "code"),
    [
        (("status", "nosuch"), 3, "not_found"),
        (("invoke", "sentiment", "classify"), 3, "not_found"),
        (("request", "0123456789abcdef0123456789abcdef"), 3, "request_not_found"),
        (("logs", "sentiment", "v9"), 3, "not_found"),
        (("promote", "sentiment", "two"), 2, "usage"),
        (("invoke", "sentiment", "predict", "--data", "{"), 2, "usage"),
        (("deploy", str(EXAMPLE), "--no-wait", "--promote"), 2, "usage"),
        (("ls", "--no-such-option"), 2, "usage"),
        (("undeploy", "sentiment", "v1"), 1, "deploy_failed"),  # production points at it
    ],
)
def test_each_class_of_failure_exits_with_its_code(
    sentiment_platform: Platform,
    base_env: dict[str, str],
    args: tuple[str, ...],
    exit_code: int,
    code: str,
) -> None:
    result = run(sentiment_platform.url, base_env, *args, "--json")

    error = document(result, exit_code, "error")["error"]
    assert error["code"] == code, error


def test_an_unreachable_platform_exits_1(base_env: dict[str, str]) -> None:
    result = run(f"http://127.0.0.1:{free_port()}", base_env, "ls", "--json")

    error = document(result, 1, "error")["error"]
    assert error["message"].startswith("cannot reach the flowhost platform")


def test_deploy_promote_rollback_undeploy_as_a_pipeline(
    platform: Platform, base_env: dict[str, str]
) -> None:
    url = platform.url

    first = run(url, base_env, "deploy", str(EXAMPLE), "--promote", "--json")
    v1 = document(first, 0, "deploy")
    assert (v1["number"], v1["status"]) == (1, "ready")
    progress = first.stderr.splitlines()
    assert "  starting the first instance" in progress  # plain lines: stderr is no terminal
    assert "\r" not in first.stderr
    assert "\x1b[" not in first.stderr
    accepted = document(run(url, base_env, "deploy", STRICT, "--no-wait", "--json"), 0, "deploy")
    assert (accepted["number"], accepted["status"]) == (2, "deploying")  # it did not wait
    poll(
        "sentiment v2 ready",
        lambda: platform.client.version("sentiment", 2)["status"] == "ready" or None,
        120.0,
    )

    refused = run(url, base_env, "promote", "sentiment", "v2", "--json")
    error = document(refused, 4, "error")["error"]
    assert error["code"] == "contract_broken"
    assert "field 'language' is a new required field" in error["message"]
    moved = run(url, base_env, "promote", "sentiment", "v2", "--allow-breaking", "--json")
    assert document(moved, 0, "promote") == {
        "service": "sentiment", "alias": "production", "version": 2, "previous": 1,
    }  # fmt: skip
    back = document(run(url, base_env, "rollback", "sentiment", "--json"), 0, "rollback")
    assert back == {"service": "sentiment", "alias": "production", "version": 1}
    gone = document(run(url, base_env, "undeploy", "sentiment", "v2", "--json"), 0, "undeploy")
    assert (gone["number"], gone["status"]) == (2, "undeployed")


def test_failed_audits_exit_4_and_a_deadline_exits_5(
    platform: Platform, base_env: dict[str, str]
) -> None:
    url = platform.url

    audited = run(url, base_env, "deploy", str(SERVICES / "quality_bad.py"), "--promote", "--json")
    error = document(audited, 4, "error")["error"]
    assert error["code"] == "audit_failed"
    assert "knows_pass_from_fail" in error["message"]
    assert platform.service("quality")["aliases"] == {}

    late = run(url, base_env, "deploy", str(EXAMPLE), "--timeout", "0", "--json")
    error = document(late, 5, "error")["error"]
    assert error["code"] == "timed_out"
    assert "was not ready within 0s" in error["message"]

    document(run(url, base_env, "deploy", str(SERVICES / "jobs.py"), "--json"), 0, "deploy")
    nap = '{"seconds": 30, "tag": "t"}'
    napping = run(
        url, base_env, "invoke", "jobs@v1", "slow", "--async", "--data", nap,
        "--wait-timeout", "0.5", "--json",
    )  # fmt: skip
    error = document(napping, 5, "error")["error"]
    assert error["code"] == "timed_out"
    assert "after 0.5s" in error["message"]

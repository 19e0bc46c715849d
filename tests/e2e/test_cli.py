"""The ``flowhost`` command against a running platform (``--url``), and without one."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import ACTOR, SERVICES, Platform
from tests.integration.support import free_port, run_flowhost


@pytest.fixture(scope="module")
def cli_env(base_env: dict[str, str]) -> dict[str, str]:
    return {**base_env, "COLUMNS": "200"}  # a wide terminal: tables are not wrapped


def flowhost(platform: Platform, env: dict[str, str], *args: str) -> str:
    """Run ``flowhost args --url <platform>``; its stdout, after checking it succeeded."""
    result = run_flowhost(*args, "--url", platform.url, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout


def warm(platform: Platform) -> None:
    """One request, so the example service (idle_timeout 20s) runs one instance right now."""
    response = platform.http.post("/sentiment/predict", json={"text": "great"})
    assert response.status_code == 200, response.text


def table_rows(out: str) -> list[list[str]]:
    """The header and body rows of the rich tables in ``out``, as lists of cells."""
    return [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in out.splitlines()
        if line.startswith(("│", "┃"))
    ]


def one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The exit code of the failure's class, one line on stderr starting 'error:' (after
    any indented progress lines), no traceback."""
    assert result.returncode == exit_code, result.stdout + result.stderr
    lines = [line for line in result.stderr.rstrip().splitlines() if not line.startswith("  ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_ls_lists_services_aliases_versions_and_instances(
    sentiment_platform: Platform, cli_env: dict[str, str]
) -> None:
    warm(sentiment_platform)
    out = flowhost(sentiment_platform, cli_env, "ls")

    assert table_rows(out) == [
        ["service", "aliases", "versions", "instances"],
        ["sentiment", "production→v1", "v1 ready", "v1: 1"],
    ]


def test_status_shows_versions_runs_aliases_and_events(
    sentiment_platform: Platform, cli_env: dict[str, str], sentiment_run: str
) -> None:
    warm(sentiment_platform)
    out = flowhost(sentiment_platform, cli_env, "status", "sentiment")

    assert table_rows(out) == [
        ["version", "status", "run", "created by", "instances", "error"],
        ["v1", "ready", sentiment_run, ACTOR, "1", ""],
    ]
    assert "aliases: production→v1" in out.splitlines()
    events = [line.split(" ", 3)[-1] for line in out.splitlines() if line.startswith("  ")]
    assert f"promote production v1 by {ACTOR}" in events


def test_invoke_prints_the_json_answer_and_logs_show_it(
    sentiment_platform: Platform, cli_env: dict[str, str]
) -> None:
    out = flowhost(
        sentiment_platform, cli_env, "invoke", "sentiment", "predict", "--data", '{"text":"great"}'
    )
    answer = json.loads(out)
    assert answer["label"] == "positive"
    assert set(answer) == {"label", "score"}

    pinned = flowhost(
        sentiment_platform, cli_env, "invoke", "sentiment@v1", "predict", "--data", '{"text":"bad"}'
    )
    assert json.loads(pinned)["label"] == "negative"

    logs = flowhost(sentiment_platform, cli_env, "logs", "sentiment", "--tail", "500")
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "flowhost.access"]
    assert access, logs
    assert access[-1]["path"] == "/predict"
    assert access[-1]["status"] == 200
    assert flowhost(sentiment_platform, cli_env, "logs", "sentiment", "v1", "--tail", "500")


def test_invoke_with_bad_json_is_one_error_line(
    sentiment_platform: Platform, cli_env: dict[str, str]
) -> None:
    result = run_flowhost(
        "invoke", "sentiment", "predict", "--data", "not json", "--url", sentiment_platform.url,
        env=cli_env,
    )  # fmt: skip

    line = one_error_line(result, 2)  # usage
    assert line == "error: --data: not valid JSON (Expecting value at column 1)."
    assert result.stdout == ""


def test_invoke_unknown_endpoint_is_one_error_line(
    sentiment_platform: Platform, cli_env: dict[str, str]
) -> None:
    result = run_flowhost(
        "invoke", "sentiment", "classify", "--url", sentiment_platform.url, env=cli_env
    )

    line = one_error_line(result, 3)  # not found
    assert line == "error: sentiment@v1 has no endpoint 'classify'. Endpoints: predict."


def test_deploy_without_a_platform_is_one_error_line(cli_env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_flowhost("deploy", "examples/services/sentiment.py", "--url", url, env=cli_env)

    line = one_error_line(result, 1)  # failed
    assert line.startswith(f"error: cannot reach the flowhost platform at {url}.")
    assert "Start it with 'flowhost up'" in line


def test_deploy_promote_rollback_undeploy(platform: Platform, cli_env: dict[str, str]) -> None:
    v2 = str(SERVICES / "sentiment_v2.py")

    first = run_flowhost(
        "deploy", "examples/services/sentiment.py", "--promote", "--url", platform.url,
        env=cli_env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout == "deployed sentiment v1\n"  # progress is on stderr, plain lines
    assert "  starting the first instance" in first.stderr.splitlines()
    second = run_flowhost("deploy", v2, "--url", platform.url, env=cli_env)
    assert second.stdout == "deployed sentiment v2\n", second.stderr
    assert platform.service("sentiment")["aliases"] == {"production": 1}

    assert flowhost(platform, cli_env, "promote", "sentiment", "v2") == (
        "sentiment@production -> v2 (was v1)\n"
    )
    assert flowhost(platform, cli_env, "rollback", "sentiment") == "sentiment@production -> v1\n"
    refused = run_flowhost("undeploy", "sentiment", "v1", "--url", platform.url, env=cli_env)
    assert "is still the target of alias(es) production" in one_error_line(refused, 1)
    assert flowhost(platform, cli_env, "undeploy", "sentiment", "v2") == "undeployed sentiment v2\n"

    info = platform.service("sentiment")
    assert info["aliases"] == {"production": 1}
    assert [(v["number"], v["status"]) for v in info["versions"]] == [
        (1, "ready"),
        (2, "undeployed"),
    ]
    bad = run_flowhost("promote", "sentiment", "two", "--url", platform.url, env=cli_env)
    said = one_error_line(bad, 2)
    assert said == "error: version: expected v<N> or <N> (got 'two'). For example v3."


def test_a_named_target_reaches_the_platform_and_whoami_shows_the_actor(
    sentiment_platform: Platform, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.laptop]\nurl = "{sentiment_platform.url}"\n')
    env = {**cli_env, "FLOWHOST_CONFIG": str(config), "FLOWHOST_TARGET": "laptop"}

    whoami = run_flowhost("whoami", env=env)
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.splitlines()[0] == f"target: laptop ({sentiment_platform.url})"
    assert re.fullmatch(r"actor:  \S+@\S+  \(from header\)", whoami.stdout.splitlines()[1])
    listed = run_flowhost("ls", env=env)  # FLOWHOST_TARGET picks it
    assert listed.returncode == 0, listed.stderr
    assert table_rows(listed.stdout)[1][:2] == ["sentiment", "production→v1"]
    named = run_flowhost("status", "sentiment", "--target", "laptop", env=cli_env | env)
    assert named.returncode == 0, named.stderr
    assert f"promote production v1 by {ACTOR}" in named.stdout

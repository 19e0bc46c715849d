"""An instance's life: not ready while ``initialize`` runs, ready after, gone if it fails."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import (
    SERVICES,
    SentimentRuns,
    ServeFactory,
    free_port,
    poll,
    run_flowhost,
)


def json_lines(text: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def serve_until_exit(
    target: str, *options: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``flowhost serve`` expected to stop by itself (bounded by the timeout)."""
    port = str(free_port())
    return run_flowhost("serve", target, "--host", "127.0.0.1", "--port", port, *options, env=env)


def test_not_ready_until_initialize_returns(serve: ServeFactory, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    server = serve(str(SERVICES / "gated.py"), ready=False, env={"FLOWHOST_TEST_GATE": str(gate)})

    health = server.client.get("/healthz")
    ready = server.client.get("/readyz")
    call = server.client.post("/ping", json={})
    info = server.client.get("/info").json()

    assert health.status_code == 200
    assert health.json() == {"status": "alive"}
    assert ready.status_code == 503
    assert ready.json() == {"status": "starting", "error": None}
    assert call.status_code == 503
    assert call.headers["retry-after"] == "1"
    error = call.json()["error"]
    assert error["code"] == "not_ready"
    assert error["message"] == "the instance is starting; retry shortly."
    assert error["request_id"] == call.headers["x-request-id"]
    assert info["status"] == "starting"
    assert "flowhost_instance_ready 0.0" in server.client.get("/metrics").text

    staged = tmp_path / "gate.tmp"
    staged.write_text("opened-4821\n")
    staged.rename(gate)  # appears at once, with its content
    server.wait_ready()

    assert server.client.get("/readyz").json() == {"status": "ready", "error": None}
    response = server.client.post("/ping", json={})
    assert response.status_code == 200, response.text
    assert response.json() == {"token": "opened-4821"}
    assert "flowhost_instance_ready 1.0" in server.client.get("/metrics").text


def test_initialize_that_raises_exits_1_and_logs_why(base_env: dict[str, str]) -> None:
    result = serve_until_exit(str(SERVICES / "broken_init.py"), env=base_env)

    assert result.returncode == 1, result.stderr
    [failure] = [r for r in json_lines(result.stderr) if r["message"] == "initialize raised"]
    assert failure["level"] == "error"
    assert failure["logger"] == "flowhost.instance"
    assert "ValueError: corrupt model file: checksum 0xdead does not match" in failure["traceback"]
    assert "in initialize" in failure["traceback"]


def test_service_bound_to_a_missing_flow_exits_1_naming_it(
    base_env: dict[str, str], sentiment_runs: SentimentRuns
) -> None:
    result = serve_until_exit(str(SERVICES / "missing_flow.py"), env=base_env)

    assert result.returncode == 1, result.stderr
    [failure] = [
        r for r in json_lines(result.stderr) if r["message"].startswith("initialize failed")
    ]
    message: str = failure["message"]
    assert message.startswith("initialize failed: Artifacts(flow='NoSuchFlow'): no such flow in ")
    assert "Flows found: SentimentFlow." in message
    assert "Run the flow first" in message
    assert "traceback" not in failure  # a FlowhostError is a plain message, not a stack trace
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ("SentimentFlow/123", "Artifacts(run='SentimentFlow/123'): no such run of flow"),
        ("Bogus", "run: not a run pathspec of the form 'FlowName/run_id' (got 'Bogus')"),
        ("OtherFlow/1", "run 'OtherFlow/1' belongs to flow 'OtherFlow', not 'SentimentFlow'"),
    ],
    ids=["missing", "malformed", "other-flow"],
)
def test_pinned_run_that_cannot_serve_is_refused_before_serving(
    base_env: dict[str, str], sentiment_runs: SentimentRuns, run: str, expected: str
) -> None:
    result = serve_until_exit("examples/services/sentiment.py", "--run", run, env=base_env)

    assert result.returncode == 1, result.stderr  # failed, not usage (flowhost/cli/exits.py)
    assert result.stderr.startswith("error: "), result.stderr
    assert expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_shuts_down_gracefully_on_sigterm(serve: ServeFactory) -> None:
    server = serve(str(SERVICES / "toolbox.py"))
    assert server.client.post("/echo", json={"text": "x"}).status_code == 200

    server.process.terminate()

    # uvicorn shuts down, then re-raises the signal it caught, as process managers expect
    assert poll("the server to exit", server.process.poll) == -signal.SIGTERM
    messages = [r["message"] for r in server.log_records()]
    pid = server.process.pid
    assert messages[-2:] == ["Application shutdown complete.", f"Finished server process [{pid}]"]

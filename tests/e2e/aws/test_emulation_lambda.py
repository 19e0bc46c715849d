"""The Lambda emulation behaves as Lambda does where the control plane depends on it:
timeouts kill, idle environments are frozen, concurrency gets new environments, the
Invoke API (RequestResponse, Event) answers as Lambda's."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tests.e2e.aws.lambdas import CREDENTIALS, FunctionError, LambdaEmulator, LambdaFunction


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    try:
        return _state(pid) != "Z"
    except FileNotFoundError:
        return False


def test_the_environment_is_the_stack_s_plus_what_lambda_adds(functions: LambdaEmulator) -> None:
    answer = functions.invoke("echo", {"hello": "world"})
    assert answer["event"] == {"hello": "world"}
    assert answer["function_name"] == "echo"
    assert answer["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert answer["memory"] == "256"
    assert 0 < answer["remaining_ms"] <= 1000
    env = answer["env"]
    assert env["TOY_SETTING"] == "echo"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == functions.url
    assert env["AWS_ACCESS_KEY_ID"] == CREDENTIALS["AWS_ACCESS_KEY_ID"]
    # nothing of the test process leaks in
    assert "HOME" not in env
    assert "PYTEST_CURRENT_TEST" not in env
    assert "PYTHONPATH" not in env


def test_a_worker_is_frozen_between_invocations(functions: LambdaEmulator) -> None:
    first = functions.invoke("ticker", {})
    (worker,) = [p for p in functions.workers("ticker") if p.pid == first["pid"]]
    assert _state(worker.pid) == "T"  # stopped while idle
    time.sleep(1.0)  # a thread that ran would tick 50 times here
    second = functions.invoke("ticker", {})
    assert second["pid"] == first["pid"]  # the same (warm) environment
    # the background thread made no progress while frozen: its longest pause covers the wait
    assert second["longest_pause"] >= 0.9


def test_a_function_past_its_timeout_is_killed(functions: LambdaEmulator) -> None:
    warm = functions.invoke("sleep", {"seconds": 0})
    with pytest.raises(FunctionError) as failed:
        functions.invoke("sleep", {"seconds": 5})
    message = failed.value.payload["errorMessage"]
    assert message.endswith("Task timed out after 1.00 seconds")
    after = functions.invoke("sleep", {"seconds": 0})
    assert after["pid"] != warm["pid"]  # the timed-out environment is gone
    assert not _alive(warm["pid"])


def test_concurrent_invocations_get_their_own_workers(functions: LambdaEmulator) -> None:
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: functions.invoke("sleep", {"seconds": 0.5}), range(2)))
    assert answers[0]["pid"] != answers[1]["pid"]


def test_cold_mode_starts_every_invocation_fresh(moto_endpoint: str, tmp_path: Any) -> None:
    cold = LambdaEmulator(moto_endpoint, tmp_path / "logs", cold=True)
    try:
        cold.register(LambdaFunction("echo", "tests.e2e.aws.handlers.echo", {}, timeout=5))
        first, second = cold.invoke("echo", {}), cold.invoke("echo", {})
        assert first["pid"] != second["pid"]
        assert not _alive(first["pid"])
    finally:
        cold.close()


def _client(emulator: LambdaEmulator) -> Any:
    return boto3.client(
        "lambda", endpoint_url=emulator.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def test_the_invoke_api_answers_as_lambda(functions: LambdaEmulator) -> None:
    client = _client(functions)
    try:
        ok = client.invoke(FunctionName="echo", Payload=json.dumps({"n": 1}))
        assert ok["StatusCode"] == 200
        assert "FunctionError" not in ok
        assert json.loads(ok["Payload"].read())["event"] == {"n": 1}
        failed = client.invoke(FunctionName="fail", Payload=b"{}")
        assert failed["FunctionError"] == "Unhandled"
        assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="missing", Payload=b"{}")
        arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"
        by_arn = client.invoke(FunctionName=arn, Payload=b'{"by": "arn"}')
        assert json.loads(by_arn["Payload"].read())["event"] == {"by": "arn"}
    finally:
        client.close()


def _wait_for_event(emulator: LambdaEmulator, name: str, event: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(i.event == event and i.error is None for i in emulator.invocations_of(name)):
            return True
        time.sleep(0.05)
    return False


def test_event_invocations_are_accepted_then_run(functions: LambdaEmulator) -> None:
    client = _client(functions)
    try:
        marker = {"event-mode": os.urandom(4).hex()}
        answer = client.invoke(FunctionName="echo", InvocationType="Event",
                               Payload=json.dumps(marker))  # fmt: skip
        assert answer["StatusCode"] == 202
        assert _wait_for_event(functions, "echo", marker, timeout=30)
    finally:
        client.close()


def test_a_function_invokes_another_through_the_invoke_api(functions: LambdaEmulator) -> None:
    marker = {"self-invocation": os.urandom(4).hex()}
    assert functions.invoke("invoke_later", {"target": "echo", "payload": marker}) == {
        "status": 202
    }
    assert _wait_for_event(functions, "echo", marker, timeout=30)


def test_a_response_over_6_mb_is_an_error(functions: LambdaEmulator) -> None:
    invocation = functions.invoke_raw("big", {"bytes": 7 * 1024 * 1024})
    assert invocation.error == "Unhandled"
    assert invocation.payload["errorType"] == "Function.ResponseSizeTooLarge"

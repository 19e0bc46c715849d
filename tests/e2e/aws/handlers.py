"""Small Lambda handlers for the emulation's own tests (run inside its workers)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

_ticks: list[float] = []


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": dict(os.environ),
        "pid": os.getpid(),
    }


def sleep(event: Any, context: Any) -> dict[str, Any]:
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"], "pid": os.getpid()}


def fail(event: Any, context: Any) -> None:
    raise ValueError("the handler failed on purpose")


def big(event: Any, context: Any) -> str:
    return "x" * int(event["bytes"])


def _tick() -> None:
    while True:
        _ticks.append(time.monotonic())
        time.sleep(0.02)


def ticker(event: Any, context: Any) -> dict[str, Any]:
    """First call starts a thread that ticks every 20 ms; every call returns the longest
    pause between two ticks so far (a frozen worker's thread pauses as long as it is frozen)."""
    if not _ticks:
        threading.Thread(target=_tick, daemon=True).start()
    time.sleep(0.1)  # a few ticks in this invocation, the first after any pause
    ticks = list(_ticks)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return {"ticks": len(ticks), "longest_pause": max(gaps, default=0.0), "pid": os.getpid()}


def invoke_later(event: Any, context: Any) -> dict[str, Any]:
    """Invokes ``event["target"]`` asynchronously through the Lambda API (boto3)."""
    import json

    import boto3

    client = boto3.client("lambda")
    answer = client.invoke(
        FunctionName=event["target"], InvocationType="Event", Payload=json.dumps(event["payload"])
    )
    return {"status": answer["StatusCode"]}

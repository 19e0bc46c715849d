"""One Lambda execution environment: imports the handler, then serves invocations.

Run by :mod:`tests.e2e.aws.lambdas` as ``python lambda_worker.py <module.function>`` with
the function's environment. Invocations arrive on stdin, one JSON line each
(``{"event", "request_id", "deadline_ms", "arn"}``); each answer goes back as one JSON line
(``{"payload"}`` or ``{"error"}``) on a private copy of the original stdout, while the
handler's own prints go to stderr, as Lambda's logs do.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class Context:
    """What Lambda's Python runtime passes as ``context``."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = str(request["arn"])
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = str(request["request_id"])
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def main() -> None:
    handler_name = sys.argv[1]
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])  # as Lambda's runtime does
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints go to the log (stderr), never into the answers
    sys.stdout = sys.stderr
    module_name, _, function_name = handler_name.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        init_error = _error(exc, "Runtime.ImportModuleError")
        for line in sys.stdin:
            answers.write(json.dumps({"error": init_error}) + "\n")
            del line
        return
    for line in sys.stdin:
        request = json.loads(line)
        try:
            payload = handler(request["event"], Context(request))
            answer = {"payload": payload}
            text = json.dumps(answer)
        except Exception as exc:
            text = json.dumps({"error": _error(exc)})
        answers.write(text + "\n")


if __name__ == "__main__":
    main()

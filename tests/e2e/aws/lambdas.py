"""A Lambda emulation: functions the stack declares, run the way Lambda runs them.

Each execution environment is a worker process (the project's Python importing the
handler, :mod:`tests.e2e.aws.lambda_worker`) with exactly the function's environment from
the stack plus what Lambda's runtime adds (function name, region, credentials, and the
emulation's endpoints: ``AWS_ENDPOINT_URL`` for moto, ``AWS_ENDPOINT_URL_LAMBDA`` for this
emulation's Invoke API). Between invocations a worker is frozen (``SIGSTOP``), so threads
and tasks the code left running make no progress, and thawed (``SIGCONT``) for the next
one. The timeout is enforced: the worker is killed and the caller gets Lambda's
``Task timed out after N.00 seconds``; the next invocation starts a fresh worker. A
concurrent invocation gets a worker of its own. ``cold=True`` runs every invocation in a
fresh process.

:meth:`LambdaEmulator.invoke` is the Python entry point (API Gateway and ALB emulations);
:attr:`LambdaEmulator.url` serves Lambda's Invoke API
(``POST /2015-03-31/functions/{name}/invocations``) for boto3 inside the functions.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FunctionError", "Invocation", "LambdaEmulator", "LambdaFunction"]

ROOT = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("lambda_worker.py")
ACCOUNT_ID = "123456789012"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response limit
# moto's fake credentials: what Lambda's runtime would hand the function's role
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAFLOWHOSTLAMBDA00",
    "AWS_SECRET_ACCESS_KEY": "flowhost-lambda-role-secret",
    "AWS_SESSION_TOKEN": "flowhost-lambda-role-session",
}


@dataclass(frozen=True)
class LambdaFunction:
    """A function as the stack declared it."""

    name: str
    handler: str
    environment: Mapping[str, str]
    timeout: int = 3
    memory_mb: int = 128
    role: str = ""
    region: str = "us-east-1"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.name}"


@dataclass(frozen=True)
class Invocation:
    """One invocation's outcome: the payload Lambda returns and its function error, if any."""

    function: str
    event: Any
    payload: Any
    error: str | None = None  # "Unhandled" as X-Amz-Function-Error
    request_id: str = ""
    size: int = 0  # bytes of the serialized payload


class FunctionError(Exception):
    """The function failed (``X-Amz-Function-Error``); ``payload`` is Lambda's error body."""

    def __init__(self, invocation: Invocation) -> None:
        payload = invocation.payload if isinstance(invocation.payload, dict) else {}
        super().__init__(f"{invocation.function}: {payload.get('errorMessage', 'failed')}")
        self.invocation = invocation
        self.payload: dict[str, Any] = payload


class _Worker:
    """One execution environment: a process that is frozen whenever it is not invoked."""

    def __init__(self, function: LambdaFunction, env: dict[str, str], log: Path) -> None:
        self.function = function
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), function.handler],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sink,
                start_new_session=True,
            )  # fmt: skip
        self._buffer = b""

    def freeze(self) -> None:
        """Stop the process and return once it is stopped (its threads with it)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)
            os.waitpid(self.process.pid, os.WUNTRACED)

    def thaw(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The worker's answer; None if it did not answer within ``timeout`` seconds.
        Raises EOFError if the process ended."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.thaw()
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise EOFError from None
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise EOFError
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)


@dataclass
class LambdaEmulator:
    """Registered functions, their idle (frozen) workers, and the Invoke API server."""

    moto_endpoint: str
    logs: Path
    region: str = "us-east-1"
    cold: bool = False  # every invocation in a fresh process
    functions: dict[str, LambdaFunction] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._idle: dict[str, list[_Worker]] = {}
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._background: list[threading.Thread] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _invoke_api(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def register(self, function: LambdaFunction) -> None:
        """Create or update a function; like UpdateFunctionConfiguration, an update
        retires its idle execution environments (the next invocation starts afresh)."""
        with self._lock:
            self.functions[function.name] = function
            stale = self._idle.pop(function.name, [])
        for worker in stale:
            worker.kill()

    def function(self, name_or_arn: str) -> LambdaFunction:
        """By name, ARN, or ARN with a qualifier."""
        name = name_or_arn
        if name.startswith("arn:"):
            name = name.split(":")[6]
        name = name.split(":", 1)[0]
        if name not in self.functions:
            raise KeyError(f"Function not found: {name_or_arn}")
        return self.functions[name]

    def environment(self, function: LambdaFunction) -> dict[str, str]:
        """The stack's variables, then only what Lambda's runtime adds."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            **function.environment,
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(ROOT),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"emulated/[$LATEST]{uuid.uuid4().hex}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.url,
        }

    def invoke(self, function_name_or_arn: str, event: Any) -> Any:
        """Invoke synchronously; the function's payload. Raises :class:`FunctionError` when
        the function fails or times out, ``KeyError`` for an unknown function."""
        invocation = self.invoke_raw(function_name_or_arn, event)
        if invocation.error is not None:
            raise FunctionError(invocation)
        return invocation.payload

    def invoke_async(self, function_name_or_arn: str, event: Any) -> None:
        """``InvocationType=Event``: accepted now, run in the background."""
        self.function(function_name_or_arn)  # unknown functions fail now, as Lambda does
        thread = threading.Thread(
            target=self.invoke_raw, args=(function_name_or_arn, event), daemon=True
        )
        with self._lock:
            self._background = [t for t in self._background if t.is_alive()] + [thread]
        thread.start()

    def invoke_raw(self, function_name_or_arn: str, event: Any) -> Invocation:
        function = self.function(function_name_or_arn)
        request_id = str(uuid.uuid4())
        worker = self._take(function)
        deadline_ms = int(time.time() * 1000) + function.timeout * 1000
        request = {"event": event, "request_id": request_id, "deadline_ms": deadline_ms,
                   "arn": function.arn}  # fmt: skip
        try:
            answer = worker.call(request, function.timeout)
        except EOFError:
            answer = {"error": {"errorType": "Runtime.ExitError",
                                "errorMessage": f"RequestId: {request_id} Error: Runtime exited "
                                f"with exit code {worker.process.poll()}"}}  # fmt: skip
            self._discard(worker)
        else:
            if answer is None:
                self._discard(worker)
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                timed_out = f"Task timed out after {function.timeout:.2f} seconds"
                answer = {"error": {"errorMessage": f"{stamp} {request_id} {timed_out}"}}
            else:
                self._release(worker)
        if "error" in answer:
            payload, error = answer["error"], "Unhandled"
        else:
            payload, error = answer.get("payload"), None
        size = len(json.dumps(payload))
        if error is None and size > MAX_RESPONSE_BYTES:
            payload, error = (
                {
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                    f"({MAX_RESPONSE_BYTES} bytes).",
                },
                "Unhandled",
            )
        invocation = Invocation(function.name, event, payload, error, request_id, size)
        with self._lock:
            self.invocations.append(invocation)
        return invocation

    def invocations_of(self, name: str) -> list[Invocation]:
        with self._lock:
            return [i for i in self.invocations if i.function == name]

    def _take(self, function: LambdaFunction) -> _Worker:
        with self._lock:
            idle = self._idle.setdefault(function.name, [])
            worker = idle.pop() if idle else None
        if worker is None:
            log = self.logs / f"{function.name}.log"
            worker = _Worker(function, self.environment(function), log)
        with self._lock:
            self._busy.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        if self.cold:
            self._discard(worker)
            return
        worker.freeze()
        with self._lock:
            self._busy.discard(worker)
            self._idle.setdefault(worker.function.name, []).append(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._busy.discard(worker)

    def workers(self, name: str) -> list[subprocess.Popen[bytes]]:
        """The idle (frozen) workers of a function, for tests that look at them."""
        with self._lock:
            return [w.process for w in self._idle.get(name, [])]

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the server and kill every worker, idle or busy."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            workers = [w for ws in self._idle.values() for w in ws] + list(self._busy)
            self._idle.clear()
        for worker in workers:
            worker.kill()
        for thread in self._background:
            thread.join(timeout=5)


def _invoke_api(emulator: LambdaEmulator) -> type[BaseHTTPRequestHandler]:
    class InvokeApi(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _not_found(self, name: str) -> None:
            body = {"Type": "User", "Message": f"Function not found: {name}"}
            self._send(404, json.dumps(body).encode(),
                       {"x-amzn-ErrorType": "ResourceNotFoundException",
                        "Content-Type": "application/json"})  # fmt: skip

        def do_POST(self) -> None:
            parts = urlsplit(self.path).path.split("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if (
                len(parts) != 5
                or parts[1:3] != ["2015-03-31", "functions"]
                or parts[4] != ("invocations")
            ):
                self._send(404, b'{"message": "not an Invoke API path"}')
                return
            name = unquote(parts[3])
            try:
                emulator.function(name)
            except KeyError:
                self._not_found(name)
                return
            event = json.loads(body) if body.strip() else {}
            kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            if kind == "Event":
                emulator.invoke_async(name, event)
                self._send(202, b"")
            elif kind == "DryRun":
                self._send(204, b"")
            else:
                invocation = emulator.invoke_raw(name, event)
                headers = {"Content-Type": "application/json",
                           "X-Amz-Executed-Version": "$LATEST"}  # fmt: skip
                if invocation.error:
                    headers["X-Amz-Function-Error"] = invocation.error
                self._send(200, json.dumps(invocation.payload).encode(), headers)

    return InvokeApi

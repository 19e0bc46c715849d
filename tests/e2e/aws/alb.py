"""ALB emulation: an HTTP listener on loopback that routes as an Application Load
Balancer routes, by moto's listener rules, read again on every request (a ``ModifyRule``
is visible to the very next request, as on ALB).

- Rules by priority; ``path-pattern`` conditions with ALB's wildcards (``*`` any run of
  characters, ``?`` exactly one; case-sensitive; the path only, never the query); several
  values of one condition match if any does, several conditions only if all do. Other
  condition types are not emulated: such a rule answers 500, naming it.
- The default action when no rule matches (a ``fixed-response``).
- ``forward`` to one target group or weighted ones (``ForwardConfig``; weight 0 is never
  chosen). IP target groups: round-robin over the registered targets (the ECS emulation
  registers a task only once its health check passes), the request proxied with its
  method, path, query, headers plus ``X-Forwarded-For``, ``X-Forwarded-Proto``,
  ``X-Forwarded-Port`` and ``X-Amzn-Trace-Id``, and body; 20 minutes to answer. None
  registered: 503. A target that refuses the connection: 502; too slow: 504.
- Lambda target groups (the activator): the ALB event with multi-value headers on, given
  to ``invoke_lambda(function_arn, event)``; the answer's ``statusCode``,
  ``multiValueHeaders`` (or ``headers``), ``body`` and ``isBase64Encoded`` become the
  response. A request body over 1 MB: 413. An answer (its JSON) over 1 MB, a failed
  invocation or a malformed answer: 502.

``forwarded`` records, per request, the rule's priority, the target group chosen and the
target (an address or a function ARN), for tests to assert on.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from tests.e2e.aws.ecs_env import aws_client

__all__ = ["MAX_LAMBDA_REQUEST", "MAX_LAMBDA_RESPONSE", "AlbEmulator", "Forwarded", "path_matches"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
InvokeLambda = Callable[[str, dict[str, Any]], dict[str, Any]]

MAX_LAMBDA_RESPONSE = 1_048_576  # "the response JSON ... can be at most 1 MB"
MAX_LAMBDA_REQUEST = 1_048_576  # the request body a Lambda target may be sent
PROXY_TIMEOUT = 1200.0  # 20 minutes: the platform's longest synchronous request
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailers", "transfer-encoding", "upgrade",
     "proxy-connection", "content-length"}
)  # fmt: skip
_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


@dataclass(frozen=True)
class Forwarded:
    """Where one request went: the matching rule's priority ("default" for the default
    action), the target group chosen (None for a fixed response), and the target."""

    path: str
    priority: str
    target_group: str | None
    target: str | None
    status: int


def path_matches(pattern: str, path: str) -> bool:
    """ALB's path-pattern: ``*`` is 0+ characters, ``?`` exactly one, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, path, flags=re.DOTALL) is not None


def _condition_matches(condition: Mapping[str, Any], path: str) -> bool:
    field = condition.get("Field")
    if field != "path-pattern":
        raise LookupError(f"condition {field!r} is not emulated (path-pattern only)")
    values = (condition.get("PathPatternConfig") or {}).get("Values") or condition.get("Values")
    return any(path_matches(str(v), path) for v in values or [])


def _page(status: int) -> tuple[int, list[tuple[str, str]], bytes]:
    body = f"<html><body><center><h1>{_PAGES[status]}</h1></center></body></html>"
    return status, [("content-type", "text/html")], body.encode()


class AlbEmulator:
    """The listener ``listener_arn`` on ``url`` (127.0.0.1, a free port)."""

    def __init__(
        self,
        moto_endpoint: str,
        listener_arn: str,
        invoke_lambda: InvokeLambda,
        *,
        region: str = "us-east-1",
        seed: int | None = None,
    ) -> None:
        self.listener = listener_arn
        self.invoke_lambda = invoke_lambda
        self.forwarded: list[Forwarded] = []
        self._elb = aws_client("elbv2", moto_endpoint, region)
        found = self._elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"][0]
        self._proto, self._listener_port = str(found["Protocol"]).lower(), str(found["Port"])
        self._random = random.Random(seed)
        self._turns: dict[str, itertools.count[int]] = {}
        self._types: dict[str, str] = {}
        self._http: httpx.AsyncClient | None = None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_level="warning",
            timeout_keep_alive=60,
            interface="asgi3",
            proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(sock),), name="alb-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the ALB emulation did not start within 10 s")
            time.sleep(0.01)
        self._socket = sock

    async def _serve(self, sock: socket.socket) -> None:
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(PROXY_TIMEOUT, connect=5.0))
        try:
            await self._server.serve(sockets=[sock])
        finally:
            await self._http.aclose()

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        self._elb.close()

    def __enter__(self) -> AlbEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the ASGI app ------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, content = await self._handle(scope, body)
        headers = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        headers.append(("content-length", str(len(content))))
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": content})

    async def _handle(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        path = str(scope["path"])
        rules, default = await asyncio.to_thread(self._rules)
        try:
            rule = next((r for r in rules if self._matches(r, path)), default)
        except LookupError as exc:
            return 500, [("content-type", "text/plain")], f"ALB emulation: {exc}".encode()
        priority = str(rule["Priority"])
        action = sorted(rule["Actions"], key=lambda a: int(a.get("Order", 1)))[-1]
        if action["Type"] == "fixed-response":
            fixed = action["FixedResponseConfig"]
            status = int(fixed["StatusCode"])
            self.forwarded.append(Forwarded(path, priority, None, None, status))
            kind = fixed.get("ContentType", "text/plain")
            return status, [("content-type", kind)], str(fixed.get("MessageBody", "")).encode()
        if action["Type"] != "forward":
            message = f"ALB emulation: action {action['Type']!r} is not emulated"
            return 500, [("content-type", "text/plain")], message.encode()
        group = self._choose(action)
        if group is None:
            return _page(503)
        kind = await asyncio.to_thread(self._target_type, group)
        targets = await asyncio.to_thread(self._targets, group)
        if not targets:
            self.forwarded.append(Forwarded(path, priority, group, None, 503))
            return _page(503)
        target = targets[next(self._turns.setdefault(group, itertools.count())) % len(targets)]
        if kind == "lambda":
            answer = await self._invoke(scope, body, group, target)
        else:
            answer = await self._proxy(scope, body, target)
        self.forwarded.append(Forwarded(path, priority, group, target, answer[0]))
        return answer

    # -- rules and targets (moto, on every request) ----------------------------------------

    def _rules(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The listener's rules by priority, and its default rule."""
        pages = self._elb.get_paginator("describe_rules").paginate(ListenerArn=self.listener)
        found: list[dict[str, Any]] = [r for page in pages for r in page["Rules"]]
        default = next(r for r in found if r["IsDefault"])
        rules = sorted((r for r in found if not r["IsDefault"]), key=lambda r: int(r["Priority"]))
        return rules, default

    @staticmethod
    def _matches(rule: Mapping[str, Any], path: str) -> bool:
        conditions = rule.get("Conditions") or []
        return bool(conditions) and all(_condition_matches(c, path) for c in conditions)

    def _choose(self, action: Mapping[str, Any]) -> str | None:
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or [
            {"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}
        ]
        weighted = [(str(g["TargetGroupArn"]), int(g.get("Weight", 1))) for g in groups]
        weighted = [(arn, w) for arn, w in weighted if w > 0]
        if not weighted:
            return None
        return self._random.choices([a for a, _ in weighted], [w for _, w in weighted])[0]

    def _target_type(self, group: str) -> str:
        if group not in self._types:
            found = self._elb.describe_target_groups(TargetGroupArns=[group])["TargetGroups"]
            self._types[group] = str(found[0].get("TargetType", "instance"))
        return self._types[group]

    def _targets(self, group: str) -> list[str]:
        """Registered targets, as ``address:port`` (IP groups) or function ARNs."""
        found = self._elb.describe_target_health(TargetGroupArn=group)
        targets: list[str] = []
        for item in found["TargetHealthDescriptions"]:
            if item["TargetHealth"]["State"] in ("unused", "draining", "unavailable"):
                continue
            target = item["Target"]
            port = target.get("Port")
            targets.append(f"{target['Id']}:{port}" if port else str(target["Id"]))
        return targets

    # -- the two kinds of target -------------------------------------------------------------

    def _headers(self, scope: Scope) -> list[tuple[str, str]]:
        given = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        client = (scope.get("client") or ("127.0.0.1", 0))[0]
        forwarded_for = [v for k, v in given if k == "x-forwarded-for"]
        trace = [v for k, v in given if k == "x-amzn-trace-id"]
        out = [
            (k, v)
            for k, v in given
            if k not in _HOP_BY_HOP and k not in ("x-forwarded-for", "x-amzn-trace-id")
        ]
        out.append(("x-forwarded-for", ", ".join([*forwarded_for, client])))
        out.append(("x-forwarded-proto", self._proto))
        out.append(("x-forwarded-port", self._listener_port))
        root = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        out.append(("x-amzn-trace-id", trace[0] if trace else root))
        return out

    async def _proxy(
        self, scope: Scope, body: bytes, target: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self._http is not None
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://{target}{scope.get('raw_path', b'').decode('latin-1') or scope['path']}"
        url += f"?{query}" if query else ""
        try:
            response = await self._http.request(
                scope["method"], url, headers=self._headers(scope), content=body
            )
        except httpx.TimeoutException:
            return _page(504)
        except httpx.HTTPError:
            return _page(502)
        return response.status_code, list(response.headers.multi_items()), response.content

    async def _invoke(
        self, scope: Scope, body: bytes, group: str, function_arn: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if len(body) > MAX_LAMBDA_REQUEST:
            return 413, [("content-type", "text/html")], b"<html><body>413</body></html>"
        headers: dict[str, list[str]] = {}
        for key, value in self._headers(scope):
            headers.setdefault(key, []).append(value)
        query: dict[str, list[str]] = {}
        raw_query = scope.get("query_string", b"").decode("latin-1")
        for pair in filter(None, raw_query.split("&")):  # ALB passes them still encoded
            key, _, value = pair.partition("=")
            query.setdefault(key, []).append(value)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        binary = text is None or "content-encoding" in headers
        event = {
            "requestContext": {"elb": {"targetGroupArn": group}},
            "httpMethod": scope["method"],
            "path": scope["path"],
            "multiValueQueryStringParameters": query,
            "multiValueHeaders": headers,
            "body": base64.b64encode(body).decode() if binary or text is None else text,
            "isBase64Encoded": binary,
        }
        try:
            answer = await asyncio.to_thread(self.invoke_lambda, function_arn, event)
            if len(json.dumps(answer).encode()) > MAX_LAMBDA_RESPONSE:
                return _page(502)
            status = int(answer["statusCode"])
            raw = str(answer.get("body") or "")
            content = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        except Exception:
            return _page(502)
        out: list[tuple[str, str]] = []
        many: Mapping[str, list[str]] | None = answer.get("multiValueHeaders")
        if many is not None:
            out = [(str(k), str(v)) for k, vs in many.items() for v in vs]
        else:
            single: Mapping[str, str] = answer.get("headers") or {}
            out = [(str(k), str(v)) for k, v in single.items()]
        return status, out, content

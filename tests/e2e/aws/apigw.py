"""An API Gateway v2 (HTTP API) emulation, built from what the stack recorded.

An HTTP server on 127.0.0.1 per API. The stack bridge adds the API's routes, integrations,
authorizers and stages as the program creates them; the test adds who may call
(:attr:`ApiGateway.identities` for IAM, :attr:`ApiGateway.tokens` for JWT) and where the VPC
link leads (:attr:`ApiGateway.vpc_links`: integration URI, e.g. the listener ARN, -> URL).

- Routes match as HTTP APIs match them (``ANY /api/{proxy+}``, ``POST /{a}/{b}/async``,
  ``$default``): a literal path beats a variable, a variable beats a greedy one, a method
  beats ``ANY``.
- ``AWS_IAM`` routes verify SigV4 with botocore (service ``execute-api``, the API's
  region): the canonical request is rebuilt from what was received and signed again with
  the access key's secret. Unsigned, mis-signed, unknown keys, a wrong scope, or an
  ``X-Amz-Date`` more than 5 minutes away: 403 ``{"message": "Forbidden"}``, nothing
  invoked. ``JWT`` routes take a bearer token from :attr:`tokens` (401 otherwise).
- ``AWS_PROXY`` integrations invoke the Lambda emulation with a payload 2.0 event and map
  its answer back (the v2 response format); ``HTTP_PROXY`` ones forward to the VPC link's
  URL. The integration timeout (at most 30 s) answers 503 ``Service Unavailable`` as HTTP
  APIs do; a request body over 10 MB answers 413; a failed function 500.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.e2e.aws.apigw_http import (
    HOP_BY_HOP,
    Received,
    Reply,
    from_lambda,
    header,
    map_parameter,
    message,
    timeout,
)
from tests.e2e.aws.iam_eval import invoke_arn, is_allowed
from tests.e2e.aws.lambdas import LambdaEmulator

__all__ = ["ApiGateway", "Identity", "JwtClaims"]

ACCOUNT_ID = "123456789012"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_CLOCK_SKEW_S = 300
TIMEOUT_STATUS = (503, "Service Unavailable")
CREDENTIAL = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[^,]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded")  # fmt: skip


@dataclass(frozen=True)
class Identity:
    """An IAM caller the test allows: its secret and the principal ARN it signs as."""

    secret_key: str
    arn: str
    user_id: str = "AIDAFLOWHOSTTESTUSER"
    principal_org_id: str | None = None
    # Its identity policies (documents), evaluated for execute-api:Invoke on each call's
    # route ARN; None: an administrator, allowed everything.
    policies: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True)
class JwtClaims:
    sub: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Route:
    id: str
    key: str
    method: str
    segments: tuple[str, ...]
    target: str
    authorization: str
    authorizer_id: str | None

    def match(self, method: str, path: str) -> tuple[tuple[int, int, int], dict[str, str]] | None:
        """(specificity, path parameters) if the route matches."""
        if self.key == "$default" or (self.method not in ("ANY", method)):
            return None
        parts = [p for p in path.split("/") if p]
        params: dict[str, str] = {}
        greedy = 0
        for i, segment in enumerate(self.segments):
            if segment.startswith("{") and segment.endswith("+}"):
                if i >= len(parts):
                    return None
                params[segment[1:-2]] = "/".join(parts[i:])
                greedy, parts = 1, parts[: i + 1]
                break
            if i >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                params[segment[1:-1]] = parts[i]
            elif segment != parts[i]:
                return None
        if len(parts) != len(self.segments):
            return None
        literals = sum(1 for s in self.segments if not s.startswith("{"))
        return (1 - greedy, literals, int(self.method != "ANY")), params


class ApiGateway:
    """One HTTP API on loopback; ``close()`` stops it."""

    def __init__(self, api_id: str, lambdas: LambdaEmulator, *, region: str = "us-east-1") -> None:
        self.api_id = api_id
        self.lambdas = lambdas
        self.region = region
        self.identities: dict[str, Identity] = {}  # access key id -> identity
        self.tokens: dict[str, JwtClaims] = {}  # bearer token -> claims
        self.vpc_links: dict[str, str] = {}  # integration URI -> base URL
        self.routes: dict[str, _Route] = {}
        self.integrations: dict[str, dict[str, Any]] = {}
        self.authorizers: dict[str, dict[str, Any]] = {}
        self.stages: list[dict[str, Any]] = []
        self.refused: list[str] = []  # why each refused request was refused
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"apigw-{api_id}")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def add(self, kind: str, part_id: str, inputs: Mapping[str, Any]) -> None:
        """A route, integration, authorizer or stage, as the stack created it."""
        if kind == "route":
            key = str(inputs["routeKey"])
            method, _, path = key.partition(" ")
            self.routes[part_id] = _Route(
                part_id, key, method.upper(), tuple(p for p in path.split("/") if p),
                str(inputs.get("target", "")), str(inputs.get("authorizationType") or "NONE"),
                inputs.get("authorizerId"),
            )  # fmt: skip
        elif kind == "integration":
            self.integrations[part_id] = dict(inputs)
        elif kind == "authorizer":
            self.authorizers[part_id] = dict(inputs)
        elif kind == "stage":
            self.stages.append(dict(inputs))

    def route_for(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        best: tuple[tuple[int, int, int], _Route, dict[str, str]] | None = None
        for route in self.routes.values():
            found = route.match(method, path)
            if found and (best is None or found[0] > best[0]):
                best = (found[0], route, found[1])
        if best is not None:
            return best[1], best[2]
        default = [r for r in self.routes.values() if r.key == "$default"]
        return (default[0], {}) if default else None

    # -- authorization ---------------------------------------------------------------------

    def verify_sigv4(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> Identity | None:
        """The caller, if the request carries a valid signature of a known identity."""
        lowered = {k.lower(): v for k, v in headers.items()}
        found = CREDENTIAL.match(lowered.get("authorization", ""))
        stamp = lowered.get("x-amz-date", "")
        if found is None or not stamp:
            return self._refuse("unsigned or not SigV4")
        identity = self.identities.get(found["key"])
        if identity is None:
            return self._refuse(f"unknown access key {found['key']}")
        if (found["region"], found["service"]) != (self.region, "execute-api"):
            return self._refuse(f"scope {found['region']}/{found['service']}")
        try:
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self._refuse(f"X-Amz-Date {stamp!r}")
        if (
            abs(time.time() - signed_at.timestamp()) > MAX_CLOCK_SKEW_S
            or found["date"] != stamp[:8]
        ):
            return self._refuse(f"expired or future X-Amz-Date {stamp}")
        claimed = lowered.get("x-amz-content-sha256")
        if claimed is not None and claimed != sha256(body).hexdigest():
            return self._refuse("X-Amz-Content-SHA256 does not match the body")
        names = found["headers"].split(";")
        if "host" not in names or any(n not in lowered for n in names):
            return self._refuse(f"signed headers {names}")
        # Like AWS: the query is decoded, then re-encoded by SigV4's rules, so a signer
        # that sent `@` raw and one that sent `%40` both verify.
        path, _, query = raw_path.partition("?")
        request = AWSRequest(
            method=method, url=f"http://{lowered['host']}{path}",
            headers={n: lowered[n] for n in names}, data=body,
            # a list keeps repeated keys; botocore's canonicalizer takes it (its stub says Mapping)
            params=cast(Any, parse_qsl(query, keep_blank_values=True)),
        )  # fmt: skip
        request.context["timestamp"] = stamp
        token = lowered.get("x-amz-security-token")
        auth = SigV4Auth(Credentials(found["key"], identity.secret_key, token), "execute-api",
                         self.region)  # fmt: skip
        canonical = auth.canonical_request(request)
        expected = auth.signature(auth.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, found["signature"]):
            return self._refuse("signature does not match")
        return identity

    def _refuse(self, why: str) -> None:
        self.refused.append(why)
        return None

    # -- events ----------------------------------------------------------------------------

    def event(
        self, route: _Route, params: dict[str, str], request: Received, authorizer: dict[str, Any]
    ) -> dict[str, Any]:
        """A payload format 2.0 event, as HTTP APIs send it to Lambda."""
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            lname = name.lower()
            if lname == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
            else:
                headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        content_type = headers.get("content-type", "")
        binary = bool(request.body) and not content_type.startswith(TEXT_TYPES)
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": request.path,
            "rawQueryString": request.query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api_id,
                "domainName": headers.get("host", self.host),
                "domainPrefix": headers.get("host", self.host).split(".")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": request.source_ip,
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": base64.b64encode(secrets.token_bytes(12)).decode(),
                "routeKey": route.key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": binary,
        }
        if authorizer:
            event["requestContext"]["authorizer"] = authorizer
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if request.body:
            body = request.body
            event["body"] = base64.b64encode(body).decode() if binary else body.decode()
        return event

    def invoke_lambda(self, integration: dict[str, Any], event: dict[str, Any]) -> Reply:
        uri = str(integration["integrationUri"])
        function = uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
        future = self._pool.submit(self.lambdas.invoke_raw, function, event)
        try:
            invocation = future.result(timeout=timeout(integration))
        except FutureTimeout:
            return message(*TIMEOUT_STATUS)
        if invocation.error is not None:
            return message(500, "Internal Server Error")
        return from_lambda(invocation.payload)

    def forward(self, integration: dict[str, Any], request: Received) -> Reply:
        base = self.vpc_links.get(str(integration["integrationUri"]))
        if base is None:
            return message(503, "Service Unavailable")
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
        headers += [("X-Forwarded-For", request.source_ip), ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-Port", "443")]  # fmt: skip
        path, query = request.path, parse_qsl(request.query, keep_blank_values=True)
        for key, value in (integration.get("requestParameters") or {}).items():
            headers, path, query = map_parameter(str(key), str(value), request, headers, path,
                                                  query)  # fmt: skip
        query_text = urlencode(query)
        url = base.rstrip("/") + path + (f"?{query_text}" if query_text else "")
        try:
            answer = httpx.request(
                request.method, url, headers=headers, content=request.body,
                timeout=timeout(integration), follow_redirects=False,
            )  # fmt: skip
        except httpx.TimeoutException:
            return message(*TIMEOUT_STATUS)
        except httpx.TransportError:
            return message(503, "Service Unavailable")
        kept = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        return Reply(answer.status_code, kept, answer.content)

    def handle(self, request: Received) -> Reply:
        if len(request.body) > MAX_REQUEST_BYTES:
            return message(413, "Request Entity Too Large")
        found = self.route_for(request.method, request.path)
        if found is None:
            return message(404, "Not Found")
        route, params = found
        authorizer: dict[str, Any] = {}
        if route.authorization == "AWS_IAM":
            identity = self.verify_sigv4(
                request.method, request.raw_path, dict(request.headers), request.body
            )
            if identity is None:
                return message(403, "Forbidden")
            if identity.policies is not None:
                account = identity.arn.split(":")[4]
                target = invoke_arn(self.region, account, self.api_id, "$default",
                                    request.method, request.path)  # fmt: skip
                if not is_allowed(identity.policies, "execute-api:Invoke", target):
                    self.refused.append(f"{identity.arn} may not invoke {target}")
                    return message(403, "Forbidden")
            access_key = header(request.headers, "authorization").split("Credential=")[1]
            authorizer = {"iam": {
                "accessKey": access_key.split("/")[0],
                "accountId": identity.arn.split(":")[4],
                "callerId": identity.user_id,
                "cognitoIdentity": None,
                "principalOrgId": identity.principal_org_id,
                "userArn": identity.arn,
                "userId": identity.user_id,
            }}  # fmt: skip
        elif route.authorization == "JWT":
            bearer = header(request.headers, "authorization").removeprefix("Bearer ").strip()
            claims = self.tokens.get(bearer)
            if claims is None:
                self.refused.append("unknown bearer token")
                return message(401, "Unauthorized")
            authorizer = {"jwt": {"claims": {"sub": claims.sub, "scope": " ".join(claims.scopes)},
                                  "scopes": list(claims.scopes) or None}}  # fmt: skip
        integration = self.integrations.get(route.target.removeprefix("integrations/"))
        if integration is None:
            return message(500, "Internal Server Error")
        if integration.get("integrationType") == "AWS_PROXY":
            return self.invoke_lambda(integration, self.event(route, params, request, authorizer))
        return self.forward(integration, request)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _handler(gateway: ApiGateway) -> type[BaseHTTPRequestHandler]:
    class Edge(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def logmessage(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            received = Received(
                method=self.command, raw_path=self.path, path=parts.path, query=parts.query,
                headers=list(self.headers.items()), body=body, source_ip=self.client_address[0],
            )  # fmt: skip
            reply = gateway.handle(received)
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("apigw-requestid", secrets.token_urlsafe(12))
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Edge

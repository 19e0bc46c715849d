"""Signed requests, checked by a loopback server that verifies them as API Gateway does:
it recomputes the SigV4 signature with botocore from what arrived (method, path, query,
the signed headers, the body) and the secret it knows, and refuses a mismatch or a
stale X-Amz-Date with 403. Bearer tokens and the CLI's one-line refusals too."""

from __future__ import annotations

import hmac
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials

from flowhost.auth import AuthError, SigV4, sign
from flowhost.client import Client
from flowhost.targets import Target
from tests.integration.support import run_flowhost

REGION = "eu-west-1"
KEY, SECRET = "AKIAFLOWHOSTTEST0001", "s3cr3t/Key+ForTests0000000000000000000001"
CREDENTIAL = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<headers>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    identity: str


@dataclass
class Verifier:
    """What the edge knows: secrets by access key, its clock, and what it let through."""

    secrets: dict[str, str] = field(default_factory=lambda: {KEY: SECRET})
    tokens: dict[str, str] = field(default_factory=dict[str, str])
    skew: timedelta = timedelta()  # the server's clock minus the real one
    seen: list[Seen] = field(default_factory=list[Seen])
    refused: list[str] = field(default_factory=list[str])
    redirects: dict[str, str] = field(default_factory=dict[str, str])  # path -> Location
    open_access: bool = False  # like a presigned S3 URL: no credentials expected

    def identify(self, method: str, target: str, headers: dict[str, str], body: bytes) -> str:
        """The caller; ValueError(why) when the request must be refused."""
        bearer = headers.get("authorization", "")
        if self.open_access:
            return "anyone" if not bearer else "credentials sent to another origin"
        if bearer.startswith("Bearer "):
            if bearer[7:] not in self.tokens:
                raise ValueError("unknown token")
            return self.tokens[bearer[7:]]
        found = CREDENTIAL.match(bearer)
        if found is None or (found["region"], found["service"]) != (REGION, "execute-api"):
            raise ValueError("not signed for execute-api in this region")
        secret = self.secrets.get(found["key"])
        if secret is None:
            raise ValueError("unknown access key")
        stamp = headers.get("x-amz-date", "")
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs(datetime.now(UTC) + self.skew - signed_at) > timedelta(minutes=5):
            raise ValueError("signature expired")
        names = found["headers"].split(";")
        if "host" not in names or "x-amz-date" not in names:
            raise ValueError("host and x-amz-date must be signed")
        parts = urlsplit(target)
        request = AWSRequest(
            method=method, url=f"http://{headers['host']}{parts.path}",
            headers={n: headers[n] for n in names}, data=body,
            params=parse_qsl(parts.query, keep_blank_values=True),  # type: ignore[arg-type]
        )  # fmt: skip
        request.context["timestamp"] = stamp
        token = headers.get("x-amz-security-token")
        signer = SigV4Auth(ReadOnlyCredentials(found["key"], secret, token), "execute-api", REGION)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, found["signature"]):
            raise ValueError("signature does not match")
        return f"arn:aws:iam::111122223333:user/{found['key']}"


def serve(verifier: Verifier) -> ThreadingHTTPServer:
    class Edge(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_one(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                who = verifier.identify(self.command, self.path, headers, body)
            except ValueError as exc:
                verifier.refused.append(str(exc))
                self.reply(403, {"message": "Forbidden"})
                return
            parts = urlsplit(self.path)
            verifier.seen.append(
                Seen(self.command, parts.path, parse_qsl(parts.query), headers, body, who)
            )
            if parts.path in verifier.redirects:
                self.send_response(303)
                self.send_header("location", verifier.redirects[parts.path])
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.reply(200, {"actor": who, "source": "iam" if who.startswith("arn:") else "jwt"})

        def reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = handle_one

    server = ThreadingHTTPServer(("127.0.0.1", 0), Edge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def verifier() -> Verifier:
    return Verifier()


@pytest.fixture
def edge(verifier: Verifier) -> Iterator[str]:
    server = serve(verifier)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ambient AWS settings: credentials only from what a test puts in place."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def sigv4(url: str, **settings: Any) -> Target:
    return Target(name="prod", url=url, auth="sigv4", region=REGION, **settings)


def test_a_signed_request_with_a_body_and_a_query_verifies(
    edge: str, verifier: Verifier, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    body = {"definition": {"name": "sentiment"}, "text": "naïve café"}

    with Client(target=sigv4(edge)) as client:
        answer = client.request(
            "POST", "/api/services/sentiment@v2/versions",
            params={"limit": 5, "q": ["a b", "x@y/z"]}, json=body,
        )  # fmt: skip

    assert answer["actor"] == f"arn:aws:iam::111122223333:user/{KEY}"
    [seen] = verifier.seen
    assert (seen.method, seen.path) == ("POST", "/api/services/sentiment@v2/versions")
    assert seen.query == [("limit", "5"), ("q", "a b"), ("q", "x@y/z")]
    assert json.loads(seen.body) == body
    signed = CREDENTIAL.match(seen.headers["authorization"])
    assert signed is not None
    assert {"host", "x-amz-date", "content-type", "x-flowhost-actor"} <= set(
        signed["headers"].split(";")
    )
    assert SECRET not in json.dumps(seen.headers)


def test_temporary_credentials_from_a_profile_sign_their_session_token(
    edge: str, verifier: Verifier, aws_env: Path
) -> None:
    (aws_env / "aws-credentials").write_text(
        f"[ml]\naws_access_key_id = ASIAPROFILEKEY000001\naws_secret_access_key = {SECRET}\n"
        "aws_session_token = session-token-of-the-role\n"
    )
    verifier.secrets["ASIAPROFILEKEY000001"] = SECRET

    with Client(target=sigv4(edge, profile="ml")) as client:
        assert client.whoami()["actor"].endswith("/ASIAPROFILEKEY000001")

    [seen] = verifier.seen
    assert seen.headers["x-amz-security-token"] == "session-token-of-the-role"
    signed = CREDENTIAL.match(seen.headers["authorization"])
    assert signed is not None
    assert "x-amz-security-token" in signed["headers"].split(";")


def test_credentials_are_refreshed_for_every_request(edge: str, verifier: Verifier) -> None:
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        key = f"ASIAROTATED{len(issued):09d}"
        issued.append(key)
        verifier.secrets[key] = SECRET
        expiry = datetime.now(UTC) + timedelta(seconds=30)  # inside botocore's refresh window
        return {
            "access_key": key,
            "secret_key": SECRET,
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    rotating = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    with Client(target=sigv4(edge)) as client:
        client.http.auth = SigV4(client.target, REGION, credentials=rotating)
        first, second = client.whoami(), client.whoami()

    assert first["actor"] != second["actor"]
    assert [s.identity.rsplit("/", 1)[1] for s in verifier.seen] == issued[1:3]


def test_redirects_are_followed_signing_each_hop_on_the_same_origin_only(
    edge: str, verifier: Verifier, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    bucket = Verifier(open_access=True)
    presigned = serve(bucket)
    bucket_url = f"http://127.0.0.1:{presigned.server_address[1]}/result?X-Amz-Signature=abc"
    verifier.redirects = {
        "/sentiment/predict": "/results/r1?wait=20",  # the edge's long-poll 303
        "/results/r1": "/results/r1/next?wait=20",
        "/results/r1/next": bucket_url,  # a large reply, from S3
    }
    try:
        with Client(target=sigv4(edge)) as client:
            answer = client.invoke("sentiment", "predict", {"text": "great"})
    finally:
        presigned.shutdown()
        presigned.server_close()

    assert answer == {"actor": "anyone", "source": "jwt"}  # the bucket's reply
    assert [(s.method, s.path, s.query) for s in verifier.seen] == [
        ("POST", "/sentiment/predict", []),
        ("GET", "/results/r1", [("wait", "20")]),
        ("GET", "/results/r1/next", [("wait", "20")]),
    ]
    assert verifier.refused == []  # every hop on the edge carried a valid signature
    [fetched] = bucket.seen
    assert (fetched.method, fetched.identity) == ("GET", "anyone")
    assert "x-flowhost-actor" not in fetched.headers


def send_tampered(edge: str, **change: Any) -> httpx.Response:
    """Sign a request, then change it the way a man in the middle would, and send it."""
    request = httpx.Request("POST", f"{edge}/api/whoami?limit=5", json={"version": 1})
    sign(request, ReadOnlyCredentials(KEY, SECRET, None), REGION)
    url = change.get("url", request.url)
    content = change.get("content", request.content)
    headers = {k: v for k, v in request.headers.items() if k != "content-length"}
    with httpx.Client() as http:
        return http.post(url, content=content, headers=headers)


@pytest.mark.parametrize(
    ("change", "why"),
    [({"content": b'{"version": 2}'}, "signature does not match"),
     ({"url": "QUERY"}, "signature does not match")],
    ids=["body", "query"],
)  # fmt: skip
def test_a_changed_request_is_refused(
    edge: str, verifier: Verifier, change: dict[str, Any], why: str
) -> None:
    if change.get("url") == "QUERY":
        change = {"url": f"{edge}/api/whoami?limit=500"}
    assert send_tampered(edge).status_code == 200  # as signed, it passes
    assert send_tampered(edge, **change).status_code == 403
    assert verifier.refused == [why]


def test_an_expired_signature_is_refused(edge: str, verifier: Verifier) -> None:
    verifier.skew = timedelta(minutes=6)  # the request reaches the edge 6 minutes late

    assert send_tampered(edge).status_code == 403
    assert verifier.refused == ["signature expired"]


def test_a_refusal_names_the_target_the_key_and_the_fix_never_the_secret(
    edge: str, verifier: Verifier, aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-the-edge-knows-000000000000")

    with Client(target=sigv4(edge, profile=None)) as client, pytest.raises(AuthError) as caught:
        client.whoami()

    message = caught.value.message
    assert message.startswith(f"target 'prod' ({edge}) refused the request with 403: Forbidden")
    assert f"(sent SigV4 access key {KEY}, region {REGION})" in message
    assert "grant that identity execute-api:Invoke" in message
    assert "not-the-secret" not in message
    assert verifier.refused == ["signature does not match"]


def test_no_credentials_anywhere_is_one_line_before_anything_is_sent(
    edge: str, verifier: Verifier, aws_env: Path
) -> None:
    (aws_env / "aws-config").write_text("[profile ml]\nregion = eu-west-1\n")

    with Client(target=sigv4(edge, profile="ml")) as client, pytest.raises(AuthError) as caught:
        client.whoami()

    assert caught.value.message.startswith(
        "target 'prod': no AWS credentials found for profile 'ml'"
    )
    assert "Run 'aws sso login --profile ml'" in caught.value.message
    assert verifier.seen == verifier.refused == []


def test_a_bearer_token_from_the_environment_or_a_command(
    edge: str, verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier.tokens = {"tok-env": "jwt:from-env", "tok-cmd": "jwt:from-command"}
    command = [sys.executable, "-c", "print('tok-cmd')"]
    target = Target(name="ci", url=edge, auth="token", token_command=command)

    monkeypatch.setenv("FLOWHOST_TOKEN", "tok-env")
    with Client(target=target) as client:
        assert client.whoami()["actor"] == "jwt:from-env"
    monkeypatch.delenv("FLOWHOST_TOKEN")
    with Client(target=target) as client:
        assert client.whoami()["actor"] == "jwt:from-command"
        assert client.whoami()["actor"] == "jwt:from-command"  # the command ran once


def test_a_failing_token_command_is_one_line(edge: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWHOST_TOKEN", raising=False)
    command = [sys.executable, "-c", "import sys; sys.exit('vault: permission denied')"]
    target = Target(name="ci", url=edge, auth="token", token_command=command)

    with Client(target=target) as client, pytest.raises(AuthError) as caught:
        client.whoami()

    assert caught.value.message == (
        f"target 'ci': token_command {sys.executable!r} gave no token (got exit code 1: "
        "vault: permission denied). Make it print exactly one token line."
    )


def cli_env(base_env: dict[str, str], tmp_path: Path, edge: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.prod]\nurl = "{edge}"\nauth = "sigv4"\nregion = "{REGION}"\n')
    return {
        **base_env, "FLOWHOST_CONFIG": str(config), "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }  # fmt: skip


def test_cli_whoami_signs_for_the_target(
    edge: str, base_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_flowhost("whoami", "--target", "prod", env=cli_env(base_env, tmp_path, edge))

    assert result.returncode == 0, result.stderr
    assert f"actor:  arn:aws:iam::111122223333:user/{KEY}  (from iam)" in result.stdout
    assert f"sent:   SigV4 access key {KEY}, region {REGION}" in result.stdout


def test_cli_refusal_is_one_line(
    edge: str, verifier: Verifier, base_env: dict[str, str], tmp_path: Path
) -> None:
    verifier.secrets[KEY] = "rotated-by-the-admin-000000000000000000000"
    env = {**cli_env(base_env, tmp_path, edge), "FLOWHOST_TARGET": "prod"}

    result = run_flowhost("ls", env=env)

    assert result.returncode == 1  # the operation failed (flowhost/cli/exits.py)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: target 'prod' ({edge}) refused the request with 403")
    assert KEY in line
    assert SECRET not in result.stderr
    assert "Traceback" not in result.stderr

"""Credentials for a target: AWS SigV4 (service ``execute-api``) or a bearer token.

Signing uses botocore's own signer on a ``botocore.awsrequest.AWSRequest`` built from the
exact httpx request (method, URL with its query, body bytes, headers), so what API Gateway
verifies is what is sent. Credentials come from the standard chain of
``boto3.Session(profile_name=...)`` (environment, profile, SSO, container or instance
role, web identity) and are frozen afresh for every request, so they refresh on expiry.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

import httpx

from flowhost.errors import FlowhostError
from flowhost.targets import URL_TARGET, Target

if TYPE_CHECKING:
    from botocore.credentials import Credentials, ReadOnlyCredentials

__all__ = [
    "AuthError",
    "BearerAuth",
    "FollowingAuth",
    "NoAuth",
    "SigV4",
    "auth_for",
    "refused",
    "sign",
]

SERVICE = "execute-api"
TOKEN_COMMAND_TIMEOUT = 60.0


class AuthError(FlowhostError):
    """A target's credentials are missing, unusable, or refused by the target."""

    code = "unauthorized"
    status = 401


def sign(request: httpx.Request, credentials: ReadOnlyCredentials, region: str) -> None:
    """Add SigV4 headers (``Authorization``, ``X-Amz-Date``, maybe ``X-Amz-Security-Token``)
    to ``request``, computed by botocore over its method, URL, headers and body."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    # The query goes in decoded: botocore encodes each name and value as SigV4 canonicalizes
    # them (RFC 3986), whatever escaping the URL used on the wire.
    query = parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
    aws = AWSRequest(
        method=request.method,
        url=str(request.url),
        data=request.content,
        params=cast(Any, query),  # pairs, so a repeated name keeps every value
        headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
    )
    SigV4Auth(credentials, SERVICE, region).add_auth(aws)
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        value = aws.headers.get(name)
        if value is not None:
            request.headers[name] = value


MAX_REDIRECTS = 100  # long-poll hops of a request of up to 20 minutes, each under 30 s
_CREDENTIAL_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token")


class FollowingAuth(httpx.Auth):
    """Applies a target's credentials, and follows redirects itself: a same-origin hop
    (the edge's long-poll ``303``) is signed afresh; another origin (a presigned S3 URL)
    gets no credentials and none of the request's headers."""

    requires_request_body = True

    def apply(self, request: httpx.Request) -> None:
        """Add this target's credentials to ``request``."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.apply(request)
        response = yield request
        for _ in range(MAX_REDIRECTS):
            if not response.has_redirect_location:
                return
            request = _redirected(request, response)
            if _same_origin(request.url, response.request.url):
                self.apply(request)
            response = yield request


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _redirected(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The request a redirect asks for (303, 302 and 301 become a GET without a body)."""
    url = request.url.join(response.headers["location"])
    keep = response.status_code in (307, 308)
    method = request.method if keep or request.method == "HEAD" else "GET"
    if not _same_origin(url, request.url):
        return httpx.Request(method, url, content=request.content if keep else None)
    dropped = {"host", "content-length", "transfer-encoding", "cookie", *_CREDENTIAL_HEADERS}
    if not keep:
        dropped.add("content-type")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
    return httpx.Request(method, url, headers=headers, content=request.content if keep else None)


class NoAuth(FollowingAuth):
    """``auth = "none"``: no credentials, redirects still followed."""

    def identity(self) -> str:
        return 'no credentials (auth = "none")'


class SigV4(FollowingAuth):
    """``httpx.Auth`` signing every request with the target's AWS credentials."""

    def __init__(self, target: Target, region: str, credentials: Credentials | None = None) -> None:
        self.target = target
        self.region = region
        self._credentials = credentials  # None: the target's credential chain, at first use
        self.access_key: str | None = None

    def _resolve(self) -> Credentials:
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            session = boto3.Session(profile_name=self.target.profile, region_name=self.region)
            credentials = session.get_credentials()
        except BotoCoreError as exc:
            raise AuthError(
                f"target {self.target.name!r}: cannot load AWS credentials{self._profile()} "
                f"({exc}). {self.login_fix()}."
            ) from None
        if credentials is None:
            raise AuthError(
                f"target {self.target.name!r}: no AWS credentials found{self._profile()} "
                f"(got none from the environment, config files, SSO or a role). "
                f"{self.login_fix()}."
            )
        return credentials

    def _profile(self) -> str:
        return f" for profile {self.target.profile!r}" if self.target.profile else ""

    def login_fix(self) -> str:
        if self.target.profile:
            return f"Run 'aws sso login --profile {self.target.profile}' (or fix that profile)"
        return "Configure credentials: 'aws configure', AWS_PROFILE, or a role"

    def frozen(self) -> ReadOnlyCredentials:
        from botocore.exceptions import BotoCoreError

        if self._credentials is None:
            self._credentials = self._resolve()
        try:
            frozen = self._credentials.get_frozen_credentials()
        except BotoCoreError as exc:
            raise AuthError(
                f"target {self.target.name!r}: cannot refresh AWS credentials{self._profile()} "
                f"({exc}). {self.login_fix()}."
            ) from None
        self.access_key = frozen.access_key
        return frozen

    def apply(self, request: httpx.Request) -> None:
        sign(request, self.frozen(), self.region)

    def identity(self) -> str:
        key = self.access_key or "(credentials not loaded yet)"
        return f"SigV4 access key {key}{self._profile()}, region {self.region}"

    def fix(self) -> str:
        return (
            f"{self.login_fix()} if the session expired; otherwise grant that identity "
            "execute-api:Invoke on the platform's API"
        )


class BearerAuth(FollowingAuth):
    """``Authorization: Bearer <token>``, the token from ``$FLOWHOST_TOKEN`` or the
    target's ``token_command`` (run once, without a shell)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._token: str | None = None
        self.source = "FLOWHOST_TOKEN" if os.environ.get("FLOWHOST_TOKEN") else "token_command"

    def token(self) -> str:
        if self._token is None:
            self._token = os.environ.get("FLOWHOST_TOKEN") or self._run_command()
        return self._token

    def _run_command(self) -> str:
        argv = self.target.token_command
        where = f"target {self.target.name!r}"
        if not argv:
            raise AuthError(
                f'{where}: auth = "token" but no token (got no FLOWHOST_TOKEN and no '
                "token_command). Set FLOWHOST_TOKEN, or add token_command = [...] to the target."
            )
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=TOKEN_COMMAND_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AuthError(
                f"{where}: token_command {argv[0]!r} did not run ({type(exc).__name__}: {exc}). "
                "Fix token_command in the config file."
            ) from None
        token = done.stdout.strip()
        if done.returncode != 0 or not token or len(token.splitlines()) != 1:
            said = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise AuthError(
                f"{where}: token_command {argv[0]!r} gave no token (got exit code "
                f"{done.returncode}: {said}). Make it print exactly one token line."
            )
        return token

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token()}"

    def identity(self) -> str:
        return f"a bearer token from {self.source}"

    def fix(self) -> str:
        return f"Refresh the token ({self.source}) or ask for access to the platform"


def auth_for(target: Target) -> SigV4 | BearerAuth | NoAuth:
    """The ``httpx.Auth`` a target needs."""
    if target.auth == "token":
        return BearerAuth(target)
    if target.auth == "sigv4":
        region = target.region_or_guess or _session_region(target)
        if region is None:
            raise AuthError(
                f'target {target.name!r}: auth = "sigv4" needs a region (got none in the '
                'target, its URL or the AWS profile). Add region = "..." to the target.'
            )
        return SigV4(target, region)
    return NoAuth()


def _session_region(target: Target) -> str | None:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.Session(profile_name=target.profile).region_name
    except BotoCoreError:
        return None  # the profile's own error surfaces when credentials load


def refused(
    target: Target, auth: SigV4 | BearerAuth | NoAuth, status: int, said: str, config: str
) -> AuthError:
    """The one error a 401/403 from ``target`` becomes: who we were, and the fix."""
    if isinstance(auth, NoAuth):
        who = auth.identity()
        fix = (
            f'Set auth = "sigv4" or "token" for target {target.name!r} in {config}'
            if target.name != URL_TARGET
            else 'Name the platform as a target with auth = "sigv4" or "token" and use --target'
        )
    else:
        who, fix = auth.identity(), auth.fix()
    detail = f": {said}" if said else ""
    return AuthError(
        f"target {target.name!r} ({target.url}) refused the request with {status}{detail} "
        f"(sent {who}). {fix}."
    )

"""Who may use a local platform that listens beyond loopback: bearer tokens by role.

``flowhost up`` on loopback trusts whoever can reach the port (only this machine). On
any other address the control-plane API accepts code packages and runs them, so it is
closed without a token: ``serve_check`` refuses to bind such an address unless token
auth is on (``--auth token``), naming the flag.

With token auth, two tokens mirror the AWS roles (docs/aws.md, "Access by role"):

- the **deployer** token: the control-plane API (``/api/...``: deploy, promote, roll
  back, undeploy, and reading it all), and everything the invoker token may do;
- the **invoker** token: the service routes, their async routes and ``/requests/...``,
  and the catalog (``/``, ``/docs``, ``/openapi.json``); not ``/api/``.

``/healthz`` and ``/api/healthz`` stay open (probes carry no credentials). With
``open_services`` the service routes and the catalog need no token at all (a platform
whose services are public and whose API is not).

Tokens are generated on first start into ``<home>/tokens/{deployer,invoker}`` (the
directory 0700, each file 0600) and survive restarts; ``rotate`` replaces one, and
the running platform looks at the files at most once a second and reads them again
when they changed, so a rotation takes effect within a second, without a restart.
Clients send ``Authorization: Bearer <token>``: the CLI's ``auth = "token"`` target,
with ``$FLOWHOST_TOKEN`` or ``token_command = ["cat", ".flowhost/tokens/deployer"]``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flowhost.errors import FlowhostError

__all__ = ["ROLES", "AccessGate", "Role", "Tokens", "is_loopback", "rotate", "serve_check"]

Role = Literal["deployer", "invoker"]
ROLES: tuple[Role, ...] = ("deployer", "invoker")
_OPEN_PATHS = frozenset({"/healthz", "/api/healthz"})
_RELOAD_EVERY = 1.0  # seconds between two looks at the token files (rotated?)


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and ``localhost``; every other address is reachable from
    elsewhere (``0.0.0.0`` and ``::`` are every address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def serve_check(host: str, auth: str) -> None:
    """Refuse to serve a non-loopback address without token auth, in one line."""
    if auth == "none" and not is_loopback(host):
        raise FlowhostError(
            f"flowhost up: --host {host} is reachable from other machines, and the API "
            "accepts code and runs it (got --auth none). Add --auth token (tokens for "
            "deployers and invokers are kept under the platform's home), or bind 127.0.0.1."
        )


def _token_dir(home: Path) -> Path:
    return home / "tokens"


def _write_token(path: Path) -> None:
    """A new token at ``path`` (0600), replacing any, never readable by others meanwhile."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    tmp.replace(path)


def rotate(home: Path, role: Role) -> Path:
    """Replace ``role``'s token; returns its file. The old token stops working at once."""
    Tokens.load(home)  # the directory and both files exist, with their modes
    path = _token_dir(home) / role
    _write_token(path)
    return path


@dataclass(frozen=True)
class Tokens:
    deployer: str
    invoker: str

    @classmethod
    def load(cls, home: Path) -> Tokens:
        """The platform's tokens, made on first use."""
        folder = _token_dir(home)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        values: dict[str, str] = {}
        for role in ROLES:
            path = folder / role
            if not path.is_file():
                _write_token(path)
            os.chmod(path, 0o600)
            values[role] = path.read_text().strip()
        return cls(deployer=values["deployer"], invoker=values["invoker"])

    def role_of(self, presented: str) -> Role | None:
        found: Role | None = None
        for role in ROLES:  # compare with both, in constant time each
            if hmac.compare_digest(presented.encode(), getattr(self, role).encode()):
                found = role
        return found


def _needed(path: str, open_services: bool) -> Role | None:
    """The least role a path needs; None when it is open."""
    if path in _OPEN_PATHS:
        return None
    if path == "/api" or path.startswith("/api/"):
        return "deployer"
    return None if open_services else "invoker"


class AccessGate:
    """ASGI middleware: a request without the role its path needs gets 401 (no or an
    unknown token) or 403 (an invoker token on the API), in the platform's error shape."""

    def __init__(self, app: Any, home: Path, *, open_services: bool = False) -> None:
        self.app = app
        self.home = home
        self.open_services = open_services
        self.tokens = Tokens.load(home)
        self._loaded = self._stamp()  # the token files' inodes and times when read
        self._checked = time.monotonic()

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        folder = _token_dir(self.home)
        found: list[tuple[int, int]] = []
        for role in ROLES:
            try:
                info = (folder / role).stat()
            except OSError:
                found.append((0, 0))
            else:
                found.append((info.st_ino, info.st_mtime_ns))
        return tuple(found)

    def _role(self, presented: str) -> Role | None:
        now = time.monotonic()
        if now - self._checked >= _RELOAD_EVERY:  # rotated meanwhile? (a stat per role)
            self._checked = now
            stamp = self._stamp()
            if stamp != self._loaded:
                self.tokens, self._loaded = Tokens.load(self.home), self._stamp()
        return self.tokens.role_of(presented)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = _needed(scope["path"], self.open_services)
        if needed is None:
            await self.app(scope, receive, send)
            return
        presented = ""
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    presented = token.strip()
        role = self._role(presented) if presented else None
        if role is None:
            why = "an unknown token" if presented else "no bearer token"
            await _refuse(send, 401, "unauthorized", (
                f"{scope['path']}: this platform needs a {needed} token (got {why}). Send "
                "Authorization: Bearer <token>; its operator finds the tokens under the "
                f"platform's home, tokens/{needed}."
            ))  # fmt: skip
            return
        if needed == "deployer" and role != "deployer":
            await _refuse(send, 403, "forbidden", (
                f"{scope['path']}: the control-plane API needs the deployer token (got the "
                "invoker token). Use the deployer token, or call the service routes only."
            ))  # fmt: skip
            return
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    request_id = secrets.token_hex(16)
    body = json.dumps(
        {"error": {"code": code, "message": message, "request_id": request_id}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="flowhost"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

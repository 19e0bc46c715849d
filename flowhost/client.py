"""The Python client of a flowhost platform, and ``flowhost.deploy`` for Metaflow steps.

```python
import flowhost
flowhost.deploy(service="services/sentiment.py", run=current.pathspec, promote=True)
```
"""

from __future__ import annotations

import getpass
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from flowhost.auth import auth_for, refused
from flowhost.client_errors import (
    AuditRefused,
    ContractRefused,
    DeployTimedOut,
    RequestTimedOut,
    raise_for,
    refusal,
)
from flowhost.errors import DeployError, FlowhostError, SpecError
from flowhost.services.loader import load_service
from flowhost.services.packaging import build_package
from flowhost.services.spec import WebServiceSpec, definition_of
from flowhost.targets import LOCAL, LOCAL_URL, URL_TARGET, Target, config_path, resolve_target

__all__ = [
    "DEFAULT_URL",
    "AuditClient",
    "AuditRefused",
    "Client",
    "ContractRefused",
    "DeployTimedOut",
    "RequestTimedOut",
    "deploy",
]

DEFAULT_URL = LOCAL_URL
AuditFn = Callable[["AuditClient"], object]


class AuditClient:
    """What an audit gets: calls to one version of one service, over HTTP."""

    def __init__(self, http: httpx.Client, service: str, version: int) -> None:
        self.http = http
        self.service = service
        self.version = version
        self.base = f"/{service}@v{version}"

    def post(self, endpoint: str, data: Any = None) -> httpx.Response:
        return self.http.post(f"{self.base}/{endpoint}", json=data)

    def call(self, endpoint: str, data: Any = None) -> Any:
        """POST ``data`` to ``endpoint``; the decoded JSON, or AssertionError on an error."""
        response = self.post(endpoint, data)
        assert response.status_code == 200, (
            f"{endpoint} answered {response.status_code}: {response.text[:300]}"
        )
        return response.json()


def _is_flowhost_error(response: httpx.Response) -> bool:
    """A 401/403 answered by flowhost itself about something other than identity."""
    try:
        error = response.json()["error"]
        return isinstance(error, dict) and error.get("code") != "unauthenticated"  # pyright: ignore[reportUnknownMemberType]
    except (ValueError, KeyError, TypeError):
        return False


def _said(response: httpx.Response) -> str:
    """What the target said when it refused a request, on one short line."""
    try:
        body = response.json()
        said = body["error"]["message"] if "error" in body else body.get("message", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        said = response.text
    said = " ".join(str(said or response.reason_phrase).split())
    return said if len(said) <= 200 else said[:197] + "..."


class Client:
    """Talks to the deployments API of a platform (``flowhost up`` or the AWS one).

    ``Client()`` talks to the default target (``$FLOWHOST_TARGET``, ``$FLOWHOST_URL`` or
    ``local``); ``Client(target="prod")`` to a target of the config file, with its
    credentials; ``Client("http://...")`` to a URL, unauthenticated.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        target: str | Target | None = None,
        actor: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if isinstance(target, Target):
            if url is not None:
                raise FlowhostError("Client: give url or target, not both.")
            self.target = target
        else:
            self.target = resolve_target(target, url=url)
        self.url = self.target.url
        self.auth = auth_for(self.target)
        self.http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"x-flowhost-actor": actor or _actor()},
            auth=self.auth,  # which also follows redirects, signing same-origin hops
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise FlowhostError(self._unreachable("")) from None
        except httpx.TransportError as exc:
            raise FlowhostError(self._unreachable(f" ({type(exc).__name__}: {exc})")) from None
        if response.status_code in (401, 403) and not _is_flowhost_error(response):
            raise refused(
                self.target, self.auth, response.status_code, _said(response), str(config_path())
            )
        raise_for(response)
        try:
            return response.json()
        except json.JSONDecodeError:
            raise FlowhostError(
                f"target {self.target.name!r} ({self.url}): {method} {path} answered "
                f"{response.status_code} with no JSON (got {response.text[:100]!r}). "
                "Check that the URL is a flowhost platform."
            ) from None

    def _unreachable(self, why: str) -> str:
        if self.target.name in (LOCAL, URL_TARGET):
            fix = (
                "Start it with 'flowhost up', or choose a running platform with --target "
                "(see 'flowhost targets') or --url"
            )
        else:
            fix = f"Check target {self.target.name!r} in {config_path()} and your network"
        return f"cannot reach the flowhost platform at {self.url}{why}. {fix}."

    def whoami(self) -> dict[str, Any]:
        """The identity the target sees for this client: ``{"actor", "source"}``."""
        return self.request("GET", "/api/whoami")

    # -- reads ----------------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/services")

    def service(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/services/{name}")

    def version(self, service: str, number: int) -> dict[str, Any]:
        return self.request("GET", f"/api/services/{service}/versions/{number}")

    def events(self, service: str, limit: int = 50) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/services/{service}/events", params={"limit": limit})

    def logs(self, service: str, number: int, tail: int = 100) -> str:
        body = self.request(
            "GET", f"/api/services/{service}/versions/{number}/logs", params={"tail": tail}
        )
        return str(body["log"])

    def invoke(self, service: str, endpoint: str, data: Any, *, ref: str | None = None) -> Any:
        target = f"{service}@{ref}" if ref else service
        return self.request("POST", f"/{target}/{endpoint}", json=data)

    # -- named environments ---------------------------------------------------------

    def register_environment(
        self, name: str, requirements: str, source: str = ""
    ) -> dict[str, Any]:
        """The revision ``requirements`` are as ``name``: a new one (``created``), or the
        latest when it already has them (``created`` false)."""
        body = {"requirements": requirements, "source": source}
        return self.request("PUT", f"/api/environments/{quote(name, safe='')}", json=body)

    def environments(self) -> list[dict[str, Any]]:
        """The latest revision of each registered environment."""
        return self.request("GET", "/api/environments")

    def environment(self, name: str, revision: int | None = None) -> dict[str, Any]:
        """``{latest, revisions}`` of ``name``; with ``revision``, that revision."""
        path = f"/api/environments/{quote(name, safe='')}"
        return self.request("GET", path if revision is None else f"{path}/revisions/{revision}")

    # -- asynchronous requests ------------------------------------------------------

    def submit(
        self,
        service: str,
        endpoint: str,
        data: Any,
        *,
        ref: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Queue an asynchronous call; returns its status record (``id``, ``status_url``...)."""
        target = f"{service}@{ref}" if ref else service
        headers: dict[str, str] = {}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        if callback_url is not None:
            headers["flowhost-callback-url"] = callback_url
        if timeout is not None:
            headers["flowhost-timeout"] = f"{timeout:g}"
        return self.request("POST", f"/{target}/{endpoint}/async", json=data, headers=headers)

    def status_of(self, request_id: str) -> dict[str, Any]:
        return self.request("GET", f"/requests/{request_id}")

    def result(self, request_id: str) -> Any:
        return self.request("GET", f"/requests/{request_id}/result")

    def request_detail(self, request_id: str) -> dict[str, Any]:
        """The request's failure as deployers see it: the exception's type, message and
        traceback (``detail``), which the invoker's status and result never carry."""
        return self.request("GET", f"/api/requests/{request_id}/detail")

    def wait(
        self,
        request_id: str,
        *,
        timeout: float = 12 * 3600.0,
        interval: float = 0.2,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Poll until the request finishes; its result, or the request's error raised."""
        deadline = time.monotonic() + timeout
        delay = interval
        while True:
            status = self.status_of(request_id)
            if on_status is not None:
                on_status(status)
            if status["status"] in ("succeeded", "failed", "expired"):
                return self.result(request_id)
            if time.monotonic() > deadline:
                raise RequestTimedOut(
                    f"request {request_id}: still {status['status']} after {timeout:g}s. "
                    f"Check later with 'flowhost request {request_id}'."
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)  # quick for short jobs, gentle for long ones

    # -- changes --------------------------------------------------------------------

    def promote(
        self, service: str, number: int, *, alias: str = "production",
        allow_breaking: bool = False, force: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        body = {"version": number, "allow_breaking": allow_breaking, "force": force}
        try:
            return self.request("POST", f"/api/services/{service}/aliases/{alias}", json=body)
        except DeployError as exc:
            raise refusal(exc) from None

    def rollback(self, service: str, *, alias: str = "production") -> dict[str, Any]:
        return self.request("POST", f"/api/services/{service}/aliases/{alias}/rollback")

    def undeploy(self, service: str, number: int) -> dict[str, Any]:
        return self.request("DELETE", f"/api/services/{service}/versions/{number}")

    def deploy(
        self,
        service: str | Path | type[WebServiceSpec],
        *,
        run: str | None = None,
        promote: bool = False,
        alias: str = "production",
        allow_breaking: bool = False,
        audits: Iterable[AuditFn] = (),
        timeout: float = 600.0,
        on_progress: Callable[[str], None] | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Deploy a new version and wait until it is ready; run audits; maybe promote.

        Raises ``DeployError`` if the version fails to start, ``AuditRefused`` if an audit
        fails (it is then not promoted), ``ContractRefused`` if the promote would break
        clients, or ``DeployTimedOut`` when the deadline passes. A failure leaves
        production as it was. ``wait=False`` returns the version record as soon as the
        deploy is accepted (no audits, no promote).
        """
        if not wait and (promote or audits):
            raise FlowhostError(
                "deploy: promote and audits need the version ready; wait for it "
                "(wait=True, --wait), or promote later."
            )
        cls = load_service(str(service)) if isinstance(service, str | Path) else service
        definition = definition_of(cls)
        source = inspect.getsourcefile(cls)
        if source is None:
            raise SpecError(f"{cls.__name__}: cannot find its source file to package.")
        say = on_progress or (lambda _m: None)
        digest, archive = build_package(Path(source).resolve().parent)
        say(f"packaged code {digest[:19]}... ({len(archive) // 1024} KiB)")
        self.request("PUT", f"/api/packages/{digest}", content=archive)
        body = {"definition": definition.model_dump(mode="json"), "package_digest": digest,
                "run": run, "promote": False, "alias": alias}  # fmt: skip
        version = self.request("POST", f"/api/services/{definition.name}/versions", json=body)
        number = int(version["number"])
        if not wait:
            return version
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for line in version.get("progress", [])[seen:]:
                say(line)
            seen = len(version.get("progress", []))
            if version["status"] in ("ready", "failed"):
                break
            if time.monotonic() > deadline:
                raise DeployTimedOut(
                    f"{definition.name} v{number} was not ready within {timeout:g}s; it is still "
                    "deploying. Check 'flowhost status' and 'flowhost logs'."
                )
            time.sleep(0.2)
            version = self.version(definition.name, number)
        if version["status"] == "failed":
            raise DeployError(f"{definition.name} v{number} failed to deploy: {version['error']}")
        self._audit(cls, definition.name, number, list(audits), say)
        if promote:
            self.promote(definition.name, number, alias=alias, allow_breaking=allow_breaking)
            say(f"promoted {definition.name} v{number} to {alias}")
        return self.version(definition.name, number)

    def _audit(
        self, cls: type[WebServiceSpec], service: str, number: int,
        extra: list[AuditFn], say: Callable[[str], None],
    ) -> None:  # fmt: skip
        checks: list[tuple[str, Callable[[AuditClient], object]]] = []
        bare = cls.__new__(cls)  # audits get an uninitialized self: they test over HTTP
        for name in definition_of(cls).audits:
            method = getattr(bare, name)
            checks.append((name, method))
        checks += [(getattr(fn, "__name__", repr(fn)), fn) for fn in extra]
        if not checks:
            return
        client = AuditClient(self.http, service, number)
        results: list[dict[str, Any]] = []
        for name, check in checks:
            try:
                check(client)
                results.append({"name": name, "passed": True})
                say(f"audit {name}: passed")
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                error += f" (at {Path(frame.filename).name}:{frame.lineno})"
                results.append({"name": name, "passed": False, "error": error})
                say(f"audit {name}: FAILED {error}")
        self.request("POST", f"/api/services/{service}/versions/{number}/audits", json=results)
        failed = [r for r in results if not r["passed"]]
        if failed:
            raise AuditRefused(
                f"{service} v{number} failed {len(failed)} audit(s), so it was not promoted: "
                + "; ".join(f"{r['name']}: {r['error']}" for r in failed)
            )


def _actor() -> str:
    try:
        return f"{getpass.getuser()}@{os.uname().nodename}"
    except Exception:  # pragma: no cover - no user database in some containers
        return "unknown"


def deploy(
    service: str | Path | type[WebServiceSpec],
    *,
    run: str | None = None,
    timeout: float = 600.0,
    audits: Iterable[AuditFn] = (),
    promote: bool = False,
    alias: str = "production",
    allow_breaking: bool = False,
    url: str | None = None,
    target: str | Target | None = None,
) -> dict[str, Any]:
    """Deploy from Python (e.g. a Metaflow step): blocks until done, raises on failure.

    ``target`` names a target of the config file (default ``$FLOWHOST_TARGET``, else
    ``local``); ``url`` a platform reached without credentials.
    """
    with Client(url, target=target) as client:
        return client.deploy(
            service, run=run, promote=promote, alias=alias, allow_breaking=allow_breaking,
            audits=audits, timeout=timeout,
            on_progress=lambda m: print(f"[flowhost] {m}", file=sys.stderr),
        )  # fmt: skip

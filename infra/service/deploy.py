"""Code a stack deploys, registered through the control plane (a Pulumi dynamic resource).

``ServiceSpec(..., deploy=Deploy(promote=True))`` never creates per-version compute: its
``DeployedVersion`` resource calls the platform's deployments API, as ``flowhost deploy``
does. Create uploads the code package (``PUT /api/packages/{digest}``), deploys it
(``POST /api/services/{s}/versions``), waits for the outcome while printing the deploy's
progress lines, moves the asked-for aliases, and returns the number the control plane
assigned (``number``). Delete undeploys that version. A new digest, run or definition
replaces the resource (a new version, then the old one undeployed); changed aliases only
move aliases.

``ServiceSpec(version=N, deploy=...)`` pins version N: if the control plane's record of N
has another code digest, ``check`` and ``diff`` (which run at ``pulumi preview``) fail
with one line naming both digests; if N exists with this digest the stack adopts it; if
it does not exist yet, the deploy must be assigned N.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ResourceProvider,
    UpdateResult,
)

from flowhost.errors import DeployError, NotFoundError
from flowhost.targets import Target

__all__ = ["Deploy", "DeployProvider", "DeployedVersion", "api_target", "pin_conflict"]

PRODUCTION = "production"
REPLACE_ON = ("service", "digest", "run", "definition")
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # Pulumi's unknown-value marker


@dataclass(frozen=True)
class Deploy:
    """What a stack asks the control plane to do with its code.

    ``promote`` moves ``production`` to the new version once it is ready; ``aliases``
    moves others (``("staging",)``); ``run`` pins the artifact run (else the control plane
    resolves the latest); ``timeout`` bounds the wait for the deploy's outcome. ``target``
    overrides how the API is reached (default: the platform's ``apiUrl``, SigV4-signed
    with the standard credential chain, in the stack's region).
    """

    promote: bool = False
    aliases: Sequence[str] = ()
    run: str | None = None
    timeout: float = 600.0
    target: Target | None = field(default=None)

    def all_aliases(self) -> list[str]:
        wanted = [PRODUCTION] if self.promote else []
        return wanted + [a for a in self.aliases if a not in wanted]


def _client(props: Mapping[str, Any]) -> Any:
    from flowhost.client import Client  # imported in the provider's process only

    return Client(target=Target.model_validate(props["target"]), timeout=60.0)


def _record(client: Any, service: str, number: int) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.version(service, number)
    except NotFoundError:
        return None
    return found


def pin_conflict(service: str, number: int, digest: str, recorded: str) -> str:
    """The one line ``pulumi preview`` shows when a pinned version has other code."""
    return (
        f"ServiceSpec {service!r}: version={number} is recorded by the control plane with "
        f"code {recorded}, but this stack's code is {digest}. Drop version= to deploy a new "
        f"version, or pin the version that has this code."
    )


def _known(props: Mapping[str, Any]) -> bool:
    target: Mapping[str, Any] = props.get("target") or {}
    return _UNKNOWN not in (str(target.get("url", _UNKNOWN)), str(props.get("digest", _UNKNOWN)))


def _check_pin(props: Mapping[str, Any]) -> str | None:
    """The conflict of a pinned version with its record, if any (needs the API)."""
    pinned = props.get("pinned")
    if pinned is None or not _known(props):
        return None
    with _client(props) as client:
        found = _record(client, str(props["service"]), int(pinned))
    if found is None or found.get("code_digest") == props["digest"]:
        return None
    return pin_conflict(str(props["service"]), int(pinned), str(props["digest"]),
                        str(found.get("code_digest")))  # fmt: skip


class DeployProvider(ResourceProvider):
    """The dynamic provider behind ``DeployedVersion``; its methods are the API calls."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self.say = say

    def _say(self, service: str, line: str) -> None:
        message = f"[flowhost] {service}: {line}"
        if self.say is not None:
            self.say(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        conflict = _check_pin(news)
        failures = [CheckFailure("version", conflict)] if conflict else []
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        conflict = _check_pin(news)
        if conflict:
            raise DeployError(conflict)
        replaces = [k for k in REPLACE_ON if olds.get(k) != news.get(k)]
        changed = replaces + [
            k for k in ("aliases", "pinned") if list_or(olds.get(k)) != list_or(news.get(k))
        ]
        return DiffResult(
            changes=bool(changed), replaces=replaces, stables=["number"],
            delete_before_replace=False,
        )  # fmt: skip

    def create(self, props: dict[str, Any]) -> CreateResult:
        service, digest = str(props["service"]), str(props["digest"])
        raw = props.get("pinned")
        pinned = None if raw is None else int(raw)
        with _client(props) as client:
            found = _record(client, service, pinned) if pinned is not None else None
            if pinned is not None and found is not None:
                if found.get("code_digest") != digest:
                    raise DeployError(
                        pin_conflict(service, pinned, digest, str(found.get("code_digest")))
                    )
                number = pinned
                self._say(service, f"v{number} already has this code: adopted")
            else:
                number = self._deploy(client, props)
                if pinned is not None and number != pinned:
                    client.undeploy(service, number)
                    raise DeployError(
                        f"ServiceSpec {service!r}: version={pinned} was pinned, but the "
                        f"control plane numbered this deploy v{number} (undeployed again). "
                        "Drop version= to take the number the control plane assigns."
                    )
            self._move_aliases(client, service, number, list_or(props.get("aliases")))
        return CreateResult(f"{service}@v{number}", {**props, "number": number})

    def _deploy(self, client: Any, props: Mapping[str, Any]) -> int:
        service, digest = str(props["service"]), str(props["digest"])
        archive = Path(str(props["archive"])).read_bytes()
        client.request("PUT", f"/api/packages/{digest}", content=archive)
        self._say(service, f"uploaded code {digest[:19]}... ({len(archive) // 1024} KiB)")
        body = {"definition": props["definition"], "package_digest": digest,
                "run": props.get("run"), "promote": False}  # fmt: skip
        version: dict[str, Any] = client.request(
            "POST", f"/api/services/{service}/versions", json=body
        )
        number = int(version["number"])
        deadline = time.monotonic() + float(props.get("timeout") or 600.0)
        seen = 0
        while True:
            lines: list[str] = list(version.get("progress") or [])
            for line in lines[seen:]:
                self._say(service, line)
            seen = len(lines)
            if version["status"] in ("ready", "failed"):
                break
            if time.monotonic() > deadline:
                raise DeployError(
                    f"ServiceSpec {service!r}: v{number} was not ready within "
                    f"{props.get('timeout')}s; it is still deploying. Check 'flowhost status', "
                    "then run pulumi up again."
                )
            time.sleep(0.5)
            version = client.version(service, number)
        if version["status"] == "failed":
            raise DeployError(
                f"ServiceSpec {service!r}: v{number} failed to deploy ({version.get('error')}). "
                "Fix the service and run pulumi up again; production is unchanged."
            )
        return number

    def _move_aliases(self, client: Any, service: str, number: int, aliases: Sequence[str]) -> None:
        for alias in aliases:
            client.promote(service, number, alias=str(alias))
            self._say(service, f"{alias} -> v{number}")

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        number = int(olds["number"])
        added = [a for a in list_or(news.get("aliases")) if a not in list_or(olds.get("aliases"))]
        with _client(news) as client:
            self._move_aliases(client, str(news["service"]), number, added)
        return UpdateResult({**news, "number": number})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        service, number = str(props["service"]), int(props["number"])
        with _client(props) as client:
            try:
                client.undeploy(service, number)
            except NotFoundError:
                return  # already gone
        self._say(service, f"undeployed v{number}")


def list_or(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]


class DeployedVersion(pulumi.dynamic.Resource):
    """A version of a service, deployed through the control plane; ``number`` is its."""

    number: pulumi.Output[int]

    def __init__(
        self, name: str, props: Mapping[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None, provider: ResourceProvider | None = None,
    ) -> None:  # fmt: skip
        super().__init__(provider or DeployProvider(), name, {**props, "number": None}, opts)


def api_target(name: str, environment: str, url: str, region: str) -> dict[str, Any]:
    """The platform's API as a SigV4 target (``flowhost.targets.Target``)."""
    if not url:
        raise ValueError(
            f"ServiceSpec {name!r}: deploy= needs the platform stack's apiUrl output (got none). "
            "Update the platform stack (pulumi up in the flowhost repository), or pass "
            "Deploy(target=...)."
        )
    target = Target(name=f"platform-{environment}", url=url, auth="sigv4", region=region)
    return target.model_dump(mode="json")

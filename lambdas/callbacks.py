"""Delivers async-request callbacks: a signed POST, retried with backoff, then given up.

The body is the request's status record (and the result inline when small, else its
URL); the ``Flowhost-Signature`` header signs it (see :mod:`flowhost.callbacks`).

Callback URLs come from callers, and the deliverer runs inside the platform's network:
unless ``CallbackPolicy.allow_private`` (the local platform's default, where receivers are
on loopback), a URL whose host is or resolves to a loopback, private, link-local or
otherwise non-public address is refused at submit (an address literal) and not posted
to at delivery (a name, resolved then; the POST then goes to the address that was
checked, the name kept for ``Host`` and TLS, so a second lookup cannot redirect it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from flowhost.callbacks import SIGNATURE_HEADER, sign

__all__ = ["CallbackPolicy", "deliver", "non_public_address"]

log = logging.getLogger("flowhost.callbacks")


@dataclass(frozen=True)
class CallbackPolicy:
    """How hard to try: ``attempts`` POSTs, waiting ``backoff * 2**n`` (capped, jittered)."""

    attempts: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 10.0
    allow_private: bool = True  # False on AWS: only public addresses (see the module)

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


def non_public_address(host: str) -> str | None:
    """``host`` itself when it is an address literal that is not public (loopback,
    private, link-local, reserved...) or ``localhost``; else None."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return host
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    return None if address.is_global else host


@dataclass(frozen=True)
class _Target:
    """Where a callback's POSTs go: the URL, pinned to a checked address when only public
    hosts are allowed (with the name kept for ``Host`` and TLS), so the connection goes
    to the address that was checked, not to what a second lookup might answer."""

    url: str
    headers: dict[str, str] = field(default_factory=dict[str, str])
    extensions: dict[str, Any] = field(default_factory=dict[str, Any])


async def _public_target(url: str) -> _Target | str | None:
    """``url`` pinned to the public address its host resolves to; the first non-public
    address found (refuse it); or None when the host does not resolve now (a failed
    attempt: never a POST that would resolve the name again, unchecked)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if (literal := non_public_address(host)) is not None:
        return literal
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not address.is_global:
            return str(address)
    if not addresses:
        return None
    pinned = f"[{addresses[0]}]" if addresses[0].version == 6 else str(addresses[0])
    netloc = f"{pinned}:{parts.port}" if parts.port else pinned
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return _Target(
        urlunsplit(parts._replace(netloc=netloc)),
        {"host": parts.netloc.rsplit("@", 1)[-1]},
        extensions,
    )


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: bytes,
    *,
    policy: CallbackPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """POST ``body`` to ``url`` until a 2xx answer or the attempts run out; True if
    delivered. Every attempt is signed afresh (its timestamp is the attempt's)."""
    policy = policy or CallbackPolicy()
    for attempt in range(policy.attempts):
        # Checked on every attempt: each POST goes to an address resolved and checked now.
        target = _Target(url) if policy.allow_private else await _public_target(url)
        if isinstance(target, str):
            log.warning(
                "callback refused: its host is not a public address",
                extra={"fields": {"url": url, "address": target}},
            )
            return False
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
        if target is None:
            outcome = "unresolvable host"
        else:
            try:
                response = await client.post(
                    target.url,
                    content=body,
                    headers={**headers, **target.headers},
                    timeout=policy.timeout,
                    extensions=target.extensions,
                )
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                if response.is_success:
                    return True
                outcome = f"HTTP {response.status_code}"
        log.warning(
            "callback attempt failed",
            extra={"fields": {"url": url, "attempt": attempt + 1, "outcome": outcome}},
        )
        if attempt + 1 < policy.attempts:
            await sleep(policy.delay(attempt))
    return False
    for attempt in range(policy.attempts):
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
        try:
            response = await client.post(
                target.url,
                content=body,
                headers={**headers, **target.headers},
                timeout=policy.timeout,
                extensions=target.extensions,
            )
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            if response.is_success:
                return True
            outcome = f"HTTP {response.status_code}"
        log.warning(
            "callback attempt failed",
            extra={"fields": {"url": url, "attempt": attempt + 1, "outcome": outcome}},
        )
        if attempt + 1 < policy.attempts:
            await sleep(policy.delay(attempt))
    return False

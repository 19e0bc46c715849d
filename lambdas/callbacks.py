"""Delivers async-request callbacks: a signed POST, retried with backoff, then given up.

The body is the request's status record (and the result inline when small, else its
URL); the ``Flowhost-Signature`` header signs it (see :mod:`flowhost.callbacks`).

Callback URLs come from callers, and the deliverer runs inside the platform's network:
unless ``CallbackPolicy.allow_private`` (the local platform's default, where receivers are
on loopback), a URL whose host is or resolves to a loopback, private, link-local or
otherwise non-public address is refused at submit (an address literal) and not posted
to at delivery (a name, resolved then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

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


async def _resolves_to_non_public(host: str, port: int) -> str | None:
    """The first non-public address ``host`` resolves to, if any (DNS failures: None,
    the POST then fails as any unreachable host does)."""
    if (literal := non_public_address(host)) is not None:
        return literal
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not address.is_global:
            return str(address)
    return None


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
    if not policy.allow_private:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        blocked = await _resolves_to_non_public(parts.hostname or "", port)
        if blocked is not None:
            log.warning(
                "callback refused: its host is not a public address",
                extra={"fields": {"url": url, "address": blocked}},
            )
            return False
    for attempt in range(policy.attempts):
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
        try:
            response = await client.post(url, content=body, headers=headers, timeout=policy.timeout)
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

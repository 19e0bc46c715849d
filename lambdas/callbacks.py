"""Delivers async-request callbacks: a signed POST, retried with backoff, then given up.

The body is the request's status record (and the result inline when small, else its
URL); the ``Flowhost-Signature`` header signs it (see :mod:`flowhost.callbacks`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from flowhost.callbacks import SIGNATURE_HEADER, sign

__all__ = ["CallbackPolicy", "deliver"]

log = logging.getLogger("flowhost.callbacks")


@dataclass(frozen=True)
class CallbackPolicy:
    """How hard to try: ``attempts`` POSTs, waiting ``backoff * 2**n`` (capped, jittered)."""

    attempts: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 10.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


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

"""Signatures of flowhost's async-request callbacks, for the platform and for receivers.

Each callback POST carries ``Flowhost-Signature: t=<unix seconds>,v1=<hex>``, where
``v1`` is HMAC-SHA256 over ``f"{t}.".encode() + body`` with the callback secret. A
receiver verifies it with :func:`verify_signature` (constant-time, with a tolerance on
``t`` so a captured request cannot be replayed later):

```python
from flowhost.callbacks import verify_signature

verify_signature(secret, request.headers["Flowhost-Signature"], await request.body())
```
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["SIGNATURE_HEADER", "SignatureError", "sign", "verify_signature"]

SIGNATURE_HEADER = "Flowhost-Signature"
DEFAULT_TOLERANCE = 300.0


class SignatureError(ValueError):
    """The callback's signature is missing, malformed, wrong, or too old."""


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``Flowhost-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(
    secret: bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``header`` signs ``body`` with ``secret`` and its
    timestamp is within ``tolerance`` seconds of now."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header: the request is not from flowhost.")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise SignatureError(
            f"{SIGNATURE_HEADER} must look like 't=<unix seconds>,v1=<hex>' (got {header[:80]!r})."
        ) from None
    if abs((time.time() if now is None else now) - t) > tolerance:
        raise SignatureError(
            f"{SIGNATURE_HEADER} timestamp {t} is more than {tolerance:g}s away from now: a "
            "replay, or a clock out of sync."
        )
    if not hmac.compare_digest(_digest(secret, t, body), given):
        raise SignatureError(
            f"{SIGNATURE_HEADER} does not match the body: wrong secret, or the body changed."
        )

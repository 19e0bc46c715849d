"""What the client raises for a platform's error answers: the error's own code kept, a
refused promote as the refusal it is (audits or the schema contract), and deadlines."""

from __future__ import annotations

import httpx

from flowhost.errors import (
    AuditFailedError,
    ContractBrokenError,
    DeployError,
    FlowhostError,
    NotFoundError,
    SpecError,
)

__all__ = [
    "AuditRefused",
    "ContractRefused",
    "DeployTimedOut",
    "RequestTimedOut",
    "raise_for",
    "refusal",
]

_BY_STATUS: dict[int, type[FlowhostError]] = {404: NotFoundError, 409: DeployError, 400: SpecError}


# The client's names for the control plane's own refusals (flowhost.errors).
AuditRefused = AuditFailedError
ContractRefused = ContractBrokenError


class DeployTimedOut(DeployError):
    """A new version was not ready by the deadline; it is still deploying."""

    code = "timed_out"


class RequestTimedOut(FlowhostError):
    """An asynchronous request was still running at the deadline."""

    code = "timed_out"
    status = 504


def refusal(exc: DeployError) -> DeployError:
    """A promote the control plane refused, as the refusal it is: by its code
    (``audit_failed``, ``contract_broken``), or by its message from a control plane
    that answered both with ``deploy_failed``."""
    if exc.code == AuditRefused.code or "failed its audits" in exc.message:
        return AuditRefused(exc.message)
    if exc.code == ContractRefused.code or "would break clients of" in exc.message:
        return ContractRefused(exc.message)
    return exc


def raise_for(response: httpx.Response) -> None:
    """Raise the flowhost error an error response carries (its code kept); nothing below 400."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), str(error.get("code", ""))
    except Exception:
        message, code = f"HTTP {response.status_code}: {response.text[:300]}", ""
    kind = _BY_STATUS.get(response.status_code, FlowhostError)
    exc = kind(message)
    exc.code = code or exc.code
    raise exc

"""What an endpoint's failure shows its caller, and what only its deployers see.

An exception's message often carries what must not leave the service: a connection
string, a token, a path, a customer's data. Callers (sync answers, async status and
result, callbacks) get the stable code ``endpoint_error``, a safe message naming the
endpoint, the exception's type and the request id (:func:`endpoint_error_message`). The
exception's message and traceback (:func:`failure_detail`) go to the instance's log,
keyed by request id, and for an asynchronous request also beside its record, where the
control plane serves them to deployers (``GET /api/requests/{id}/detail``,
``flowhost request <id> --detail``).
"""

from __future__ import annotations

import traceback

__all__ = [
    "ENDPOINT_ERROR",
    "MAX_DETAIL_CHARS",
    "endpoint_error_message",
    "failure_detail",
]

ENDPOINT_ERROR = "endpoint_error"
MAX_DETAIL_CHARS = 16_000  # per field: a traceback keeps its end, where the error is


def endpoint_error_message(endpoint: str, exc: BaseException, request_id: str) -> str:
    """The caller's message for an exception the endpoint raised: never its text."""
    return (
        f"endpoint {endpoint!r} raised {type(exc).__name__}; request id {request_id}. "
        "The traceback is in the instance log."
    )


def _clip(text: str) -> str:
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return "...(cut)\n" + text[-MAX_DETAIL_CHARS:]


def failure_detail(exc: BaseException) -> dict[str, str]:
    """``{"type", "message", "traceback"}`` of ``exc``, for deployers only."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    return {
        "type": name,
        "message": _clip(str(exc)),
        "traceback": _clip("".join(traceback.format_exception(exc))),
    }

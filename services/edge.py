"""The edge's contract: how a synchronous request outlives API Gateway's 30 seconds.

API Gateway cuts an integration at 30 s. A synchronous request that cannot be answered
inside the budget (a version starting from zero, an endpoint with a long timeout) is
*held*: it becomes a request kept like an asynchronous one, and the caller is redirected
to a long-poll URL whose every hop stays inside the budget and which ends in the
endpoint's own response::

    POST /sentiment/predict            -> 303 See Other, Location: /requests/<id>/wait
    GET  /requests/<id>/wait           -> 303 (itself) while running ... 200 <the answer>

An endpoint declared to run longer than the default timeout (``HOLD_ABOVE_SECONDS``)
is held before it runs: its instance answers ``307`` to ``hold_path(...)`` (the client
repeats the POST with its body to the control plane, which queues it and answers
``303`` to the wait URL). Endpoints within the default are served directly, so the
common, quick call pays nothing; one that outlives 30 s there is cut by API Gateway
(503): declare a longer ``@endpoint(timeout=...)`` to have it held instead. The API Gateway
integration that carries synchronous calls adds ``EDGE_HEADER`` so that the activator
and instances know a caller is behind the 30-second limit; callers inside the VPC that
use the internal load balancer directly are held as long as the endpoint needs.

Redirect-following clients (``curl -L``: 50 hops, ``flowhost invoke``) get the answer
of a request up to the endpoint's 20-minute limit; httpx follows 20 hops by default, so
pass ``max_redirects=60`` for the longest endpoints.
"""

from __future__ import annotations

from flowhost.services.definition import DEFAULT_TIMEOUT

__all__ = [
    "EDGE_BUDGET_SECONDS",
    "EDGE_HEADER",
    "HOLD_ABOVE_SECONDS",
    "HOLD_PREFIX",
    "MAX_EDGE_REPLY_BYTES",
    "hold_path",
    "wait_path",
]

EDGE_HEADER = "x-flowhost-edge"  # set by the edge's integration, never trusted to be absent
EDGE_BUDGET_SECONDS = 25.0  # what one hop may take, well under API Gateway's 30 s
MAX_EDGE_REPLY_BYTES = 5_000_000  # under Lambda's 6 MB response; larger replies go via S3
HOLD_PREFIX = "/requests/hold"
HOLD_ABOVE_SECONDS = DEFAULT_TIMEOUT  # endpoints declared to run longer are held at the edge


def hold_path(service: str, ref: str | None, endpoint: str) -> str:
    """Where a held synchronous call is re-sent: ``/requests/hold/S[@ref]/endpoint``."""
    target = service if ref is None else f"{service}@{ref}"
    return f"{HOLD_PREFIX}/{target}/{endpoint}"


def wait_path(request_id: str) -> str:
    """The long-poll URL of a held request (relative to the edge)."""
    return f"/requests/{request_id}/wait"

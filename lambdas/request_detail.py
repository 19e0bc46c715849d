"""``GET /api/requests/{id}/detail``: an asynchronous request's failure, for deployers.

Invokers poll ``/requests/{id}`` (the async request API) and see a failed request's
stable code and safe message only. The exception behind it (type, message, traceback of
the last failed delivery, see :mod:`flowhost.services.runtime.failures`) is served here,
under ``/api/``: on the local platform to its user, on AWS to the deployer and reader
grants of the control plane, never to the invoker's routes. ``flowhost request <id>
--detail`` reads it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from flowhost.errors import NotFoundError
from flowhost.lambdas.async_requests.settling import Settler
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.jobs import read_detail
from flowhost.lambdas.store.requests import RequestStore

__all__ = ["request_detail_router"]


class RequestNotFound(NotFoundError):
    code = "request_not_found"


def request_detail_router(deployments: Deployments) -> APIRouter:
    """The route, over the platform's request records and object store."""
    router = APIRouter()

    @cache
    def settler() -> Settler:  # made on first use: the store may not be open before
        # On AWS a worker's outcome may be in the ledger and not yet settled.
        return Settler(RequestStore(deployments.store.engine), deployments.objects)

    @router.get(
        "/api/requests/{request_id}/detail",
        responses={404: {"description": "no such request (`request_not_found`)"}},
    )
    def request_detail(request_id: str) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        """The request's record and, if a delivery failed with an exception, that
        exception's type, message and traceback (``detail``; null otherwise)."""
        try:
            record = settler().settle(settler().requests.get(request_id))
        except NotFoundError as exc:
            raise RequestNotFound(exc.message) from None
        return {
            "id": record.id,
            "service": record.service,
            "endpoint": record.endpoint,
            "status": record.status,
            "version": f"v{record.version}" if record.version is not None else None,
            "attempts": record.attempts,
            "detail": read_detail(deployments.objects, record.service, record.id),
        }

    return router

"""Who is calling the control plane: the actor the event trail records.

On AWS the request came through API Gateway (HTTP API, payload v2) and Mangum, which
puts the Lambda event in the ASGI scope as ``aws.event``. The actor is then the caller
API Gateway verified: ``requestContext.authorizer.iam.userArn`` (IAM authorizer, a
SigV4-signed request) or ``jwt:<sub>`` from ``requestContext.authorizer.jwt.claims``
(JWT authorizer). The ``x-flowhost-actor`` header is ignored there: a client could write
anything in it. A request with no verified identity is refused (401, ``unauthenticated``).

Locally (no ``aws.event``) the caller names itself in the ``x-flowhost-actor`` header,
or is ``anonymous``. ``Actor`` is the FastAPI dependency every mutating route takes;
``router`` serves ``GET /api/whoami``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Header, Request

from flowhost.errors import FlowhostError
from flowhost.services.openapi import error_response

__all__ = ["Actor", "Caller", "Identity", "Unauthenticated", "caller", "identify", "router"]

Source = Literal["iam", "jwt", "header"]
EVENT_KEY = "aws.event"  # where Mangum's API Gateway handler puts the Lambda event
ANONYMOUS = "anonymous"


class Unauthenticated(FlowhostError):
    """A request reached the control plane on AWS without an identity API Gateway verified."""

    code = "unauthenticated"
    status = 401


@dataclass(frozen=True)
class Identity:
    """The caller as the control plane sees it, and how it knows."""

    actor: str
    source: Source


def _mapping(value: object) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def from_event(event: dict[str, Any]) -> Identity:
    """The verified caller of an API Gateway v2 event (``Unauthenticated`` if none)."""
    authorizer = _mapping(_mapping(event.get("requestContext")).get("authorizer"))
    user_arn = _text(_mapping(authorizer.get("iam")).get("userArn"))
    if user_arn is not None:
        return Identity(user_arn, "iam")
    subject = _text(_mapping(_mapping(authorizer.get("jwt")).get("claims")).get("sub"))
    if subject is not None:
        return Identity(f"jwt:{subject}", "jwt")
    kinds = ", ".join(sorted(authorizer)) or "none"
    raise Unauthenticated(
        "control plane: the request carries no identity verified by API Gateway (got "
        f'authorizer context: {kinds}). Sign the request (auth = "sigv4") or send a valid '
        "token; the platform's routes require an IAM or JWT authorizer."
    )


def identify(
    request: Request,
    x_flowhost_actor: Annotated[
        str | None, Header(alias="x-flowhost-actor", max_length=255)
    ] = None,
) -> Identity:
    """The caller of this request: verified on AWS, self-declared locally."""
    event = request.scope.get(EVENT_KEY)
    if event is not None:
        return from_event(_mapping(event))
    return Identity(x_flowhost_actor or ANONYMOUS, "header")


Caller = Annotated[Identity, Depends(identify)]


def caller(identity: Caller) -> str:
    """The actor of this request, as the event trail records it."""
    return identity.actor


Actor = Annotated[str, Depends(caller)]

router = APIRouter()


@router.get(
    "/api/whoami",
    responses={401: error_response("No verified identity on AWS (code: unauthenticated)")},
)
def whoami(identity: Caller) -> dict[str, str]:
    """The identity this platform sees for the caller, and where it comes from."""
    return {"actor": identity.actor, "source": identity.source}

"""Who is calling the control plane: the actor the event trail records.

Locally the caller names itself in the ``x-flowhost-actor`` header. ``Actor`` is the
FastAPI dependency every mutating route takes; ``router`` serves ``GET /api/whoami``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header

__all__ = ["Actor", "caller", "router"]


def caller(
    x_flowhost_actor: Annotated[
        str | None, Header(alias="x-flowhost-actor", max_length=255)
    ] = None,
) -> str:
    """The actor of this request."""
    return x_flowhost_actor or "anonymous"


Actor = Annotated[str, Depends(caller)]

router = APIRouter()


@router.get("/api/whoami")
def whoami(actor: Actor) -> dict[str, str]:
    """The identity this platform sees for the caller."""
    return {"actor": actor}

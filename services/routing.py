"""The URL scheme of aliases, shared by the control plane, the local router, the serving
runtime and the Pulumi components: ``/{service}/...`` is the ``production`` alias,
``/{service}@{ref}/...`` any other alias or a version (``v3``).

The load balancer on AWS forwards such a path unchanged to the version's instances; the
local router strips the prefix before it forwards. Either way the instance answers the
same endpoint: :func:`split_path` is how both read a path, :func:`join_path` how callers
(audits, the activator's replays, clients) build one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["MAX_PATTERN", "PRODUCTION", "RoutePath", "join_path", "path_patterns", "split_path"]

PRODUCTION = "production"
MAX_PATTERN = 128  # characters in one ALB path-pattern value
# An alias (a lowercase slug, see the store) or a version ("v3", "3").
_REF = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class RoutePath(NamedTuple):
    """A request path read as ``/{service}[@{ref}]{rest}``; ``rest`` is ``""`` or starts
    with ``/``; ``ref`` is None for the production alias."""

    service: str
    ref: str | None
    rest: str

    @property
    def prefix(self) -> str:
        """The part naming the service (and ref): ``/svc`` or ``/svc@ref``."""
        return join_path(self.service, self.ref)


def split_path(path: str) -> RoutePath | None:
    """``/svc@v3/predict`` -> ``RoutePath("svc", "v3", "/predict")``; ``/svc/predict`` ->
    ``RoutePath("svc", None, "/predict")``. None when the path names no service: it is
    empty (``/``), or its first segment has an empty service or a ref that is neither an
    alias nor a version (``/svc@/x``, ``/@v1/x``, ``/svc@A B/x``)."""
    first, slash, tail = path.removeprefix("/").partition("/")
    service, at, ref = first.partition("@")
    if not service or (at and not _REF.match(ref)):
        return None
    return RoutePath(service, ref if at else None, slash + tail)


def join_path(service: str, ref: str | None = None, rest: str = "") -> str:
    """The inverse of :func:`split_path`: ``join_path("svc", "v3", "/predict")`` is
    ``/svc@v3/predict``; ``rest`` may be given with or without its leading ``/``."""
    if rest and not rest.startswith("/"):
        rest = "/" + rest
    return (f"/{service}" if ref is None else f"/{service}@{ref}") + rest


def path_patterns(service: str, alias: str) -> tuple[str, str]:
    """The load balancer paths of ``service``'s ``alias``: ``/svc``, ``/svc/*`` for
    production, ``/svc@alias``, ``/svc@alias/*`` otherwise (versions too: ``/svc@v3``)."""
    base = join_path(service, None if alias == PRODUCTION else alias)
    if len(base) + 2 > MAX_PATTERN:
        raise ValueError(
            f"route {service}@{alias}: the path pattern {base + '/*'!r} is longer than ALB's "
            f"{MAX_PATTERN} characters (got {len(base) + 2}). Use a shorter alias."
        )
    return base, base + "/*"

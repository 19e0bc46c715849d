"""The URL scheme of aliases, shared by the control plane, the router and the Pulumi
components: ``/{service}/...`` is the ``production`` alias, ``/{service}@{ref}/...``
any other alias or a version (``v3``)."""

from __future__ import annotations

__all__ = ["MAX_PATTERN", "PRODUCTION", "path_patterns"]

PRODUCTION = "production"
MAX_PATTERN = 128  # characters in one ALB path-pattern value


def path_patterns(service: str, alias: str) -> tuple[str, str]:
    """The load balancer paths of ``service``'s ``alias``: ``/svc``, ``/svc/*`` for
    production, ``/svc@alias``, ``/svc@alias/*`` otherwise (versions too: ``/svc@v3``)."""
    base = f"/{service}" if alias == PRODUCTION else f"/{service}@{alias}"
    if len(base) + 2 > MAX_PATTERN:
        raise ValueError(
            f"route {service}@{alias}: the path pattern {base + '/*'!r} is longer than ALB's "
            f"{MAX_PATTERN} characters (got {len(base) + 2}). Use a shorter alias."
        )
    return base, base + "/*"

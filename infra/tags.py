"""Tags and names every platform resource carries.

Tags are set on each resource, not as provider default tags: the policy pack sees a
resource's own inputs only, and so does anyone reading the state.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EDGE_TAG", "Tagging"]

EDGE_TAG = "flowhost:edge"


@dataclass(frozen=True)
class Tagging:
    """The environment and owner every resource is tagged with."""

    environment: str
    owner: str
    service: str = "platform"

    def tags(self, name: str | None = None, **extra: str) -> dict[str, str]:
        """The three required tags, plus ``Name`` and any extras."""
        tags = {
            "flowhost:environment": self.environment,
            "flowhost:service": self.service,
            "owner": self.owner,
        }
        if name is not None:
            tags["Name"] = name
        tags.update(extra)
        return tags

"""A service bound to a Metaflow flow that was never run."""

from __future__ import annotations

from typing import Any

from flowhost.services import Artifacts, WebServiceSpec, endpoint


class MissingFlow(WebServiceSpec):
    """Cannot start: its flow does not exist."""

    name = "missing-flow"
    artifacts = Artifacts(flow="NoSuchFlow")

    @endpoint
    def ping(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {}

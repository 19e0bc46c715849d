"""A service whose requirement has no wheel for Linux: its environment cannot be built."""

from __future__ import annotations

from typing import Any

from flowhost.services import Environment, WebServiceSpec, endpoint


class Native(WebServiceSpec):
    name = "native"
    environment = Environment(requirements="requirements.txt")

    @endpoint
    def ping(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

"""A service naming an environment nobody registered."""

from __future__ import annotations

from typing import Any

from flowhost.services import Environment, WebServiceSpec, endpoint


class Orphan(WebServiceSpec):
    name = "orphan"
    environment = Environment(name="nobody-registered-this")

    @endpoint
    def ping(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

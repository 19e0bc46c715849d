"""A service whose initialize raises."""

from __future__ import annotations

from typing import Any

from flowhost.services import WebServiceSpec, endpoint


class BrokenInit(WebServiceSpec):
    """Never becomes ready."""

    name = "broken-init"

    def initialize(self) -> None:
        raise ValueError("corrupt model file: checksum 0xdead does not match")

    @endpoint
    def ping(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {}

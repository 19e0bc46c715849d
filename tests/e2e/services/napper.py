"""Scales to zero after two idle seconds."""

from __future__ import annotations

import os
from typing import Any

from flowhost.services import Scaling, WebServiceSpec, endpoint


class Napper(WebServiceSpec):
    """Sleeps when nobody calls."""

    name = "napper"
    scaling = Scaling(min_instances=0, max_instances=1, idle_timeout="2s")

    @endpoint
    def wake(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid()}

"""Answers with the pid of the instance that served the request; ``work`` takes 0.3s.

One request in flight per instance is the target, so concurrent calls scale it out.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flowhost.services import Scaling, WebServiceSpec, endpoint


class WhoAmI(WebServiceSpec):
    """Which instance am I talking to?"""

    name = "whoami"
    scaling = Scaling(min_instances=1, max_instances=3, target_concurrency=1)

    @endpoint
    def pid(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid()}

    @endpoint
    def work(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.3)
        return {"pid": os.getpid()}

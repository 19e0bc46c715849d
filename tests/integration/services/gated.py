"""A service whose initialize blocks until the file named by FLOWHOST_TEST_GATE exists."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flowhost.services import WebServiceSpec, endpoint


class Gated(WebServiceSpec):
    """Becomes ready only when the test opens the gate."""

    name = "gated"

    def initialize(self) -> None:
        gate = Path(os.environ["FLOWHOST_TEST_GATE"])
        deadline = time.monotonic() + 60
        while not gate.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gate file {gate} never appeared")
            time.sleep(0.02)
        self.token = gate.read_text().strip()

    @endpoint
    def ping(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {"token": self.token}

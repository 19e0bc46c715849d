"""Takes a while to start: ``initialize`` sleeps as many seconds as the file named by
``$FLOWHOST_E2E_START_DELAY_FILE`` says (0 when unset or missing), read at each start,
so a test can make one version quick and the next one slow."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flowhost.services import WebServiceSpec, endpoint

DELAY_FILE = "FLOWHOST_E2E_START_DELAY_FILE"


def start_delay() -> float:
    name = os.environ.get(DELAY_FILE)
    if not name or not Path(name).is_file():
        return 0.0
    return float(Path(name).read_text().strip() or 0)


class SlowStart(WebServiceSpec):
    """Answers with the pid of its instance and how long it slept before it was ready."""

    name = "slowstart"

    def initialize(self) -> None:
        self.slept = start_delay()
        time.sleep(self.slept)

    @endpoint
    def hello(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "slept": self.slept}

"""A service for asynchronous requests: quick, slow (leaves a trace of each run) and poison.

``slow`` appends the pid of every instance that runs it to ``$JOBS_TRACE_DIR/<tag>``, so a
test can find the instance running a job (and kill it) and count the runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from flowhost.services import Scaling, WebServiceSpec, endpoint


class Text(BaseModel):
    text: str = Field(min_length=1)


class Echo(BaseModel):
    text: str
    pid: int


class Nap(BaseModel):
    tag: str
    seconds: float = Field(ge=0, le=60)


class Napped(BaseModel):
    tag: str
    pid: int


class Jobs(WebServiceSpec):
    """Runs jobs of every kind."""

    name = "jobs"
    scaling = Scaling(min_instances=0, max_instances=2, idle_timeout="2s", target_concurrency=2)

    @endpoint
    def echo(self, request: Text) -> Echo:
        return Echo(text=request.text, pid=os.getpid())

    @endpoint(timeout=5)
    def slow(self, request: Nap) -> Napped:
        trace = Path(os.environ["JOBS_TRACE_DIR"]) / request.tag
        with trace.open("a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(request.seconds)
        return Napped(tag=request.tag, pid=os.getpid())

    @endpoint
    def poison(self, request: Text) -> Echo:
        raise ValueError(f"cannot digest {request.text!r}")

"""The service the async-request suite runs on a real worker: echo, fail, slow, big."""

from __future__ import annotations

import threading
import time
from collections import Counter

from pydantic import BaseModel, Field

from flowhost.services import WebServiceSpec, endpoint

__all__ = ["SERVICE", "AsyncProbe", "BigIn", "EchoIn", "EchoOut", "FailIn", "SlowIn", "runs"]

SERVICE = "async-probe"

_runs: Counter[str] = Counter()
_lock = threading.Lock()


def _count(key: str) -> None:
    with _lock:
        _runs[key] += 1


def runs(key: str) -> int:
    """How many times an endpoint ran for ``key`` (the echo text, the slow tag...)."""
    with _lock:
        return _runs[key]


class EchoIn(BaseModel):
    text: str
    count: int = Field(default=1, ge=1, le=10)


class EchoOut(BaseModel):
    text: str
    length: int


class FailIn(BaseModel):
    reason: str


class SlowIn(BaseModel):
    tag: str
    seconds: float = Field(ge=0, le=10)


class BigIn(BaseModel):
    size: int = Field(ge=1, le=8 * 1024 * 1024)


class BigOut(BaseModel):
    data: str


class AsyncProbe(WebServiceSpec):
    """Echoes, fails, sleeps and returns large results, for the async-request suite."""

    name = SERVICE

    @endpoint
    def echo(self, request: EchoIn) -> EchoOut:
        _count(request.text[:64])
        text = request.text * request.count
        return EchoOut(text=text, length=len(text))

    @endpoint
    def fail(self, request: FailIn) -> EchoOut:
        _count(request.reason)
        raise RuntimeError(f"failing on purpose: {request.reason}")

    @endpoint
    def slow(self, request: SlowIn) -> EchoOut:
        _count(request.tag)
        time.sleep(request.seconds)
        return EchoOut(text=request.tag, length=len(request.tag))

    @endpoint
    def big(self, request: BigIn) -> BigOut:
        return BigOut(data="y" * request.size)

"""A service with one endpoint per serving-runtime behaviour the integration tests drive."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pydantic import BaseModel, Field

from flowhost.services import WebServiceSpec, endpoint

SENTINEL = "sentinel-7f3a9c"  # the tests look for it in the log, and not in responses


class EchoIn(BaseModel):
    text: str
    count: int = Field(default=1, ge=1, le=10)


class EchoOut(BaseModel):
    text: str
    length: int


class LookupIn(BaseModel):
    name: str = Field(min_length=1)
    times: int = Field(default=1, ge=1, le=5)


class Toolbox(WebServiceSpec):
    """Echoes, fails, stalls and misbehaves on purpose."""

    name = "toolbox"

    def initialize(self) -> None:
        self.never = threading.Event()

    @endpoint(description="Repeat the text count times.")
    def echo(self, request: EchoIn) -> EchoOut:
        text = request.text * request.count
        return EchoOut(text=text, length=len(text))

    @endpoint(description="Upper-case the text, on the event loop.")
    async def shout(self, request: EchoIn) -> EchoOut:
        await asyncio.sleep(0)
        text = request.text.upper() * request.count
        return EchoOut(text=text, length=len(text))

    @endpoint(methods=["GET"], description="Read the request from the query string.")
    def lookup(self, request: LookupIn) -> dict[str, str]:
        return {"name": request.name, "repeated": request.name * request.times}

    @endpoint
    def explode(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"{SENTINEL}: the model exploded")

    @endpoint(timeout="200ms")
    def stall(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        self.never.wait(3.0)  # far past the timeout; returns eventually so shutdown is prompt
        return {"finished": True}

    @endpoint(timeout="200ms")
    async def stall_async(self, request_dict: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {"finished": True}

    @endpoint
    def wrong_shape(self, request_dict: dict[str, Any]) -> EchoOut:
        broken: Any = {"text": "no length"}  # off the declared return type: length is missing
        return broken

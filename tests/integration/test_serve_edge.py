"""An instance behind the edge (API Gateway's 30 s) sends a call to an endpoint that may
run longer to the control plane (307 to its hold path, the body repeated there), and
serves it itself when the caller is inside the VPC. The serving app with its service
prefix, in process, through its ASGI lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
from pydantic import BaseModel

from flowhost.services import WebServiceSpec, endpoint
from flowhost.services.edge import EDGE_HEADER
from flowhost.services.runtime.app import create_app
from flowhost.services.runtime.prefix import ServicePrefix
from flowhost.services.runtime.settings import RuntimeSettings


class In(BaseModel):
    n: int


class Slowpoke(WebServiceSpec):
    """Has a quick endpoint and one that may take minutes."""

    @endpoint(timeout="10m")
    def crunch(self, request: In) -> In:
        return request

    @endpoint
    def quick(self, request: In) -> In:
        return request


@asynccontextmanager
async def serving() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Slowpoke, RuntimeSettings(version="v3", access_log=False))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    prefixed = ServicePrefix(app, "slowpoke", app.local_segments())
    transport = httpx.ASGITransport(app=cast(Any, prefixed))
    async with httpx.AsyncClient(transport=transport, base_url="http://task:8080") as http:
        for _ in range(200):
            if (await http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        yield http
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan


def test_a_long_endpoint_called_through_the_edge_is_sent_to_the_hold_path() -> None:
    async def scenario() -> None:
        async with serving() as http:
            edge = {EDGE_HEADER: "1"}
            held = await http.post("/slowpoke/crunch", json={"n": 1}, headers=edge)
            assert held.status_code == 307
            assert held.headers["location"] == "/requests/hold/slowpoke/crunch"
            assert held.json()["error"]["code"] == "held_at_edge"
            pinned = await http.post("/slowpoke@v3/crunch", json={"n": 1}, headers=edge)
            assert pinned.headers["location"] == "/requests/hold/slowpoke@v3/crunch"
            # inside the VPC (no edge header), a quick endpoint, or a bare path: served here
            inside = await http.post("/slowpoke/crunch", json={"n": 2})
            assert (inside.status_code, inside.json()) == (200, {"n": 2})
            quick = await http.post("/slowpoke/quick", json={"n": 3}, headers=edge)
            assert (quick.status_code, quick.json()) == (200, {"n": 3})
            bare = await http.post("/crunch", json={"n": 4}, headers=edge)
            assert (bare.status_code, bare.json()) == (200, {"n": 4})

    asyncio.run(scenario())

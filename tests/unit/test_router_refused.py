"""A request the router could not even send (the instance's port refused the connection:
it died and is not replaced yet) goes to another instance, or to its replacement,
instead of failing 502: nothing reached the dead one, so nothing runs twice."""

from __future__ import annotations

import asyncio
import json
import socket
from types import SimpleNamespace
from typing import Any, cast

from flowhost.lambdas.local.pool import Instance
from tests.unit.test_router_errors import router_for

ANSWER = b'{"from": "the live instance"}'


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instance(port: int) -> Instance:
    return Instance(cast(Any, SimpleNamespace(port=port)), cast(Any, None))


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    await reader.readexactly(length)
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(ANSWER)}\r\n\r\n".encode() + ANSWER
    )  # fmt: skip
    await writer.drain()
    writer.close()


def test_a_refused_connection_is_sent_to_a_live_instance() -> None:
    router, pool, _ = router_for()
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        live_port = server.sockets[0].getsockname()[1]
        dead, live = instance(closed_port()), instance(live_port)
        pool.instances[:] = [dead, live]  # the dead one is picked first

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/echo/say", "headers": []}
        async with server:
            await router(scope, receive, send)
        assert (dead.in_flight, live.in_flight) == (0, 0)

    asyncio.run(main())
    start, body = sent
    assert start["status"] == 200, body
    assert json.loads(body["body"]) == {"from": "the live instance"}


def test_only_dead_instances_is_still_a_502_after_a_few_tries() -> None:
    router, pool, _ = router_for()
    router.cold_start_timeout = 0.5
    sent: list[dict[str, Any]] = []
    pool.instances[:] = [instance(closed_port()) for _ in range(5)]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo/say", "headers": []}
    asyncio.run(router(scope, receive, send))
    start, body = sent
    assert start["status"] == 502
    assert json.loads(body["body"])["error"]["code"] == "instance_unavailable"

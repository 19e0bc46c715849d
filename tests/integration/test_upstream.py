"""The router's keep-alive connections to an instance, against a real loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from flowhost.lambdas.local.upstream import UpstreamPool

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n"


class Server:
    """A tiny HTTP/1.1 server: counts connections, can close after each response or hang."""

    def __init__(self) -> None:
        self.connections = 0
        self.close_after = False
        self.hang = False
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                if self.hang:
                    await asyncio.sleep(3600)
                writer.write(RESPONSE + b'{"n": "%s"}' % body[:4].ljust(4)[:4])
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]


async def shutdown(pool: UpstreamPool, srv: Server) -> None:
    pool.close()
    assert srv.server is not None
    srv.server.close()
    await asyncio.sleep(0.05)  # let the transports finish closing before the loop ends


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_requests_reuse_one_connection() -> None:
    async def main() -> None:
        srv = Server()
        srv.server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        pool = UpstreamPool(srv.port)
        for i in range(5):
            response = await pool.request("POST", "/x", [], b"%04d" % i, 5)
            assert response.status == 200
            assert response.body == b'{"n": "%04d"}' % i
            assert (b"content-type", b"application/json") in response.headers
        assert srv.connections == 1
        await shutdown(pool, srv)

    run(main())


def test_a_connection_the_server_closed_is_replaced_transparently() -> None:
    async def main() -> None:
        srv = Server()
        srv.close_after = True  # like an instance whose keep-alive timeout expired
        srv.server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        pool = UpstreamPool(srv.port)
        for i in range(3):
            response = await pool.request("POST", "/x", [], b"%04d" % i, 5)
            assert response.status == 200
            await asyncio.sleep(0.05)  # let the close arrive
        assert srv.connections == 3
        await shutdown(pool, srv)

    run(main())


def test_a_hung_instance_times_out_and_the_connection_is_not_reused() -> None:
    async def main() -> None:
        srv = Server()
        srv.hang = True
        srv.server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        pool = UpstreamPool(srv.port)
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/x", [], b"0000", 0.2)
        srv.hang = False
        response = await pool.request("POST", "/x", [], b"0001", 5)
        assert response.status == 200
        assert srv.connections == 2
        await shutdown(pool, srv)

    run(main())


def test_a_refused_connection_raises_oserror() -> None:
    async def main() -> None:
        srv = Server()
        srv.server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = srv.port
        srv.server.close()
        await srv.server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await UpstreamPool(port).request("POST", "/x", [], b"0000", 1)

    run(main())

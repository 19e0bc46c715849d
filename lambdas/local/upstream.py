"""Keep-alive HTTP/1.1 connections from the router to one instance.

The router's hot path: a pool of idle connections per instance, requests written in
one piece, responses parsed with httptools (the parser uvicorn uses). No per-request
connection set-up, no client framework on the path.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

__all__ = ["UpstreamError", "UpstreamPool", "UpstreamResponse"]

Headers = list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """The instance closed the connection or broke the protocol before answering."""


class UpstreamResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.WriteTransport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.started = False  # any response bytes seen for the current request
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(UpstreamError(f"connection closed ({exc or 'by peer'})"))

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(UpstreamError(f"bad response: {exc}"))
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        response = UpstreamResponse(
            self.parser.get_status_code(), self.headers, b"".join(self.chunks)
        )
        keep = self.parser.should_keep_alive()
        self.headers, self.chunks = [], []
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if keep:
            self.pool.release(self)
        else:
            self.close()

    def send(self, payload: bytes) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self.started = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections to ``127.0.0.1:port``, reused LIFO."""

    def __init__(self, port: int, *, max_idle: int = 256) -> None:
        self.port = port
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._host = f"127.0.0.1:{port}".encode()

    def release(self, conn: _Connection) -> None:
        if not conn.closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def discard(self, conn: _Connection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), "127.0.0.1", self.port)
        return conn

    def _payload(self, method: str, target: str, headers: Headers, body: bytes) -> bytes:
        head = [f"{method} {target} HTTP/1.1\r\n".encode(), b"host: ", self._host, b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        return b"".join(head)

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes, deadline: float
    ) -> UpstreamResponse:
        """Send one request; a reused connection the instance had closed is retried once,
        on a new connection, if no byte of a response came back."""
        payload = self._payload(method, target, headers, body)
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        try:
            return await asyncio.wait_for(conn.send(payload), deadline)
        except UpstreamError:
            if not (reused and not conn.started):
                raise
        except TimeoutError:
            conn.close()
            raise
        conn = await self._connect()
        try:
            return await asyncio.wait_for(conn.send(payload), deadline)
        except TimeoutError:
            conn.close()
            raise

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def __repr__(self) -> str:
        return f"UpstreamPool(port={self.port}, idle={len(self._idle)})"

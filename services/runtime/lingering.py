"""Lingering close: an answer sent before the request body was read to its end arrives.

A server that answers early (a 413 for a body over the limit, a 404 for a path that
takes no body) and closes the connection while the client is still sending makes the
kernel reset it: the unread bytes turn the close into a TCP RST, and the client, still
writing, sees "connection reset by peer" instead of the answer. Python's ``urllib`` and
``requests`` read the response only after the whole body is sent, and ``urllib`` always
asks for ``Connection: close``, so it lost every early 413. Production proxies linger
(nginx's ``lingering_close``): after the answer, they read and discard the rest of the
body for a bounded time, then close.

:class:`LingeringClose` does that for any ASGI app. When an app finishes its response
while the request body is still unread, the middleware holds back the response's last
(empty) frame, reads and discards the body up to :data:`DRAIN_MAX_BYTES` or
:data:`DRAIN_MAX_SECONDS`, whichever comes first, then completes the response with
``Connection: close``. The answer's bytes are on the wire from the start, so clients that
read while sending (curl, httpx) see it at once; the others see it once they are done
sending. A body beyond the bounds is cut (the close then resets the connection): the time
and bytes spent on one over-limit request stay bounded.

Why the last frame is held back: uvicorn answers ``http.disconnect`` to every ``receive()``
after the response is complete, so an app cannot read the rest of the body afterwards;
while the response is still open, ``receive()`` returns the body as it arrives. Requests
that declare no body (no ``Content-Length`` above 0, no ``Transfer-Encoding``) pass straight
through. A client that sent ``Expect: 100-continue`` and was answered before the app read
anything sends no body: the connection is closed without waiting for one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["DRAIN_MAX_BYTES", "DRAIN_MAX_SECONDS", "LingeringClose", "has_body"]

# Bytes of an unread request body read and discarded after an early answer. Above the
# largest body any part of the platform accepts (the async API's 64 MiB), with room: a
# client sending twice the limit still gets its 413.
DRAIN_MAX_BYTES = 128 * 1024 * 1024
# Seconds spent draining, at most, whatever the client's pace (a slow sender is cut).
DRAIN_MAX_SECONDS = 5.0

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_CLOSE = (b"connection", b"close")


def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """The request declares a body: ``Content-Length`` above 0 or ``Transfer-Encoding``."""
    for key, value in headers:
        if key == b"content-length":
            if value.strip() not in (b"", b"0"):
                return True
        elif key == b"transfer-encoding":
            return True
    return False


class LingeringClose:
    """ASGI middleware: drain an unread request body (bounded) after an early answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DRAIN_MAX_BYTES,
        max_seconds: float = DRAIN_MAX_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not has_body(scope["headers"]):
            await self.app(scope, receive, send)
            return
        await _Exchange(self, scope, receive, send).run()


class _Exchange:
    """One request with a body: what was read of it, and the response around it."""

    def __init__(self, owner: LingeringClose, scope: Scope, receive: Receive, send: Send) -> None:
        self.owner = owner
        self.scope = scope
        self._receive = receive
        self._send = send
        self.read_any = False  # the app asked for the body (a 100 Continue went out)
        self.body_done = False  # the body was read to its end, or the client went away
        self.lingering = False  # the response started before the body was read

    async def run(self) -> None:
        await self.owner.app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        self.read_any = True
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message

    def _expects_continue(self) -> bool:
        return any(
            k == b"expect" and v.lower() == b"100-continue" for k, v in self.scope["headers"]
        )

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.body_done:
            self.lingering = True
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, _CLOSE]}
        elif kind == "http.response.body" and self.lingering and not message.get("more_body"):
            # The answer goes out now; the response completes after the drain.
            await self._send({**message, "more_body": True})
            if self.read_any or not self._expects_continue():
                await self._drain()
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await self._send(message)

    async def _drain(self) -> None:
        """Read and discard the rest of the body, within the bounds."""
        drained = 0
        try:
            async with asyncio.timeout(self.owner.max_seconds):
                while not self.body_done and drained <= self.owner.max_bytes:
                    message = await self.receive()
                    drained += len(message.get("body", b""))
        except TimeoutError:
            pass

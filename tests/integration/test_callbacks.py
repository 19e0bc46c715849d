"""Callback delivery to a real receiver on loopback: signed, retried, then given up."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httpx
import pytest

from flowhost.callbacks import SIGNATURE_HEADER, SignatureError, verify_signature
from flowhost.lambdas.callbacks import CallbackPolicy, deliver

SECRET = b"callback-secret"
BODY = b'{"id": "req_1", "status": "succeeded", "result": {"label": "positive"}}'


class Receiver:
    """An HTTP receiver on 127.0.0.1 that fails the first ``failures`` calls with 503."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.verified = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = dict(
            line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line
        )  # fmt: skip
        headers = {k.lower(): v for k, v in headers.items()}
        body = await reader.readexactly(int(headers["content-length"]))
        self.calls.append((headers, body))
        status = b"503 Service Unavailable" if len(self.calls) <= self.failures else b"200 OK"
        if status == b"200 OK":
            verify_signature(SECRET, headers.get(SIGNATURE_HEADER.lower()), body)
            self.verified += 1
        writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


async def run(receiver: Receiver, attempts: int) -> tuple[bool, list[float]]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:  # shortened timers: record, do not wait
        waits.append(seconds)

    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            ok = await deliver(
                client, f"http://127.0.0.1:{port}/hook", BODY, SECRET,
                policy=CallbackPolicy(attempts=attempts, backoff=1.0, max_backoff=8.0),
                sleep=no_wait,
            )  # fmt: skip
    finally:
        server.close()
        await server.wait_closed()
    return ok, waits


def test_delivered_after_retries_with_a_valid_signature() -> None:
    receiver = Receiver(failures=2)
    ok, waits = asyncio.run(run(receiver, attempts=5))
    assert ok
    assert len(receiver.calls) == 3
    assert receiver.verified == 1
    assert all(body == BODY for _, body in receiver.calls)
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0  # exponential, jittered


def test_gives_up_after_the_bound() -> None:
    receiver = Receiver(failures=100)
    ok, waits = asyncio.run(run(receiver, attempts=4))
    assert not ok
    assert len(receiver.calls) == 4
    assert len(waits) == 3
    assert max(waits) <= 8.0


def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    async def main() -> tuple[bool, int]:
        calls = 0

        async def no_wait(_: float) -> None:
            nonlocal calls
            calls += 1

        async with httpx.AsyncClient(trust_env=False) as client:
            ok = await deliver(
                client, "http://127.0.0.1:9/hook", BODY, SECRET,
                policy=CallbackPolicy(attempts=3), sleep=no_wait,
            )  # fmt: skip
        return ok, calls

    assert asyncio.run(main()) == (False, 2)


def test_the_receiver_rejects_a_tampered_body() -> None:
    headers: dict[str, Any] = {}

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        for line in head.split("\r\n")[1:]:
            name, sep, value = line.partition(": ")
            if sep:
                headers[name] = value
        await reader.readexactly(int(headers["content-length"]))
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(capture, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient(trust_env=False) as client:
            assert await deliver(client, f"http://127.0.0.1:{port}/", BODY, SECRET)
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    with pytest.raises(SignatureError, match="does not match the body"):
        verify_signature(SECRET, headers[SIGNATURE_HEADER.lower()], BODY + b"x")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_only_public_addresses_are_called_back_when_so_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loopback receiver is not posted to, neither by address nor by a name that
    resolves to one (DNS answers are checked at delivery); allowed, the call lands."""
    receiver = Receiver(failures=0)

    async def attempt(host: str, allow_private: bool) -> bool:
        server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                return await deliver(
                    client, f"http://{host}:{port}/hook", BODY, SECRET,
                    policy=CallbackPolicy(attempts=1, allow_private=allow_private),
                )  # fmt: skip
        finally:
            server.close()
            await server.wait_closed()

    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:  # a name inside the network
        return real("127.0.0.1" if host == "hooks.internal.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    logger, seen = logging.getLogger("flowhost.callbacks"), Records()
    logger.addHandler(seen)  # on the logger itself: flowhost's loggers may not propagate
    monkeypatch.setattr(logger, "level", logging.WARNING)
    try:
        assert asyncio.run(attempt("127.0.0.1", allow_private=False)) is False
        assert asyncio.run(attempt("hooks.internal.example", allow_private=False)) is False
    finally:
        logger.removeHandler(seen)
    assert receiver.calls == []
    refused = [r for r in seen.records if r.getMessage().startswith("callback refused")]
    assert [r.fields["address"] for r in refused] == ["127.0.0.1", "127.0.0.1"]  # type: ignore[attr-defined]
    assert asyncio.run(attempt("127.0.0.1", allow_private=True)) is True
    assert len(receiver.calls) == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_public_callback_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """DNS rebinding: the name is resolved and checked once, and the POST is pinned to
    that address (the name kept for Host and TLS), so a later answer pointing inside the
    network is never used."""
    answers = iter(["93.184.215.14", "127.0.0.1", "127.0.0.1"])  # public, then rebound
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.public.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def attempt() -> bool:
        async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
            return await deliver(
                client, f"{scheme}://hooks.public.example:8443/hook?x=1", BODY, SECRET,
                policy=CallbackPolicy(attempts=1, allow_private=False),
            )  # fmt: skip

    assert asyncio.run(attempt()) is True
    (request,) = seen
    assert str(request.url) == f"{scheme}://93.184.215.14:8443/hook?x=1"
    assert request.headers["host"] == "hooks.public.example:8443"
    sni = request.extensions.get("sni_hostname")
    assert sni == ("hooks.public.example" if scheme == "https" else None)
    verify_signature(SECRET, request.headers[SIGNATURE_HEADER], request.content)


def test_a_host_that_does_not_resolve_is_retried_never_posted_unchecked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failed lookup is a failed attempt (the POST would resolve the name again,
    unchecked); the next attempt resolves and checks afresh, here finding loopback."""
    calls = 0
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if host != "hooks.flaky.example":
            return real(host, port, *args, **kwargs)
        calls += 1
        if calls == 1:
            raise socket.gaierror("temporary failure")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    seen: list[httpx.Request] = []
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async def attempt() -> bool:
        transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
        async with httpx.AsyncClient(transport=transport) as client:
            return await deliver(
                client, "http://hooks.flaky.example/hook", BODY, SECRET,
                policy=CallbackPolicy(attempts=3, allow_private=False), sleep=no_wait,
            )  # fmt: skip

    assert asyncio.run(attempt()) is False
    assert seen == []  # never posted: neither unchecked nor to loopback
    assert calls == 2  # the failed lookup was retried, the second answer refused
    assert len(waits) == 1

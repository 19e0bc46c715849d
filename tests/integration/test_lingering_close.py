"""An over-limit body gets its 413 through every common client: the instance answers,
then reads and discards the rest of the body (bounded) before it closes
(``flowhost.services.runtime.lingering``).

Without the drain, a client that sends the whole body before reading (``urllib``, which
also asks for ``Connection: close``; ``requests``) sees "connection reset by peer".
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import httpx
import pytest
import requests

from flowhost.services.runtime.lingering import DRAIN_MAX_BYTES
from tests.integration.support import Server

LIMIT = 64 * 1024  # the toolbox fixture serves with --max-body-size 64Ki
BIG = 32 * 1024 * 1024  # far above the limit and above any socket buffer: must be drained


def too_large(status: int, body: bytes) -> dict[str, Any]:
    assert status == 413, body[:300]
    error: dict[str, Any] = json.loads(body)["error"]
    assert error["code"] == "payload_too_large", error
    assert f"limit of {LIMIT} bytes" in error["message"]
    return error


def test_urllib_gets_the_413_of_a_body_over_the_limit(toolbox: Server) -> None:
    request = urllib.request.Request(
        f"{toolbox.url}/echo", data=b"x" * BIG, headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)

    error = too_large(raised.value.code, raised.value.read())
    assert f"request body is {BIG} bytes" in error["message"]
    assert raised.value.headers["connection"] == "close"


def test_requests_and_httpx_get_the_413(toolbox: Server) -> None:
    body = b"x" * BIG

    by_requests = requests.post(f"{toolbox.url}/echo", data=body, timeout=30)
    by_httpx = httpx.post(f"{toolbox.url}/echo", content=body, timeout=30)

    too_large(by_requests.status_code, by_requests.content)
    too_large(by_httpx.status_code, by_httpx.content)


def _request_head(size: int) -> bytes:
    return (
        "POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {size}\r\nconnection: close\r\n\r\n"
    ).encode()


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_a_slow_sender_gets_the_413_after_sending_its_body(toolbox: Server) -> None:
    """Sends the whole body in small pieces with pauses, reading nothing until it is
    done, as urllib does; then the 413 and its JSON are there to read."""
    size, piece = 2 * 1024 * 1024, 64 * 1024
    with socket.create_connection(("127.0.0.1", toolbox.port), timeout=30) as sock:
        sock.sendall(_request_head(size))
        for _ in range(size // piece):
            sock.sendall(b"x" * piece)
            time.sleep(0.01)
        status, headers, body = _response(_read_all(sock))

    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    too_large(status, body)


def test_a_body_far_beyond_the_drain_bound_is_cut(toolbox: Server) -> None:
    """A client that keeps sending is cut once the drain bound is read: the connection
    ends (reset or closed) long before the declared body is sent, instead of being read
    for as long as the client likes."""
    declared = 8 * DRAIN_MAX_BYTES
    piece = b"x" * (1024 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", toolbox.port), timeout=30) as sock:
        sock.sendall(_request_head(declared))
        try:
            while sent < declared:
                sock.sendall(piece)
                sent += len(piece)
        except OSError:  # reset or broken pipe: the instance cut the connection
            pass

    assert DRAIN_MAX_BYTES <= sent < declared
    # the instance still serves
    answer = toolbox.client.post("/echo", json={"text": "ok", "count": 1})
    assert answer.status_code == 200, answer.text

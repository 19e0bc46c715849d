"""The ceiling: a raw ASGI callable that reads the body and answers a fixed JSON.

uv run --locked uvicorn --app-dir bench/apps asgi_app:app --loop uvloop --http httptools
"""

from typing import Any

BODY = b'{"label":"short","length":14}'  # what the others answer to the wrk body
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to start
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

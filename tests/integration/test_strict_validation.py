"""JSON bodies are validated the way the published JSON Schema states them (pydantic strict
mode): ``"0"`` and ``false`` are not numbers, ``1`` is not a boolean; integers are numbers,
``2.0`` is the integer 2, ISO strings are datetimes and UUIDs. Query strings of GET endpoints
are converted (they are strings on the wire). The same holds for an asynchronous job's payload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from enum import StrEnum
from typing import Any, cast
from uuid import UUID

import httpx
import pytest
from pydantic import BaseModel, Field

from flowhost.services import WebServiceSpec, endpoint
from flowhost.services.runtime.app import create_app
from flowhost.services.runtime.responses import HttpError
from flowhost.services.runtime.settings import RuntimeSettings


class Unit(StrEnum):
    METRIC = "metric"
    IMPERIAL = "imperial"


class Scored(BaseModel):
    weight: float
    count: int = Field(default=1, ge=1)
    exact: bool = False
    unit: Unit = Unit.METRIC
    at: datetime | None = None
    trace: UUID | None = None


class Lookup(BaseModel):
    key: str
    limit: int = 10
    exact: bool = False


class Typed(WebServiceSpec):
    @endpoint
    def score(self, request: Scored) -> dict[str, Any]:
        return request.model_dump(mode="json")

    @endpoint(methods=["GET"])
    def lookup(self, request: Lookup) -> dict[str, Any]:
        return request.model_dump(mode="json")


Scenario = Callable[[httpx.AsyncClient], Coroutine[Any, Any, None]]


def serve(scenario: Scenario) -> None:
    """Run ``scenario`` against the app in-process, once its instance is ready."""
    app = create_app(Typed, RuntimeSettings(access_log=False))

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
        )
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url="http://instance") as http:
            for _ in range(200):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            await scenario(http)
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan

    asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weight": "0"}, "weight"),
        ({"weight": False}, "weight"),
        ({"weight": 1, "count": "2"}, "count"),
        ({"weight": 1, "count": 2.5}, "count"),
        ({"weight": 1, "exact": 1}, "exact"),
        ({"weight": 1, "exact": "true"}, "exact"),
        ({"weight": 1, "unit": "kelvin"}, "unit"),
        ({"weight": 1, "at": 1700000000}, "at"),
    ],
)
def test_json_types_are_not_coerced(body: dict[str, Any], field: str) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.post("/score", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert [d["field"] for d in error["details"]] == [field]

    serve(scenario)


def test_what_json_cannot_spell_otherwise_is_still_accepted() -> None:
    body = {
        "weight": 2, "count": 3.0, "exact": True, "unit": "imperial",
        "at": "2026-12-07T10:00:00Z", "trace": "9f6ad1b4-3c4e-4b8e-a1c2-6c1f0d7e2a10",
    }  # fmt: skip

    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.post("/score", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "weight": 2.0, "count": 3, "exact": True, "unit": "imperial",
            "at": "2026-12-07T10:00:00Z", "trace": "9f6ad1b4-3c4e-4b8e-a1c2-6c1f0d7e2a10",
        }  # fmt: skip

    serve(scenario)


def test_query_strings_of_get_endpoints_are_converted() -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.get("/lookup", params={"key": "k", "limit": "5", "exact": "true"})
        assert response.status_code == 200, response.text
        assert response.json() == {"key": "k", "limit": 5, "exact": True}
        for limit in ("five", ""):  # an empty value is not left out: it is not an integer
            bad = await http.get("/lookup", params={"key": "k", "limit": limit})
            assert bad.status_code == 422
            assert bad.json()["error"]["details"][0]["field"] == "limit"

    serve(scenario)


def test_a_405_names_the_methods_in_allow() -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.put("/score", json={"weight": 1})
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.json()["error"]["code"] == "method_not_allowed"

    serve(scenario)


def test_an_async_payload_is_validated_as_strictly_as_a_body() -> None:
    app = create_app(Typed, RuntimeSettings(access_log=False))
    handler = app.handlers["/score"]
    assert handler.parse_payload(json.dumps({"weight": 1, "count": 2.0}).encode()).count == 2
    with pytest.raises(HttpError) as caught:
        handler.parse_payload(json.dumps({"weight": "1"}).encode())
    assert caught.value.code == "validation_error"

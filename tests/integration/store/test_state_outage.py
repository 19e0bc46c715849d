"""PostgreSQL stopped and started again under a live store and control-plane API.

While the server is down, every store call fails with ``StateUnavailableError`` (the
API answers 503 ``state_unavailable`` with ``Retry-After``, never 500); once it is back,
the same store (its pool of dead connections) answers again and nothing written before
the outage is lost. The session's server is stopped and started in place (same data
directory and port) and is always left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.errors import StateUnavailableError
from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.deploys import DeployStore
from flowhost.lambdas.store.requests import RequestStore
from tests.integration.store.conftest import HOST, PostgresServer
from tests.integration.store.support import deploy, promote


def _start_again(server: PostgresServer) -> None:
    """``pg_ctl start`` on the existing data directory, as ``PostgresServer.start`` does."""
    options = (
        f"-p {server.port} -k {server.root / 'sockets'} -c listen_addresses={HOST} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    server.run("pg_ctl", "-D", str(server.data), "-l", str(server.log_path), "-o", options,
               "-w", "-t", "60", "start")  # fmt: skip


@pytest.fixture
def outage(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server, started again after the test whatever happened."""
    yield postgres
    if not (postgres.data / "postmaster.pid").exists():
        _start_again(postgres)


@dataclass
class Route:
    """What the API's promote tells the fleet (nothing to start here)."""

    calls: list[tuple[str, str, int]]

    def route(self, service: str, alias: str, number: int) -> None:
        self.calls.append((service, alias, number))


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[StateStore]:
    state = StateStore.open(postgres_url)
    state.migrate()
    yield state
    state.close()


def test_store_calls_fail_as_state_unavailable_while_postgres_is_down(
    pg_store: StateStore, outage: PostgresServer
) -> None:
    number = deploy(pg_store)
    promote(pg_store, number)
    requests = RequestStore(pg_store.engine)
    deploys = DeployStore(pg_store.engine)
    assert pg_store.services() == ["echo"]  # the pool holds a connection from before

    outage.stop()
    calls: list[Any] = [
        pg_store.services,
        lambda: pg_store.resolve("echo"),
        lambda: deploy(pg_store),
        lambda: requests.get("req_missing"),
        deploys.unfinished,
    ]
    for call in calls:
        with pytest.raises(StateUnavailableError) as caught:
            call()
        assert caught.value.status == 503
        assert caught.value.code == "state_unavailable"
        assert caught.value.headers == {"Retry-After": "5"}
        assert "PostgreSQL state database flowhost_tests on 127.0.0.1" in caught.value.message
        assert "Retry after 5 s" in caught.value.message

    _start_again(outage)
    assert pg_store.services() == ["echo"]  # dead pooled connections replaced
    assert pg_store.resolve("echo").number == number
    assert deploy(pg_store) == number + 1
    assert [a.version for a in pg_store.aliases("echo")] == [number]


def test_the_api_answers_503_with_retry_after_while_postgres_is_down(
    pg_store: StateStore, outage: PostgresServer, tmp_path: Path
) -> None:
    number = deploy(pg_store)
    deploy(pg_store)
    fleet = Route([])
    deployments = Deployments(pg_store, LocalObjectStore(tmp_path / "objects"), fleet)  # type: ignore[arg-type]
    app = create_api(deployments)

    async def calls() -> None:
        transport = httpx.ASGITransport(app=app)  # an unhandled error (a 500) raises here
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            assert (await http.get("/api/services/echo")).status_code == 200

            outage.stop()
            down = [
                await http.get("/api/services"),
                await http.get(f"/api/services/echo/versions/{number}"),
                await http.post("/api/services/echo/aliases/production", json={"version": number}),
            ]
            for response in down:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
                assert response.json()["error"]["code"] == "state_unavailable"

            _start_again(outage)
            promoted = await http.post(
                "/api/services/echo/aliases/production", json={"version": number}
            )
            assert promoted.status_code == 200, promoted.text
            service = (await http.get("/api/services/echo")).json()
            assert service["aliases"] == {"production": number}

    asyncio.run(calls())
    assert fleet.calls == [("echo", "production", number)]

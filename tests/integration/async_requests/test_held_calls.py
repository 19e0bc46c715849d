"""Held synchronous calls (flowhost.services.edge), on the local ports and on AWS's (SQS +
S3 through moto), with a real worker: ``POST /requests/hold/...`` answers 303 to the wait
URL, whose hops each stay within the budget and end in the endpoint's own response;
replies too large for the edge's function are fetched from S3 through a presigned URL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any, cast

import httpx
import pytest

from flowhost.lambdas.async_requests import create_async_app
from flowhost.lambdas.async_requests.service import AsyncRequests
from flowhost.services.edge import MAX_EDGE_REPLY_BYTES, hold_path
from tests.integration.async_requests.service import SERVICE
from tests.integration.async_requests.support import Platform, ServiceFactory, WorkerFactory

pytestmark = pytest.mark.timeout(60)


def client(service: AsyncRequests, **kwargs: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=cast(Any, create_async_app(service)))
    return httpx.AsyncClient(transport=transport, base_url="http://edge.test", **kwargs)  # type: ignore[arg-type]


def test_a_held_call_is_redirected_to_its_wait_url_which_ends_in_the_answer(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    async def scenario() -> None:
        service = make_service()
        start_worker()
        text = f"held-{uuid.uuid4().hex[:8]}"
        async with client(service) as http:
            held = await http.post(hold_path(SERVICE, None, "echo"), json={"text": text})
            assert held.status_code == 303
            request_id = held.json()["id"]
            assert held.headers["location"] == f"/requests/{request_id}/wait"
            answer = await http.get(held.headers["location"])
        assert answer.status_code == 200
        assert answer.json() == {"text": text, "length": len(text)}

    asyncio.run(scenario())


def test_each_hop_stays_within_the_budget_and_a_redirect_follower_gets_the_answer(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    async def scenario() -> None:
        service = make_service()
        service.settings = dataclasses.replace(service.settings, wait_budget=0.3)
        start_worker()
        tag = f"slow-{uuid.uuid4().hex[:8]}"
        async with client(service) as http:
            held = await http.post(
                hold_path(SERVICE, None, "slow"), json={"tag": tag, "seconds": 1.5}
            )
            first = await http.get(held.headers["location"])
            assert first.status_code == 303  # still running: the hop ends inside its budget
            assert first.headers["location"] == held.headers["location"]
            assert first.json()["status"] in ("queued", "running")
        async with client(service, follow_redirects=True, max_redirects=60) as http:
            answer = await http.post(
                hold_path(SERVICE, None, "slow"), json={"tag": tag, "seconds": 1.5}
            )
        assert answer.status_code == 200
        assert answer.json() == {"text": tag, "length": len(tag)}
        assert len(answer.history) >= 3  # the 303 to wait, then at least one hop to itself

    asyncio.run(scenario())


def test_a_held_call_that_fails_answers_with_the_error_not_a_redirect(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    async def scenario() -> None:
        service = make_service()
        start_worker()
        async with client(service, follow_redirects=True, max_redirects=60) as http:
            invalid = await http.post(hold_path(SERVICE, None, "echo"), json={"text": 3})
            assert invalid.status_code == 422  # refused before anything is queued
            assert invalid.json()["error"]["code"] == "validation_error"
            failed = await http.post(hold_path(SERVICE, None, "fail"), json={"reason": "held"})
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "endpoint_error"

    asyncio.run(scenario())


def test_a_reply_too_large_for_the_edge_is_fetched_from_object_storage(
    platform: Platform, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    async def scenario() -> None:
        service = make_service()
        start_worker()
        size = MAX_EDGE_REPLY_BYTES + 1000
        async with client(service, follow_redirects=False) as http:
            held = await http.post(hold_path(SERVICE, None, "big"), json={"size": size})
            answer = await http.get(held.headers["location"])
            while answer.status_code == 303 and answer.headers["location"].startswith("/requests/"):
                answer = await http.get(answer.headers["location"])
        if platform.kind == "local":  # no presigned URLs: the platform serves it itself
            assert answer.status_code == 200
            body = answer.content
        else:
            assert answer.status_code == 303
            url = answer.headers["location"]
            assert "Signature=" in url or "X-Amz-Signature=" in url
            async with httpx.AsyncClient() as s3:  # the S3 object itself, presigned
                fetched = await s3.get(url, timeout=30)
            assert fetched.status_code == 200
            body = fetched.content
        assert json.loads(body) == {"data": "y" * size}

    asyncio.run(scenario())

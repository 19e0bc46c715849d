"""Lineage: every answer names the version and the pinned run that produced it.

A synchronous answer carries ``X-Flowhost-Version`` and ``X-Flowhost-Run``; an
asynchronous request's status names ``version`` and ``run`` (the run is null while it is
queued) and its result carries both headers. On the local ports and on AWS's (SQS + S3
through moto); with the records as ledger and with the ObjectLedger an ECS task writes,
which the control plane settles.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from flowhost.lambdas.async_requests import AsyncRequests, create_async_app
from flowhost.lambdas.async_requests.service import lineage_headers
from flowhost.lambdas.jobs import QueueJobs
from flowhost.lambdas.ledger import ObjectLedger, read_outcome, read_progress
from flowhost.services.runtime import instance as instance_module
from flowhost.services.runtime.app import ServingApp
from flowhost.services.spec import WebServiceSpec
from tests.integration.async_requests.service import SERVICE
from tests.integration.async_requests.support import (
    RESULT_TTL,
    RETRY_BACKOFF,
    VERSION,
    VISIBILITY,
    Platform,
    ServiceFactory,
    WorkerFactory,
)
from tests.integration.async_requests.test_async_requests import submit, unique, wait_status

pytestmark = pytest.mark.timeout(60)

RUN = "ProbeFlow/42"
LABEL = f"v{VERSION}"


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> str:
    """Instances started in this test serve the pinned run ``RUN`` (AsyncProbe itself
    declares no artifacts: only the run's id is made up)."""
    real = instance_module.construct

    def construct(cls: type[WebServiceSpec], definition: Any, pinned_run: str | None) -> Any:
        instance, _ = real(cls, definition, pinned_run)
        return instance, RUN

    monkeypatch.setattr(instance_module, "construct", construct)
    return RUN


def get(app: Any, method: str, path: str, body: Any = None) -> httpx.Response:
    """One request to an ASGI app, on an event loop of its own."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flowhost") as client:
            return await client.request(method, path, json=body)

    return asyncio.run(call())


def test_a_synchronous_answer_names_the_version_and_the_run(
    pinned: str, start_worker: WorkerFactory
) -> None:
    app: ServingApp = start_worker().app
    answer = get(app, "POST", "/echo", {"text": "hi"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-flowhost-version"] == LABEL
    assert answer.headers["x-flowhost-run"] == pinned
    refused = get(app, "POST", "/echo", {"count": 2})  # errors name them too
    assert refused.status_code == 422
    assert (refused.headers["x-flowhost-version"], refused.headers["x-flowhost-run"]) == (
        LABEL,
        pinned,
    )


def test_an_async_request_names_the_version_and_the_run_that_ran_it(
    pinned: str, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    api = create_async_app(service)
    queued, _ = submit(service, "echo", {"text": unique("lineage")})
    status = get(api, "GET", f"/requests/{queued.id}").json()
    assert (status["status"], status["version"], status["run"]) == ("queued", LABEL, None)

    start_worker()
    done = wait_status(service, queued.id, "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert (done.version, done.run) == (VERSION, pinned)
    status = get(api, "GET", f"/requests/{queued.id}").json()
    assert (status["version"], status["run"]) == (LABEL, pinned)
    result = get(api, "GET", f"/requests/{queued.id}/result")
    assert result.status_code == 200
    assert result.headers["x-flowhost-version"] == LABEL
    assert result.headers["x-flowhost-run"] == pinned
    # a held call's answer is the same response
    waited = get(api, "GET", f"/requests/{queued.id}/wait")
    assert waited.status_code == 200
    assert waited.headers["x-flowhost-run"] == pinned


def test_a_failed_request_names_its_run_and_unknown_lineage_is_left_out(
    pinned: str, make_service: ServiceFactory, start_worker: WorkerFactory
) -> None:
    service = make_service()
    start_worker()
    bad, _ = submit(service, "fail", {"reason": unique("broken")})
    failed = wait_status(service, bad.id, "failed", "succeeded", timeout=20)
    assert service.describe(failed)["run"] == pinned
    # a record with no delivery yet (or from before runs were recorded) has no run header
    unknown = failed.model_copy(update={"run": None})
    assert lineage_headers(unknown) == [(b"x-flowhost-version", LABEL.encode())]
    assert lineage_headers(unknown.model_copy(update={"version": None})) == []


def _ledger_jobs(platform: Platform) -> QueueJobs:
    return QueueJobs(
        platform.open_queue(), platform.objects, ObjectLedger(platform.objects, SERVICE),
        service=SERVICE, version=VERSION, result_ttl=RESULT_TTL,
        visibility=VISIBILITY, retry_backoff=RETRY_BACKOFF,
    )  # fmt: skip


def _settling(service: AsyncRequests) -> AsyncRequests:
    """The control plane as on AWS: outcomes settled from the ObjectLedger."""
    return AsyncRequests(
        service.requests, service.objects, service.queues, service.resolve,
        settings=replace(service.settings, settle_outcomes=True), secret=service.secret,
        public_url=service.public_url, versions=service.versions,
    )  # fmt: skip


def test_the_object_ledger_carries_the_run_to_the_control_plane(
    platform: Platform, make_service: ServiceFactory
) -> None:
    service = _settling(make_service())
    request, _ = submit(service, "echo", {"text": unique("ledger")})
    jobs = _ledger_jobs(platform)
    jobs.pin(RUN)
    claimed = jobs.receive(1, 1.0) or jobs.receive(1, 1.0)  # SQS may answer empty once
    assert [job.request_id for job in claimed] == [request.id]
    progress = read_progress(platform.objects, SERVICE, request.id)
    assert progress is not None
    assert (progress.version, progress.run) == (VERSION, RUN)
    running = service.get(request.id)  # shown while running, from the ledger's progress
    assert (running.status, running.run) == ("running", RUN)

    assert jobs.succeed(claimed[0], json.dumps({"text": "x", "length": 1}).encode())
    outcome = read_outcome(platform.objects, SERVICE, request.id)
    assert outcome is not None
    assert (outcome.version, outcome.run) == (VERSION, RUN)
    settled = service.get(request.id)
    assert (settled.status, settled.version, settled.run) == ("succeeded", VERSION, RUN)
    assert service.requests.get(request.id).run == RUN  # recorded, not only shown
    record, _ = service.answer(request.id)
    assert dict(lineage_headers(record)) == {
        b"x-flowhost-version": LABEL.encode(),
        b"x-flowhost-run": RUN.encode(),
    }

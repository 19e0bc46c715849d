"""Helpers of the async-request suite: an SQS QueueProvider, a worker host, a receiver."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine, func, select

from flowhost.callbacks import SIGNATURE_HEADER
from flowhost.lambdas.async_requests import AsyncRequests, QueueProvider, queue_name
from flowhost.lambdas.callbacks import CallbackPolicy
from flowhost.lambdas.jobs import QueueJobs
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.queue import Queue, SQSQueue
from flowhost.lambdas.store.models import AsyncRequestRow
from flowhost.lambdas.store.records import VersionRecord
from flowhost.lambdas.store.requests import RequestStore
from flowhost.services.runtime.app import ServingApp
from flowhost.services.spec import definition_of
from tests.integration.async_requests.service import SERVICE, AsyncProbe
from tests.integration.support import poll

__all__ = [
    "FAST_CALLBACKS",
    "MAX_RECEIVES",
    "RESULT_TTL",
    "RETRY_BACKOFF",
    "SECRET",
    "VERSION",
    "VISIBILITY",
    "Platform",
    "Receiver",
    "ReceiverFactory",
    "SQSQueues",
    "ServiceFactory",
    "WorkerFactory",
    "WorkerHost",
    "run_sweeper",
    "version_record",
]

VERSION = 1
MAX_RECEIVES = 2  # deliveries before the dead-letter queue (SQS: the redrive maxReceiveCount)
VISIBILITY = 1.0  # seconds a delivery stays hidden between heartbeats
RETRY_BACKOFF = 0.1  # seconds before a failed delivery is retried (SQS rounds up to 1 s)
RESULT_TTL = 60.0
SECRET = b"async-suite-callback-secret"
FAST_CALLBACKS = CallbackPolicy(attempts=4, backoff=0.05, max_backoff=0.2, timeout=5.0)


@dataclass
class Platform:
    """One backend's ports, and a way to look at what they hold."""

    kind: str  # "local" or "aws"
    engine: Engine
    requests: RequestStore
    objects: ObjectStore
    queues: QueueProvider
    list_keys: Callable[[str], list[str]]
    open_queue_handle: Callable[[], Queue]
    opened: list[Queue] = field(default_factory=lambda: [])

    def queue(self) -> Queue:
        """The version's queue, as the control plane sees it."""
        return self.queues.queue(SERVICE, VERSION)

    def open_queue(self) -> Queue:
        """A handle of the version's queue of its own, as an instance opens it."""
        queue = self.open_queue_handle()
        self.opened.append(queue)
        return queue

    def keys(self, prefix: str = "async/") -> list[str]:
        """Object keys under ``prefix``, sorted."""
        return sorted(self.list_keys(prefix))

    def record_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(AsyncRequestRow)).scalar_one())

    def jobs(self, *, result_ttl: float = RESULT_TTL) -> QueueJobs:
        """The instance's JobSource on the version's queue (as a worker builds it)."""
        return QueueJobs(
            self.open_queue(), self.objects, self.requests,
            service=SERVICE, version=VERSION, result_ttl=result_ttl,
            visibility=VISIBILITY, retry_backoff=RETRY_BACKOFF,
        )  # fmt: skip


def version_record() -> VersionRecord:
    return VersionRecord(
        service=SERVICE, number=VERSION, code_digest="sha256-" + "0" * 64, artifact_run=None,
        environment_digest="sha256-" + "1" * 64, definition=definition_of(AsyncProbe),
        status="ready", error=None, created_by="tests", created_at=datetime.now(UTC),
    )  # fmt: skip


ServiceFactory = Callable[..., AsyncRequests]
"""``make_service(result_ttl=..., callback=...)``"""


class SQSQueues:
    """The QueueProvider on SQS: ``<prefix>-<service>-v<N>`` and its ``-dlq``, created on
    first use with the redrive policy's ``maxReceiveCount``. The prefix keeps the tests'
    queues apart on the session's moto server."""

    def __init__(self, client: Any, *, prefix: str, max_receive_count: int) -> None:
        self.client = client
        self.prefix = prefix
        self.max_receive_count = max_receive_count
        self._queues: dict[str, SQSQueue] = {}
        self._lock = threading.Lock()

    def queue(self, service: str, number: int) -> SQSQueue:
        name = f"{self.prefix}-{queue_name(service, number)}"
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = SQSQueue.create(
                    self.client, name, max_receive_count=self.max_receive_count
                )
            return queue

    def close(self) -> None:
        with self._lock:
            self._queues.clear()  # the boto3 client belongs to the caller


class WorkerHost:
    """Runs a ServingApp's ASGI lifespan on an event loop of its own thread: ``start``
    initializes the instance (its worker starts taking jobs once ready), ``stop`` shuts
    it down (the worker hands back what it runs)."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan: asyncio.Task[None] | None = None

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    async def _startup(self) -> dict[str, Any]:
        self._inbox, self._outbox = asyncio.Queue(), asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._lifespan = asyncio.create_task(self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        return await self._outbox.get()

    async def _shutdown(self) -> dict[str, Any]:
        assert self._inbox is not None
        assert self._outbox is not None
        assert self._lifespan is not None
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._outbox.get()
        await self._lifespan
        return answer

    def start(self, timeout: float = 10.0) -> None:
        assert self._loop is None, "already started"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="async-worker-host", daemon=True
        )
        self._thread.start()
        answer = self._call(self._startup(), timeout)
        assert answer == {"type": "lifespan.startup.complete"}, answer

        def ready() -> bool | None:
            assert self.app.state.status != "failed", self.app.state.error
            return True if self.app.state.ready else None

        poll("the instance to be ready", ready, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            answer = self._call(self._shutdown(), timeout)
            assert answer == {"type": "lifespan.shutdown.complete"}, answer
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self._loop = self._thread = None


class Receiver:
    """A callback receiver on 127.0.0.1 that answers 500 to its first ``failures`` POSTs,
    then 200. ``calls`` holds each POST's signature header and body."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str | None, bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.calls.append((self.headers.get(SIGNATURE_HEADER), body))
                    failing = len(receiver.calls) <= receiver.failures
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="callback-receiver", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/flowhost"

    def received(self) -> list[tuple[str | None, bytes]]:
        with self._lock:
            return list(self.calls)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def run_sweeper(service: AsyncRequests, until: Callable[[], bool], timeout: float) -> bool:
    """Run ``service.run()`` as a task until ``until()`` (called off the loop) holds or
    ``timeout`` passes; then cancel it and close the service. True if ``until`` held."""

    async def main() -> bool:
        task = asyncio.create_task(service.run())
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if await asyncio.to_thread(until):
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await service.close()

    return asyncio.run(main())


WorkerFactory = Callable[..., WorkerHost]
"""``start_worker(result_ttl=...)``"""
ReceiverFactory = Callable[[int], Receiver]
"""``receiver(failures)``"""

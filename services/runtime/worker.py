"""The asynchronous worker of one instance, alongside its HTTP server.

It takes jobs from a :class:`~flowhost.services.runtime.jobs.JobSource` once the
instance is ready, at most ``concurrency`` at a time, and runs each through the same
endpoint handler as a synchronous call (validation, response type, thread pool), with
the job's own timeout (up to 12 hours) instead of the endpoint's. The source records
the version and the pinned run of the instance with every delivery (lineage: the status
and the result of a request name both). While a job runs it
heartbeats, so the queue keeps it hidden from other instances. On shutdown it stops
taking jobs and hands back the ones still running.

Outcomes: a result is stored once; a request that does not match the schema or runs out
of time fails at once (running it again would not help); any other exception is retried
by the source until its last delivery. An exception's text never reaches callers: they
see ``endpoint_error`` and the same safe message as a synchronous call; its type, message
and traceback go to this instance's log and to the source as the failure's detail
(``runtime.failures``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flowhost.errors import FlowhostError
from flowhost.services.runtime.dispatch import EndpointHandler
from flowhost.services.runtime.failures import (
    ENDPOINT_ERROR,
    endpoint_error_message,
    failure_detail,
)
from flowhost.services.runtime.jobs import Job, JobSource
from flowhost.services.runtime.logs import AccessLog
from flowhost.services.runtime.responses import HttpError

if TYPE_CHECKING:
    from flowhost.services.runtime.tracing import Tracing

__all__ = ["AsyncWorker"]

log = logging.getLogger("flowhost.worker")

RECEIVE_WAIT = 1.0  # seconds one receive waits for work; bounds how long stop() takes


class AsyncWorker:
    def __init__(
        self,
        source: Callable[[], JobSource],
        handlers: Mapping[str, EndpointHandler],
        *,
        concurrency: int,
        access: AccessLog,
        version: str,
        on_running: Callable[[int], None] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._make_source = source
        self.tracing = tracing
        self.on_running = on_running  # hears how many jobs run, whenever that changes
        self.handlers = handlers
        self.concurrency = concurrency
        self.access = access
        self.version = version
        self.source: JobSource | None = None
        # Source calls block (SQLite, HTTP to the queue); they get threads of their own, so
        # a busy endpoint pool never delays a heartbeat.
        self._io = ThreadPoolExecutor(
            max_workers=concurrency + 2, thread_name_prefix="flowhost-jobs"
        )
        self._running: dict[asyncio.Task[None], Job] = {}
        self._slot = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = False

    async def _io_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, lambda: fn(*args, **kwargs))

    def start(self) -> None:
        """Start taking jobs (call once the instance is ready, on its event loop)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="flowhost-worker")

    async def _run(self) -> None:
        try:
            self.source = await self._io_call(self._make_source)
        except Exception:
            log.exception("the async worker could not connect to its queue; no async jobs here")
            return
        source = self.source
        assert source is not None
        source.pin(self._run_id())
        while not (self._stopping or self._paused):
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot.clear()
                await self._slot.wait()
                continue
            try:
                jobs: list[Job] = await self._io_call(source.receive, free, RECEIVE_WAIT)
            except Exception:
                log.exception("receiving async jobs failed; retrying")
                await asyncio.sleep(RECEIVE_WAIT)
                continue
            for job in jobs:
                if self._stopping or self._paused:
                    await self._io_call(source.release, job)
                    continue
                task = asyncio.create_task(self._execute(source, job), name=f"job-{job.request_id}")
                self._running[task] = job
                task.add_done_callback(self._done)
                self._report()

    def _run_id(self) -> str | None:
        """The instance's pinned run (known once it is ready, when the worker starts)."""
        handler = next(iter(self.handlers.values()), None)
        return handler.state.run if handler is not None else None

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._slot.set()
        self._report()

    def _report(self) -> None:
        if self.on_running is not None:
            try:
                self.on_running(len(self._running))
            except Exception:  # the platform is going away; the jobs themselves are fine
                log.warning("could not report running jobs", exc_info=True)

    @property
    def running(self) -> int:
        return len(self._running)

    async def _heartbeat(self, source: JobSource, job: Job) -> None:
        while True:
            await asyncio.sleep(source.heartbeat_interval)
            try:
                if not await self._io_call(source.heartbeat, job):
                    log.warning(
                        "async job lost its claim; another delivery will finish it",
                        extra={"fields": {"request_id": job.request_id}},
                    )
                    return
            except Exception:
                log.exception("heartbeat failed", extra={"fields": {"request_id": job.request_id}})

    async def _execute(self, source: JobSource, job: Job) -> None:
        started = time.perf_counter()
        outcome, code = "succeeded", None
        heartbeat = asyncio.create_task(self._heartbeat(source, job))
        tracing = self.tracing
        span = token = None
        if tracing is not None:
            span = tracing.start_job(
                f"job /{job.endpoint}",
                job.traceparent,
                {
                    "flowhost.request_id": job.request_id,
                    "flowhost.async": True,
                    "flowhost.endpoint": job.endpoint,
                    "flowhost.attempt": job.attempt,
                },
            )
            token = tracing.attach(span)
        try:
            handler = self.handlers.get(f"/{job.endpoint}")
            if handler is None:
                raise HttpError(404, "not_found", f"this version has no endpoint {job.endpoint!r}.")
            request = handler.parse_payload(job.payload)
            result = await handler.invoke(request, job.timeout)
            body = handler.render(result, job.request_id)
        except asyncio.CancelledError:
            outcome = "released"
            with contextlib.suppress(Exception):
                await asyncio.shield(self._io_call(source.release, job))
            raise
        except (HttpError, FlowhostError) as exc:
            # Bad payloads and timeouts fail for good; an invalid response may be a bug
            # that a retry does not fix either.
            outcome, code = "failed", exc.code
            retry = exc.status >= 500 and exc.code not in ("timeout", "invalid_response")
            await self._io_call(source.fail, job, exc.code, exc.message, retry=retry)
        except Exception as exc:
            detail = failure_detail(exc)
            log.exception(
                "async job raised",
                extra={
                    "fields": {
                        "request_id": job.request_id, "endpoint": job.endpoint,
                        "attempt": job.attempt, "error_type": detail["type"],
                    }
                },
            )  # fmt: skip
            outcome, code = "failed", ENDPOINT_ERROR
            message = endpoint_error_message(job.endpoint, exc, job.request_id)
            await self._io_call(source.fail, job, code, message, retry=True, detail=detail)
        else:
            if not await self._io_call(source.succeed, job, body):
                outcome = "duplicate"
        finally:
            heartbeat.cancel()
            self._log(job, outcome, code, time.perf_counter() - started)
            if tracing is not None and span is not None:
                tracing.detach(token)
                tracing.end_job(span, outcome, code)

    def _log(self, job: Job, outcome: str, code: str | None, seconds: float) -> None:
        if self.access.enabled:
            self.access.write(
                {
                    "request_id": job.request_id,
                    "async": True,
                    "endpoint": job.endpoint,
                    "attempt": job.attempt,
                    "outcome": outcome,
                    "error_code": code,
                    "duration_ms": round(seconds * 1000, 3),
                    "version": self.version,
                    "run": self._run_id(),
                }
            )

    def pause(self) -> None:
        """Take no more jobs; the running ones finish (the instance is being drained).
        Safe to call from a signal handler."""
        self._paused = True
        self._slot.set()

    async def stop(self) -> None:
        """Stop taking jobs; hand back the ones running (another instance reruns them)."""
        self._stopping = True
        self._slot.set()
        if self._loop_task is not None:
            # Let a receive in progress come back, so what it claimed is handed back too.
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), RECEIVE_WAIT + 5)
            except TimeoutError:
                self._loop_task.cancel()
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.source is not None:
            with contextlib.suppress(Exception):
                await self._io_call(self.source.close)
        self._io.shutdown(wait=False, cancel_futures=True)

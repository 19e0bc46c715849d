"""``QueueJobs``: the instance's JobSource over the platform's ports.

A queue message carries a pointer (request id, endpoint, payload key, timeout); the
payload and the result live in the ObjectStore; the outcome is recorded once through an
``OutcomeLedger``: the request records themselves (``RequestStore``, where the instance
may reach the database: the local platform), or objects beside the payload
(``flowhost.lambdas.ledger.ObjectLedger``, for ECS tasks that may touch only their own
S3 prefix; the control plane settles them into the records). Works on any Queue (the
local SQLite queue or SQS) and any ObjectStore (a directory or S3).

The life of one delivery: ``receive`` claims the message and marks the record running,
with the version and the pinned run that run it (``pin``: the instance names its run once
it is ready; a request that already finished is acknowledged and skipped); ``heartbeat`` extends
the message's visibility; ``succeed`` stores the result under a key of this delivery's
own, records it (the first outcome wins; a later one deletes its object again) and
deletes the message; ``fail`` either puts the message back after a backoff (the record
goes back to queued with its error kept) or, on the last delivery or a failure that a
retry cannot fix, records ``failed``. A message failed on its last delivery is handed
back at once and goes to the dead-letter queue at the next receive.

A failure's error (``{"code", "message"}``) is what callers see; an exception's type,
message and traceback (the worker's ``detail``) are written apart, to ``detail.json``
beside the payload (the last failed delivery's), which only the control plane's
``/api/requests/{id}/detail`` reads (:func:`read_detail`), never the invoker's routes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from flowhost.errors import NotFoundError
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.queue import Message, Queue, QueueError, StaleReceipt
from flowhost.services.runtime.jobs import Job

__all__ = [
    "DEFAULT_JOB_TIMEOUT",
    "OutcomeLedger",
    "QueueJobs",
    "Started",
    "detail_key",
    "error_text",
    "job_message",
    "outcome_key",
    "payload_key",
    "progress_key",
    "read_detail",
    "result_key",
]

log = logging.getLogger("flowhost.jobs")

# A run's time limit when neither the ledger nor the message names one (messages queued
# before they carried ``timeout_seconds``): the API's default, AsyncSettings.default_timeout.
DEFAULT_JOB_TIMEOUT = 3600.0


def payload_key(service: str, request_id: str) -> str:
    return f"async/{service}/{request_id}/payload.json"


def result_key(service: str, request_id: str, delivery: str) -> str:
    return f"async/{service}/{request_id}/result-{delivery}.json"


def outcome_key(service: str, request_id: str) -> str:
    """The request's outcome as an ObjectLedger records it: written once."""
    return f"async/{service}/{request_id}/outcome.json"


def progress_key(service: str, request_id: str) -> str:
    """Where an ObjectLedger keeps attempts and the last error until the outcome."""
    return f"async/{service}/{request_id}/progress.json"


def detail_key(service: str, request_id: str) -> str:
    """The last failed delivery's exception (type, message, traceback): deployers only."""
    return f"async/{service}/{request_id}/detail.json"


def read_detail(objects: ObjectStore, service: str, request_id: str) -> dict[str, Any] | None:
    """What :meth:`QueueJobs.fail` kept of the request's last exception, if any."""
    try:
        detail = json.loads(objects.get(detail_key(service, request_id)))
    except NotFoundError:
        return None
    except ValueError:
        log.error("ignoring an unreadable failure detail", extra={"fields": {"id": request_id}})
        return None
    return detail if isinstance(detail, dict) else None  # pyright: ignore[reportUnknownVariableType]


def job_message(
    request_id: str,
    endpoint: str,
    key: str,
    *,
    timeout_seconds: float | None = None,
    traceparent: str | None = None,
) -> str:
    """The queue message of one request: a pointer, never the payload itself, the run's
    time limit for workers that cannot read the request record, and the submitter's
    trace context (the job's span continues that trace)."""
    pointer: dict[str, Any] = {"request_id": request_id, "endpoint": endpoint, "payload_key": key}
    if timeout_seconds is not None:
        pointer["timeout_seconds"] = timeout_seconds
    if traceparent is not None:
        pointer["traceparent"] = traceparent
    return json.dumps(pointer)


def error_text(code: str, message: str) -> str:
    """How a request's error is kept: ``{"code", "message"}`` as JSON."""
    return json.dumps({"code": code, "message": message})


class Started(Protocol):
    """What a ledger knows of a delivery it marked running."""

    @property
    def timeout_seconds(self) -> float | None:
        """The run's time limit, if the ledger keeps it (else the message's is used)."""
        ...


class OutcomeLedger(Protocol):
    """Where QueueJobs records a request's progress and its outcome: ``RequestStore``
    or ``flowhost.lambdas.ledger.ObjectLedger``. The first outcome wins."""

    def start(self, request_id: str, version: int, run: str | None = None) -> Started | None:
        """Mark a delivery running (one more attempt) by ``version`` serving the pinned
        ``run``; None if the request finished."""
        ...

    def finish(
        self,
        request_id: str,
        status: Literal["succeeded", "failed"],
        *,
        ttl: timedelta,
        result_key: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome once: False if another delivery already finished it."""
        ...

    def retry(self, request_id: str, error: str | None) -> bool:
        """Back to queued with the error (None keeps the last); False if finished."""
        ...


@dataclass(frozen=True)
class _Claim:
    message: Message


class QueueJobs:
    """The jobs of one version, from its queue."""

    def __init__(
        self,
        queue: Queue,
        objects: ObjectStore,
        requests: OutcomeLedger,
        *,
        service: str,
        version: int,
        result_ttl: float,
        visibility: float = 60.0,
        retry_backoff: float = 5.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.queue = queue
        self.objects = objects
        self.requests = requests
        self.service = service
        self.version = version
        self.run: str | None = None  # the instance's pinned run, once it names it (``pin``)
        self.ttl = timedelta(seconds=result_ttl)
        self.visibility = visibility
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff

    @property
    def heartbeat_interval(self) -> float:
        return self.visibility / 3

    def pin(self, run: str | None) -> None:
        self.run = run

    def _ack(self, message: Message) -> None:
        # StaleReceipt: another delivery owns it now; it will find the request finished.
        with contextlib.suppress(StaleReceipt):
            self.queue.delete(message.receipt)

    def _hand_back(self, message: Message, after: float) -> None:
        # QueueError: no longer ours (visible again already, or dead-lettered).
        with contextlib.suppress(QueueError):
            self.queue.extend(message.receipt, after)

    def receive(self, max_jobs: int, wait: float) -> list[Job]:
        messages = self.queue.receive(
            min(max_jobs, 10), visibility_timeout=self.visibility, wait=wait
        )
        jobs: list[Job] = []
        for message in messages:
            job = self._claim(message)
            if job is not None:
                jobs.append(job)
        return jobs

    def _claim(self, message: Message) -> Job | None:
        try:
            pointer: dict[str, Any] = json.loads(message.body)
            request_id, endpoint = str(pointer["request_id"]), str(pointer["endpoint"])
            key = str(pointer["payload_key"])
            timeout = float(pointer.get("timeout_seconds", DEFAULT_JOB_TIMEOUT))
            traceparent = pointer.get("traceparent")
        except (ValueError, KeyError, TypeError):
            log.error("dropping a malformed queue message", extra={"fields": {"id": message.id}})
            self._ack(message)
            return None
        record = self.requests.start(request_id, self.version, self.run)
        if record is None:  # finished by an earlier delivery (or expired): nothing to run
            self._ack(message)
            return None
        if record.timeout_seconds is not None:  # the record's, where the ledger keeps it
            timeout = record.timeout_seconds
        final = message.receive_count >= self.queue.max_receive_count
        job = Job(
            request_id, endpoint, b"", timeout, message.receive_count, final, _Claim(message),
            traceparent if isinstance(traceparent, str) else None,
        )  # fmt: skip
        try:
            return replace(job, payload=self.objects.get(key))
        except NotFoundError:
            self.fail(job, "payload_missing", f"the payload {key!r} is gone.", retry=False)
            return None

    @staticmethod
    def _message(job: Job) -> Message:
        assert isinstance(job.handle, _Claim)
        return job.handle.message

    def heartbeat(self, job: Job) -> bool:
        try:
            self.queue.extend(self._message(job).receipt, self.visibility)
        except QueueError:  # stale (lost to another delivery) or past the 12-hour ceiling
            return False
        return True

    def succeed(self, job: Job, result: bytes) -> bool:
        message = self._message(job)
        key = result_key(self.service, job.request_id, f"{message.id}-{message.receive_count}")
        self.objects.put(key, result)
        won = self.requests.finish(job.request_id, "succeeded", ttl=self.ttl, result_key=key)
        if not won:
            self.objects.delete(key)  # another delivery's result is the one kept
        self._ack(message)
        return won

    def _keep_detail(self, job: Job, code: str, detail: Mapping[str, str]) -> None:
        body = {
            **detail, "request_id": job.request_id, "endpoint": job.endpoint, "code": code,
            "attempt": job.attempt, "version": self.version, "run": self.run,
            "at": datetime.now(UTC).isoformat(),
        }  # fmt: skip
        try:
            self.objects.put(detail_key(self.service, job.request_id), json.dumps(body).encode())
        except Exception:  # the outcome matters more; the instance log has the traceback
            log.exception(
                "could not keep a failure's detail", extra={"fields": {"id": job.request_id}}
            )

    def fail(
        self,
        job: Job,
        code: str,
        error: str,
        *,
        retry: bool,
        detail: Mapping[str, str] | None = None,
    ) -> None:
        message = self._message(job)
        if detail is not None:
            self._keep_detail(job, code, detail)
        text = error_text(code, error)
        if retry and not job.final:
            self.requests.retry(job.request_id, text)
            backoff = min(self.max_backoff, self.retry_backoff * 2 ** (job.attempt - 1))
            self._hand_back(message, backoff)
            return
        self.requests.finish(job.request_id, "failed", ttl=self.ttl, error=text)
        if retry:  # its deliveries ran out: the queue moves it to the dead-letter queue
            self._hand_back(message, 0)
        else:
            self._ack(message)

    def release(self, job: Job) -> None:
        self.requests.retry(job.request_id, None)
        self._hand_back(self._message(job), 0)

    def close(self) -> None:
        self.queue.close()

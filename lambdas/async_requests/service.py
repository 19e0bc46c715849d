"""``AsyncRequests``: submit, report, expire, dead-letter and call back.

Port-only code (RequestStore, ObjectStore, a QueueProvider), so the same class serves
the local platform and the control-plane Lambda. Blocking calls are the caller's to run
off the event loop; ``run`` (the sweeper) does so itself. With
``AsyncSettings.settle_outcomes`` (AWS), outcomes that workers recorded as objects are
settled into the records on reads and sweeps (``settling.Settler``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import httpx

from flowhost.errors import FlowhostError, NotFoundError
from flowhost.lambdas.async_requests.queues import QueueProvider
from flowhost.lambdas.async_requests.settings import AsyncSettings
from flowhost.lambdas.async_requests.settling import Settler
from flowhost.lambdas.async_requests.validation import PayloadValidator, SubmitOptions
from flowhost.lambdas.callbacks import deliver
from flowhost.lambdas.jobs import detail_key, error_text, job_message, payload_key
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store.models import utcnow
from flowhost.lambdas.store.records import VersionRecord
from flowhost.lambdas.store.requests import AsyncRequest, RequestStore, new_request_id

__all__ = [
    "AsyncRequests",
    "RequestExpired",
    "RequestFailed",
    "RequestNotReady",
    "lineage_headers",
]

log = logging.getLogger("flowhost.async")

Resolver = Callable[[str, str | None], VersionRecord]


class RequestNotFound(NotFoundError):
    code = "request_not_found"


class RequestNotReady(FlowhostError):
    code = "result_not_ready"
    status = 409


class RequestFailed(FlowhostError):
    code = "request_failed"
    status = 409


class RequestExpired(FlowhostError):
    code = "request_expired"
    status = 410


def _error(record: AsyncRequest) -> dict[str, Any] | None:
    if record.error is None:
        return None
    try:
        error = json.loads(record.error)
    except ValueError:
        return {"code": "error", "message": record.error}
    return error if isinstance(error, dict) else {"code": "error", "message": record.error}  # pyright: ignore[reportUnknownVariableType]


def _label(record: AsyncRequest) -> str | None:
    return f"v{record.version}" if record.version is not None else None


def lineage_headers(record: AsyncRequest) -> list[tuple[bytes, bytes]]:
    """``X-Flowhost-Version`` and ``X-Flowhost-Run`` of the delivery that ran the request,
    as a synchronous answer of that instance carries them (each left out when unknown)."""
    headers: list[tuple[bytes, bytes]] = []
    label = _label(record)
    if label is not None:
        headers.append((b"x-flowhost-version", label.encode()))
    if record.run is not None:
        headers.append((b"x-flowhost-run", record.run.encode()))
    return headers


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class AsyncRequests:
    def __init__(
        self,
        requests: RequestStore,
        objects: ObjectStore,
        queues: QueueProvider,
        resolve: Resolver,
        *,
        settings: AsyncSettings,
        secret: bytes,
        public_url: str,
        versions: Callable[[], Iterable[tuple[str, int]]] = lambda: (),
        on_submit: Callable[[str, int], None] | None = None,
    ) -> None:
        self.requests = requests
        self.objects = objects
        self.queues = queues
        self.resolve = resolve
        self.settings = settings
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.versions = versions
        self.on_submit = on_submit
        self.validator = PayloadValidator()
        self.settler = Settler(requests, objects) if settings.settle_outcomes else None
        self._delivering: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # -- submit and report ------------------------------------------------------------

    def target(self, service: str, ref: str | None, endpoint: str) -> VersionRecord:
        """The version ``service@ref`` reaches now, if it has ``endpoint``."""
        version = self.resolve(service, ref)
        version.definition.endpoint(endpoint)  # NotFoundError lists the endpoints
        return version

    def submit(
        self,
        version: VersionRecord,
        target: str,
        endpoint: str,
        body: bytes,
        options: SubmitOptions,
    ) -> tuple[AsyncRequest, bool]:
        """Validate, store the payload, record and queue; ``(request, created)``. With an
        idempotency key seen before, the first request (nothing new is queued)."""
        definition = version.definition.endpoint(endpoint)
        payload = self.validator.validate(definition, body)
        if options.idempotency_key is not None:  # cheap path for a replay: no payload write
            existing = self.requests.find(version.service, options.idempotency_key)
            if existing is not None:
                return self._settled(existing), False
        request_id = new_request_id()
        key = payload_key(version.service, request_id)
        self.objects.put(key, payload)
        record, created = self.requests.create(
            service=version.service, endpoint=endpoint, target=target, payload_key=key,
            timeout_seconds=options.timeout, idempotency_key=options.idempotency_key,
            callback_url=options.callback_url, request_id=request_id, version=version.number,
        )  # fmt: skip
        if not created:  # lost a race on the idempotency key
            self.objects.delete(key)
            return record, False
        try:
            self.queues.queue(version.service, version.number).send(
                job_message(
                    request_id,
                    endpoint,
                    key,
                    timeout_seconds=options.timeout,
                    traceparent=options.traceparent,
                )
            )
        except Exception:
            log.exception("request %s: the queue refused it", request_id)
            self.requests.finish(
                request_id, "failed", ttl=self._ttl(),
                error=error_text("enqueue_failed", "the request could not be queued (the "
                                 "queue's error is in the platform log); submit it again."),
            )  # fmt: skip
            raise
        if self.on_submit is not None:
            self.on_submit(version.service, version.number)
        return record, True

    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.result_ttl)

    def _settled(self, record: AsyncRequest) -> AsyncRequest:
        return record if self.settler is None else self.settler.settle(record)

    def get(self, request_id: str) -> AsyncRequest:
        """The request's record (with settling on: its ledger's outcome recorded)."""
        try:
            return self._settled(self.requests.get(request_id))
        except NotFoundError as exc:
            raise RequestNotFound(exc.message) from None

    def describe(self, record: AsyncRequest, base_url: str | None = None) -> dict[str, Any]:
        base = (base_url or self.public_url).rstrip("/")
        return {
            "id": record.id,
            "status": record.status,
            "service": record.service,
            "endpoint": record.endpoint,
            "target": record.target,
            "version": _label(record),
            "run": record.run,
            "attempts": record.attempts,
            "error": _error(record),
            "created_at": _when(record.created_at),
            "started_at": _when(record.started_at),
            "finished_at": _when(record.finished_at),
            "expires_at": _when(record.expires_at),
            "timeout_seconds": record.timeout_seconds,
            "callback": (
                {"url": record.callback_url, "status": record.callback_status or "pending"}
                if record.callback_url
                else None
            ),
            "status_url": f"{base}/requests/{record.id}",
            "result_url": f"{base}/requests/{record.id}/result",
        }

    def result(self, request_id: str) -> bytes:
        """The result's JSON, or an error saying why there is none (yet)."""
        return self.answer(request_id)[1]

    def answer(self, request_id: str) -> tuple[AsyncRequest, bytes]:
        """The request's record (its lineage) and its result's JSON, or an error saying why
        there is no result (yet)."""
        record = self.get(request_id)
        if record.status == "succeeded" and record.result_key is not None:
            try:
                return record, self.objects.get(record.result_key)
            except NotFoundError:
                pass  # swept between the two reads: it has just expired
        elif record.status in ("queued", "running"):
            raise RequestNotReady(
                f"request {request_id}: {record.status} (attempt {record.attempts}); there is "
                "no result yet. Poll GET /requests/{id} until its status is succeeded, or "
                "pass Flowhost-Callback-Url when submitting."
            )
        elif record.status == "failed":
            error = _error(record) or {}
            raise RequestFailed(
                f"request {request_id} failed after {record.attempts} attempt(s): "
                f"{error.get('message', 'no error recorded')}. It has no result; see "
                "GET /requests/{id} for the error."
            )
        raise RequestExpired(
            f"request {request_id}: its result expired (results are kept "
            f"{self.settings.result_ttl:g}s after the request finishes). Submit it again."
        )

    # -- the sweeper ------------------------------------------------------------------

    def sweep_once(self) -> list[AsyncRequest]:
        """Expire old results, settle a page of outcomes (with settling on), delete
        records expired longer than ``expired_retention``, fail dead-lettered requests;
        returns callbacks to deliver."""
        for record in self.requests.expire():
            detail = detail_key(record.service, record.id)  # a failure's exception, if kept
            for key in (record.payload_key, record.result_key, detail):
                if key is not None:
                    self.objects.delete(key)
            if self.settler is not None:
                self.settler.forget(record)
        if self.settler is not None:
            self.settler.sweep()
        retention = timedelta(seconds=self.settings.expired_retention)
        self.requests.purge(utcnow() - retention)
        for service, number in list(self.versions()):
            try:
                self._settle_dead_letters(service, number)
            except NotFoundError:  # no queue (yet): on AWS the service's stack makes it
                continue
        return [r for r in self.requests.pending_callbacks() if r.id not in self._delivering]

    def _settle_dead_letters(self, service: str, number: int) -> None:
        """Record dead-lettered requests as failed (keeping the last error), then remove
        their letters: the record holds the outcome, the payload stays for its TTL."""
        queue = self.queues.queue(service, number)
        letters = queue.dead_letters(100)
        ids: dict[str, str] = {}
        for letter in letters:
            try:
                ids[str(json.loads(letter.body)["request_id"])] = letter.receipt
            except (ValueError, KeyError, TypeError):
                log.error("removing a malformed dead letter", extra={"fields": {"id": letter.id}})
                queue.remove_dead_letter(letter.receipt)
        for record in self.requests.unfinished(list(ids)):
            record = self._settled(record)  # its outcome, or its deliveries and last error
            if record.status not in ("queued", "running"):
                continue
            error = record.error or error_text(
                "dead_lettered",
                f"delivered {record.attempts} times without finishing: the instance running "
                "it exited or stopped heartbeating each time (see the version's log).",
            )
            if self.settler is None:
                self.requests.finish(record.id, "failed", ttl=self._ttl(), error=error)
            else:  # the ledger's attempts and version go into the record too
                now = utcnow()
                self.requests.settle(
                    record.model_copy(update={
                        "status": "failed", "error": error,
                        "finished_at": now, "expires_at": now + self._ttl(),
                    })
                )  # fmt: skip
        for request_id, receipt in ids.items():
            queue.remove_dead_letter(receipt)
            log.warning(
                "async request dead-lettered",
                extra={"fields": {"request_id": request_id, "version": f"{service}@v{number}"}},
            )

    def abandon(self, service: str, number: int) -> int:
        """Fail every request still queued for a version being undeployed."""
        queue = self.queues.queue(service, number)
        failed = 0
        while messages := queue.receive(10, visibility_timeout=60):
            for message in messages:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    request_id = str(json.loads(message.body)["request_id"])
                    failed += self.requests.finish(
                        request_id, "failed", ttl=self._ttl(),
                        error=error_text(
                            "version_undeployed",
                            f"{service}@v{number} was undeployed before this request finished. "
                            "Submit it again.",
                        ),
                    )  # fmt: skip
                queue.delete(message.receipt)
        return failed

    async def _due(self) -> list[AsyncRequest]:
        """Sweep once; the callbacks due that no delivery is already working on."""
        try:
            due = await asyncio.to_thread(self.sweep_once)
        except Exception:
            log.exception("async sweep failed; retrying")
            return []
        self._delivering.update(r.id for r in due)
        return due

    async def tick(self) -> None:
        """One sweep, and the callbacks it found due delivered before returning (the
        scheduled scaler on AWS calls this; ``run`` is the local platform's loop)."""
        await asyncio.gather(*(self._callback(r) for r in await self._due()))

    async def run(self) -> None:
        """Sweep every ``sweep_interval`` seconds until cancelled, delivering callbacks
        in the background meanwhile."""
        while True:
            for record in await self._due():
                task = asyncio.create_task(self._callback(record))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(self.settings.sweep_interval)

    def callback_body(self, record: AsyncRequest) -> bytes:
        body = self.describe(record)
        if record.status == "succeeded" and record.result_key is not None:
            with contextlib.suppress(NotFoundError):
                result = self.objects.get(record.result_key)
                if len(result) <= self.settings.inline_result_bytes:
                    body["result"] = json.loads(result)
        return json.dumps(body).encode()

    async def _callback(self, record: AsyncRequest) -> None:
        try:
            assert record.callback_url is not None
            if self._client is None:
                self._client = httpx.AsyncClient()
            body = await asyncio.to_thread(self.callback_body, record)
            ok = await deliver(
                self._client, record.callback_url, body, self.secret, policy=self.settings.callback
            )
            status = "delivered" if ok else "gave_up"
            await asyncio.to_thread(self.requests.set_callback_status, record.id, status)
            if not ok:
                log.error(
                    "callback given up",
                    extra={"fields": {"request_id": record.id, "url": record.callback_url}},
                )
        finally:
            self._delivering.discard(record.id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

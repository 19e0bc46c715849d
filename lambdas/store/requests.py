"""``RequestStore``: the records of asynchronous requests, next to the state of the world.

Request ids are unguessable (192 random bits). Payloads and results live in the
ObjectStore; a record holds their keys. Transitions are conditional updates, so a
result is written once even when a job runs twice (at-least-once delivery).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CursorResult, Result, delete, select, update
from sqlalchemy.exc import IntegrityError

from flowhost.errors import NotFoundError
from flowhost.lambdas.store.models import AsyncRequestRow, utcnow
from flowhost.lambdas.store.records import UtcDatetime
from flowhost.lambdas.store.sessions import Transactions

__all__ = ["MAX_ASYNC_TIMEOUT", "AsyncRequest", "RequestStatus", "RequestStore"]

MAX_ASYNC_TIMEOUT = 12 * 3600.0  # the SQS visibility ceiling
RequestStatus = Literal["queued", "running", "succeeded", "failed", "expired"]
_FINISHED = ("succeeded", "failed")


class AsyncRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    service: str
    endpoint: str
    target: str
    version: int | None
    run: str | None = None  # the pinned run of the delivery that ran it (None until one starts)
    status: RequestStatus
    idempotency_key: str | None
    callback_url: str | None
    timeout_seconds: float
    payload_key: str
    result_key: str | None
    attempts: int
    error: str | None
    callback_status: str | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    expires_at: UtcDatetime | None


def _record(row: AsyncRequestRow) -> AsyncRequest:
    return AsyncRequest(
        id=row.id, service=row.service, endpoint=row.endpoint, target=row.target,
        version=row.version_number, run=row.run,
        status=row.status,  # pyright: ignore[reportArgumentType]
        idempotency_key=row.idempotency_key, callback_url=row.callback_url,
        timeout_seconds=row.timeout_seconds, payload_key=row.payload_key,
        result_key=row.result_key, attempts=row.attempts, error=row.error,
        callback_status=row.callback_status, created_at=row.created_at,
        started_at=row.started_at, finished_at=row.finished_at, expires_at=row.expires_at,
    )  # fmt: skip


def _changed(result: Result[Any]) -> int:
    """Rows an UPDATE matched (its result is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


def new_request_id() -> str:
    return "req_" + secrets.token_urlsafe(24)


class RequestStore(Transactions):
    """Async request records on the platform's database (the StateStore's engine)."""

    def create(
        self,
        *,
        service: str,
        endpoint: str,
        target: str,
        payload_key: str,
        timeout_seconds: float,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        request_id: str | None = None,
        version: int | None = None,
    ) -> tuple[AsyncRequest, bool]:
        """Record a queued request; with an idempotency key already used for this
        service, the existing request instead. Returns ``(request, created)``."""
        if idempotency_key is not None:
            existing = self.find(service, idempotency_key)
            if existing is not None:
                return existing, False
        row = AsyncRequestRow(
            id=request_id or new_request_id(), service=service, endpoint=endpoint,
            target=target, version_number=version, status="queued",
            idempotency_key=idempotency_key,
            callback_url=callback_url, timeout_seconds=timeout_seconds,
            payload_key=payload_key, attempts=0,
        )  # fmt: skip
        try:
            with self._tx() as s:
                s.add(row)
        except IntegrityError:  # a concurrent submit with the same key won the race
            assert idempotency_key is not None
            existing = self.find(service, idempotency_key)
            if existing is None:  # pragma: no cover - the key's row vanished: not ours
                raise
            return existing, False
        return _record(row), True

    def find(self, service: str, key: str) -> AsyncRequest | None:
        with self._read() as s:
            row = s.scalars(
                select(AsyncRequestRow).where(
                    AsyncRequestRow.service == service, AsyncRequestRow.idempotency_key == key
                )
            ).one_or_none()
            return _record(row) if row is not None else None

    def get(self, request_id: str) -> AsyncRequest:
        with self._read() as s:
            row = s.get(AsyncRequestRow, request_id)
            if row is None:
                raise NotFoundError(
                    f"no request {request_id!r}. Request ids come from the 202 answer of "
                    "POST /{service}/{endpoint}/async; results expire after their TTL."
                )
            return _record(row)

    def start(self, request_id: str, version: int, run: str | None = None) -> AsyncRequest | None:
        """Mark a delivery as running (one more attempt) by ``version`` serving the pinned
        ``run``; None if it already finished."""
        with self._tx() as s:
            done = s.execute(
                update(AsyncRequestRow)
                .where(
                    AsyncRequestRow.id == request_id,
                    AsyncRequestRow.status.in_(("queued", "running")),
                )
                .values(
                    status="running",
                    version_number=version,
                    run=run,
                    started_at=utcnow(),
                    attempts=AsyncRequestRow.attempts + 1,
                )
            )
            if _changed(done) == 0:
                return None
            row = s.get(AsyncRequestRow, request_id)
            assert row is not None
            return _record(row)

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
        now = utcnow()
        return self._finish(
            request_id, status=status, result_key=result_key, error=error,
            finished_at=now, expires_at=now + ttl,
        )  # fmt: skip

    def settle(self, record: AsyncRequest) -> bool:
        """Record an outcome reached elsewhere (a worker's ObjectLedger): ``record``'s
        status, result key, error, attempts, version, run and times, once, like ``finish``."""
        if record.status not in _FINISHED:
            raise ValueError(f"settle: {record.id} is not finished (got {record.status!r})")
        return self._finish(
            record.id, status=record.status, result_key=record.result_key, error=record.error,
            attempts=record.attempts, version_number=record.version, run=record.run,
            started_at=record.started_at, finished_at=record.finished_at,
            expires_at=record.expires_at,
        )  # fmt: skip

    def _finish(self, request_id: str, **values: Any) -> bool:
        with self._tx() as s:
            done = s.execute(
                update(AsyncRequestRow)
                .where(
                    AsyncRequestRow.id == request_id,
                    AsyncRequestRow.status.not_in((*_FINISHED, "expired")),
                )
                .values(**values)
            )
            return _changed(done) > 0

    def retry(self, request_id: str, error: str | None) -> bool:
        """Back to ``queued`` after a failed or handed-back delivery, with its error (None
        keeps the last one); False if the request already finished."""
        with self._tx() as s:
            done = s.execute(
                update(AsyncRequestRow)
                .where(AsyncRequestRow.id == request_id, AsyncRequestRow.status == "running")
                .values(status="queued", **({"error": error} if error is not None else {}))
            )
            return _changed(done) > 0

    def unfinished(self, ids: list[str]) -> list[AsyncRequest]:
        """Those of ``ids`` still queued or running."""
        if not ids:
            return []
        with self._read() as s:
            rows = s.scalars(
                select(AsyncRequestRow).where(
                    AsyncRequestRow.id.in_(ids), AsyncRequestRow.status.in_(("queued", "running"))
                )
            )
            return [_record(r) for r in rows]

    def unfinished_page(self, after: str | None, limit: int = 100) -> list[AsyncRequest]:
        """Up to ``limit`` requests still queued or running, by id after ``after``: pass
        the last id back to walk them all in bounded pages (an empty page: start over)."""
        query = select(AsyncRequestRow).where(AsyncRequestRow.status.in_(("queued", "running")))
        if after is not None:
            query = query.where(AsyncRequestRow.id > after)
        with self._read() as s:
            rows = s.scalars(query.order_by(AsyncRequestRow.id).limit(limit))
            return [_record(r) for r in rows]

    def pending_callbacks(self, limit: int = 100) -> list[AsyncRequest]:
        """Finished requests with a callback URL whose callback is not settled yet."""
        with self._read() as s:
            rows = s.scalars(
                select(AsyncRequestRow)
                .where(
                    AsyncRequestRow.status.in_(_FINISHED),
                    AsyncRequestRow.callback_url.is_not(None),
                    AsyncRequestRow.callback_status.is_(None),
                )
                .order_by(AsyncRequestRow.finished_at)
                .limit(limit)
            )
            return [_record(r) for r in rows]

    def set_callback_status(self, request_id: str, status: Literal["delivered", "gave_up"]) -> None:
        with self._tx() as s:
            s.execute(
                update(AsyncRequestRow)
                .where(AsyncRequestRow.id == request_id)
                .values(callback_status=status)
            )

    def expire(self, now: datetime | None = None) -> list[AsyncRequest]:
        """Mark finished requests past their TTL expired; returns them (their payload and
        result objects are the caller's to delete)."""
        now = now or utcnow()
        with self._tx() as s:
            rows = list(
                s.scalars(
                    select(AsyncRequestRow)
                    .where(AsyncRequestRow.status.in_(_FINISHED), AsyncRequestRow.expires_at <= now)
                    .with_for_update()
                )
            )
            for row in rows:
                row.status = "expired"
            return [_record(r) for r in rows]

    def purge(self, expired_before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired records whose expiry is older than
        ``expired_before`` (their objects went when they expired); returns how many."""
        with self._tx() as s:
            ids = list(
                s.scalars(
                    select(AsyncRequestRow.id)
                    .where(
                        AsyncRequestRow.status == "expired",
                        AsyncRequestRow.expires_at < expired_before,
                    )
                    .limit(limit)
                )
            )
            if ids:
                s.execute(delete(AsyncRequestRow).where(AsyncRequestRow.id.in_(ids)))
            return len(ids)

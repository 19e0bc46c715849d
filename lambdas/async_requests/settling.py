"""Settling: outcomes that workers recorded as objects (``ObjectLedger``), brought into
the request records.

On AWS the service's tasks cannot reach the database: they write ``progress.json`` and
a write-once ``outcome.json`` beside the payload. The control plane owns the records:
it settles an unfinished record when it reads it (status and result polling) and, in
bounded pages, on every sweep (so callbacks fire and dead letters keep the last error).
"""

from __future__ import annotations

import logging

from flowhost.lambdas.jobs import outcome_key, progress_key
from flowhost.lambdas.ledger import read_outcome, read_progress
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store.requests import AsyncRequest, RequestStore

__all__ = ["Settler"]

log = logging.getLogger("flowhost.async")

_UNFINISHED = ("queued", "running")


class Settler:
    """Reads a request's ledger objects and records its outcome once."""

    def __init__(self, requests: RequestStore, objects: ObjectStore, *, page: int = 100) -> None:
        self.requests = requests
        self.objects = objects
        self.page = page
        self._after: str | None = None  # where the next sweep's page starts

    def settle(self, record: AsyncRequest) -> AsyncRequest:
        """``record`` brought up to date: finished if the ledger holds its outcome (then
        recorded), else with the deliveries so far (shown, not stored)."""
        if record.status not in _UNFINISHED:
            return record
        found = self.outcome(record)
        if found is not None:
            return found
        progress = read_progress(self.objects, record.service, record.id)
        if progress is None or progress.attempts < record.attempts:
            return record
        return record.model_copy(
            update={
                "status": progress.status, "attempts": progress.attempts,
                "version": progress.version or record.version,
                "run": progress.run or record.run,
                "started_at": progress.started_at, "error": progress.error or record.error,
            }
        )  # fmt: skip

    def outcome(self, record: AsyncRequest) -> AsyncRequest | None:
        """The record finished as the ledger's outcome says, if it holds one (recorded;
        when it lost to another settle or a finish here, the stored record)."""
        outcome = read_outcome(self.objects, record.service, record.id)
        if outcome is None:
            return None
        finished = record.model_copy(
            update={
                "status": outcome.status, "result_key": outcome.result_key,
                "error": outcome.error, "attempts": max(outcome.attempts, record.attempts),
                "version": outcome.version or record.version,
                "run": outcome.run or record.run,
                "started_at": outcome.started_at or record.started_at,
                "finished_at": outcome.finished_at, "expires_at": outcome.expires_at,
            }
        )  # fmt: skip
        if self.requests.settle(finished):
            return finished
        return self.requests.get(record.id)

    def sweep(self) -> int:
        """Settle the next page of unfinished records; how many finished."""
        page = self.requests.unfinished_page(self._after, self.page)
        self._after = page[-1].id if len(page) == self.page else None
        return sum(self.outcome(record) is not None for record in page)

    def forget(self, record: AsyncRequest) -> None:
        """Delete the ledger's objects of an expired request."""
        self.objects.delete(progress_key(record.service, record.id))
        self.objects.delete(outcome_key(record.service, record.id))

"""``ObjectLedger``: a request's progress and outcome as objects beside its payload.

For instances that may not reach the database (ECS tasks: their role reads and writes
only ``async/<service>/`` of the bucket). Under ``async/<service>/<request id>/``:

- ``progress.json`` (overwritten): attempts so far, the version of the last delivery
  and the pinned run it served, when it started, the last error, queued or running;
- ``outcome.json`` (written once, with the ObjectStore's ``put_if_absent``): succeeded
  or failed, the result key or the error, attempts, the version and run of the delivery
  that finished it, when it finished and expires.

The first outcome wins, as with the records: a later delivery's ``finish`` returns
False (QueueJobs deletes its result object again) and its ``start`` returns None.
Progress is read, then rewritten: two deliveries starting at the same moment may count
one attempt (the outcome is exact; attempts are for reporting). The
control plane reads both objects (``read_outcome``, ``read_progress``) and settles the
outcome into the RequestStore (``flowhost.lambdas.async_requests.settling``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from flowhost.errors import NotFoundError
from flowhost.lambdas.jobs import outcome_key, progress_key
from flowhost.lambdas.objectstore import ObjectStore

__all__ = ["ObjectLedger", "Outcome", "Progress", "read_outcome", "read_progress"]

log = logging.getLogger("flowhost.ledger")


class Progress(BaseModel):
    """A request's deliveries so far; the last writer wins (only the outcome matters)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["queued", "running"]
    attempts: int
    version: int | None = None
    run: str | None = None
    started_at: AwareDatetime | None = None
    error: str | None = None


class Outcome(BaseModel):
    """A request's outcome: written once."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["succeeded", "failed"]
    result_key: str | None = None
    error: str | None = None
    attempts: int
    version: int | None = None
    run: str | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime
    expires_at: AwareDatetime


M = TypeVar("M", bound=BaseModel)


def _read(objects: ObjectStore, key: str, model: type[M]) -> M | None:
    """The object as ``model``; None when it is missing, or unreadable (logged: not ours
    to trust, so it counts as not written)."""
    try:
        return model.model_validate_json(objects.get(key))
    except NotFoundError:
        return None
    except ValidationError:
        log.error("ignoring an unreadable ledger object", extra={"fields": {"key": key}})
        return None


def read_outcome(objects: ObjectStore, service: str, request_id: str) -> Outcome | None:
    """The request's outcome, if a delivery recorded one."""
    return _read(objects, outcome_key(service, request_id), Outcome)


def read_progress(objects: ObjectStore, service: str, request_id: str) -> Progress | None:
    """The request's deliveries so far, if one started."""
    return _read(objects, progress_key(service, request_id), Progress)


@dataclass(frozen=True)
class _Started:
    """The ledger does not keep the time limit: QueueJobs takes the message's."""

    timeout_seconds: float | None = None


class ObjectLedger:
    """The OutcomeLedger of one service, in its ObjectStore prefix."""

    def __init__(self, objects: ObjectStore, service: str) -> None:
        self.objects = objects
        self.service = service

    def _finished(self, request_id: str) -> bool:
        return self.objects.exists(outcome_key(self.service, request_id))

    def _write(self, request_id: str, progress: Progress) -> None:
        key = progress_key(self.service, request_id)
        self.objects.put(key, progress.model_dump_json().encode())

    def start(self, request_id: str, version: int, run: str | None = None) -> _Started | None:
        if self._finished(request_id):
            return None
        last = read_progress(self.objects, self.service, request_id)
        self._write(
            request_id,
            Progress(
                status="running", attempts=(last.attempts if last else 0) + 1, version=version,
                run=run, started_at=datetime.now(UTC), error=last.error if last else None,
            ),
        )  # fmt: skip
        return _Started()

    def finish(
        self,
        request_id: str,
        status: Literal["succeeded", "failed"],
        *,
        ttl: timedelta,
        result_key: str | None = None,
        error: str | None = None,
    ) -> bool:
        last = read_progress(self.objects, self.service, request_id)
        now = datetime.now(UTC)
        outcome = Outcome(
            status=status, result_key=result_key, error=error,
            attempts=last.attempts if last else 0, version=last.version if last else None,
            run=last.run if last else None,
            started_at=last.started_at if last else None, finished_at=now, expires_at=now + ttl,
        )  # fmt: skip
        key = outcome_key(self.service, request_id)
        return self.objects.put_if_absent(key, outcome.model_dump_json().encode())

    def retry(self, request_id: str, error: str | None) -> bool:
        if self._finished(request_id):
            return False
        last = read_progress(self.objects, self.service, request_id)
        if last is None or last.status != "running":
            return False  # as the records: only a running delivery goes back to queued
        kept = error if error is not None else last.error
        self._write(request_id, last.model_copy(update={"status": "queued", "error": kept}))
        return True

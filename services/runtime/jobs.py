"""The port through which an instance takes asynchronous jobs: ``JobSource``.

The serving runtime only knows this protocol; the platform supplies the implementation
(queue, object store and request records: see ``flowhost.lambdas.jobs``). Delivery is at
least once: a job may run more than once, and the source keeps the first outcome.

A failure's ``error`` is what callers see (a safe message); the exception's text and
traceback, when there is one, travel apart as ``detail``, for deployers only (see
``runtime.failures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Job", "JobSource"]


@dataclass(frozen=True, slots=True)
class Job:
    """One delivery of one asynchronous request."""

    request_id: str
    endpoint: str
    payload: bytes  # the JSON request, as submitted
    timeout: float  # seconds this run may take (up to 12 hours)
    attempt: int  # deliveries so far, this one included
    final: bool  # no retry after this one: a failure is the request's outcome
    handle: object = field(default=None, repr=False, compare=False)  # the source's own
    traceparent: str | None = None  # the submitter's W3C trace context, if it sent one


class JobSource(Protocol):
    """Where jobs come from and where their outcomes go. Methods block (call them in a
    thread); every one of them is safe to call after the job was lost to another
    delivery (it then does nothing)."""

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between ``heartbeat`` calls while a job runs."""
        ...

    def pin(self, run: str | None) -> None:
        """The pinned run this instance serves (None: a service without artifacts),
        recorded with every delivery it starts, beside the version; called once, before
        the first ``receive`` (it does not block)."""
        ...

    def receive(self, max_jobs: int, wait: float) -> list[Job]:
        """Up to ``max_jobs`` jobs, waiting up to ``wait`` seconds for one."""
        ...

    def heartbeat(self, job: Job) -> bool:
        """Keep the job claimed; False when it is no longer ours (it will run elsewhere)."""
        ...

    def succeed(self, job: Job, result: bytes) -> bool:
        """Store the JSON result; False if another delivery already finished the request."""
        ...

    def fail(
        self,
        job: Job,
        code: str,
        error: str,
        *,
        retry: bool,
        detail: Mapping[str, str] | None = None,
    ) -> None:
        """Record a failure: retried later when ``retry`` and not ``job.final``, else the
        request's outcome. ``error`` is shown to callers; ``detail`` (the exception's type,
        message and traceback) is kept for deployers, never shown to callers."""
        ...

    def release(self, job: Job) -> None:
        """Hand the job back unrun-to-completion (the instance is stopping)."""
        ...

    def close(self) -> None: ...

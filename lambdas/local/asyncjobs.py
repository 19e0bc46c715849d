"""What a local instance needs to run asynchronous jobs, passed to it when it is spawned."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from flowhost.lambdas.async_requests.queues import queue_name
from flowhost.lambdas.jobs import QueueJobs
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.queue import LocalQueue
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.requests import RequestStore

__all__ = ["LocalJobsConfig"]


class LocalJobsConfig(BaseModel):
    """The version's queue in the platform's queue file, the object store directory and
    the state database, plus the timers (shortened in tests)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str
    version: int
    queue_path: str
    max_receive_count: int
    objects_root: str
    store_url: str
    result_ttl: float
    visibility: float
    retry_backoff: float

    def open(self) -> QueueJobs:
        """Connect (in the instance, after the fork)."""
        queue = LocalQueue(
            Path(self.queue_path),
            queue_name(self.service, self.version),
            max_receive_count=self.max_receive_count,
        )
        return QueueJobs(
            queue,
            LocalObjectStore(Path(self.objects_root)),
            RequestStore(StateStore.open(self.store_url).engine),
            service=self.service,
            version=self.version,
            result_ttl=self.result_ttl,
            visibility=self.visibility,
            retry_backoff=self.retry_backoff,
        )

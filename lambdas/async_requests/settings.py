"""How asynchronous requests behave on a platform (the same knobs locally and on AWS)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowhost.lambdas.callbacks import CallbackPolicy
from flowhost.lambdas.jobs import DEFAULT_JOB_TIMEOUT
from flowhost.lambdas.store.requests import MAX_ASYNC_TIMEOUT
from flowhost.services.edge import EDGE_BUDGET_SECONDS

__all__ = ["AsyncSettings"]


@dataclass(frozen=True)
class AsyncSettings:
    result_ttl: float = 24 * 3600.0  # seconds a finished request and its result are kept
    # seconds an expired request's record is kept (its status answers 410) before it is
    # deleted (then 404): keeps the table to the requests of the last days
    expired_retention: float = 7 * 24 * 3600.0
    default_timeout: float = DEFAULT_JOB_TIMEOUT  # a run's time limit when the caller names none
    max_timeout: float = MAX_ASYNC_TIMEOUT
    max_attempts: int = 3  # deliveries before the dead-letter queue (maxReceiveCount)
    visibility: float = 60.0  # seconds a claimed job stays hidden between heartbeats
    retry_backoff: float = 5.0  # first retry delay; doubles per attempt, capped at 5 minutes
    max_payload_bytes: int = 64 * 1024 * 1024
    inline_result_bytes: int = 256 * 1024  # callbacks carry results up to this size inline
    sweep_interval: float = 1.0  # seconds between expiry / dead-letter / callback sweeps
    # seconds one long-poll hop of a held synchronous call waits (GET /requests/{id}/wait)
    wait_budget: float = EDGE_BUDGET_SECONDS
    callback: CallbackPolicy = field(default_factory=CallbackPolicy)
    # Workers record outcomes as objects (ObjectLedger: ECS tasks have no database), so
    # reads and sweeps settle them into the records. Off locally (workers write records).
    settle_outcomes: bool = False

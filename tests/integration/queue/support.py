"""Helpers of the Queue port's tests: a clock that moves when told, and one backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowhost.lambdas.queue import Queue

__all__ = ["EPOCH", "MAX_RECEIVES", "Backend", "FakeClock"]

MAX_RECEIVES = 2  # deliveries before the dead-letter queue, in every test queue
EPOCH = 1_800_000_000.0  # where fake clocks start


class FakeClock:
    """Seconds since the epoch that move only when told to."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Backend:
    kind: str  # "local" or "sqs"
    queue: Queue
    advance: Callable[[float], None]

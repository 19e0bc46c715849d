"""One queue per service version: ``<service>-v<N>`` (and its dead-letter queue).

A version is what runs a request (its schema, its code), so each version's instances
consume their own queue and its backlog scales that version alone.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from flowhost.lambdas.queue import LocalQueue, Queue

__all__ = ["LocalQueues", "QueueProvider", "queue_name"]


def queue_name(service: str, number: int) -> str:
    return f"{service}-v{number}"


class QueueProvider(Protocol):
    def queue(self, service: str, number: int) -> Queue: ...
    def close(self) -> None: ...


class LocalQueues:
    """The local platform's queues, all in one SQLite file (survives restarts)."""

    def __init__(self, path: Path, *, max_receive_count: int) -> None:
        self.path = path
        self.max_receive_count = max_receive_count
        self._queues: dict[str, LocalQueue] = {}
        self._lock = threading.Lock()

    def queue(self, service: str, number: int) -> LocalQueue:
        name = queue_name(service, number)
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = LocalQueue(
                    self.path, name, max_receive_count=self.max_receive_count
                )
            return queue

    def close(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.close()
            self._queues.clear()

"""The asynchronous request API of the control plane: submit, status, result, callbacks.

``POST /{service}[@ref]/{endpoint}/async`` (or the sync path with ``Prefer:
respond-async``) validates the body against the endpoint's JSON Schema, stores it, queues
a pointer on the version's queue and answers ``202``; ``GET /requests/{id}`` and
``GET /requests/{id}/result`` report. The sweeper expires results after their TTL,
records dead-lettered requests as failed, and delivers signed callbacks.
"""

from flowhost.lambdas.async_requests.app import create_async_app
from flowhost.lambdas.async_requests.queues import LocalQueues, QueueProvider, queue_name
from flowhost.lambdas.async_requests.service import AsyncRequests
from flowhost.lambdas.async_requests.settings import AsyncSettings

__all__ = [
    "AsyncRequests",
    "AsyncSettings",
    "LocalQueues",
    "QueueProvider",
    "create_async_app",
    "queue_name",
]

"""The trivial endpoint for asynchronous-request throughput (bench/async_throughput.py).

Two services in one file, deployed as ``async_service.py:BenchAsync`` and
``async_service.py:BenchAsyncCold``:

- ``bench-async``: at least one instance always (no cold start in the throughput runs),
  at most two, eight async jobs at once per instance.
- ``bench-async-cold``: the same, but at zero instances after one idle second, for the
  time from a submit at zero to the first completed request.
"""

from bench_models import ClassifyIn, ClassifyOut, classify

from flowhost.services import Scaling, WebServiceSpec, endpoint


class BenchAsync(WebServiceSpec):
    """Labels a text by its length: the async path's own cost, nothing else."""

    name = "bench-async"
    scaling = Scaling(min_instances=1, max_instances=2, target_concurrency=8)

    @endpoint(description="sync def: runs in the worker thread pool.")
    def classify(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)

    @endpoint(name="classify_async", description="async def: runs on the event loop.")
    async def classify_async(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)


class BenchAsyncCold(WebServiceSpec):
    """The same endpoint, at zero instances after one idle second."""

    name = "bench-async-cold"
    scaling = Scaling(min_instances=0, max_instances=2, target_concurrency=8, idle_timeout="1s")

    @endpoint(name="classify_async", description="async def: runs on the event loop.")
    async def classify_async(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)

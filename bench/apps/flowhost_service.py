"""The trivial endpoint as a flowhost service (no artifacts).

uv run --locked flowhost serve bench/apps/flowhost_service.py --port 8000
"""

from bench_models import ClassifyIn, ClassifyOut, classify

from flowhost.services import WebServiceSpec, endpoint


class BenchClassify(WebServiceSpec):
    """Labels a text by its length: the serving runtime's overhead, nothing else."""

    name = "bench-classify"

    @endpoint(description="sync def: runs in the worker thread pool.")
    def classify(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)

    @endpoint(name="classify_async", description="async def: runs on the event loop.")
    async def classify_async(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)

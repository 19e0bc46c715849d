"""The trivial endpoint, scaling to zero after one idle second: for cold-start timing."""

from bench_models import ClassifyIn, ClassifyOut, classify

from flowhost.services import Scaling, WebServiceSpec, endpoint


class BenchCold(WebServiceSpec):
    """Labels a text by its length; no initialize work, so a cold start is all platform."""

    name = "bench-cold"
    scaling = Scaling(min_instances=0, max_instances=1, idle_timeout="1s")

    @endpoint
    async def classify(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)

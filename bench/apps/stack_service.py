"""One small CPU service, deployed N times by bench/stack_build_time.py.

Every copy is this class's ServiceDefinition with another name, packaged from this
directory (bench/apps), so each ServiceSpec builds the same code package.
"""

from bench_models import ClassifyIn, ClassifyOut, classify

from flowhost.services import Resources, Scaling, WebServiceSpec, endpoint


class StackService(WebServiceSpec):
    """Labels a text by its length (the smallest realistic CPU service)."""

    name = "stack-service"
    resources = Resources(cpu=0.5, memory="1Gi")
    scaling = Scaling(min_instances=0, max_instances=4, target_concurrency=4)

    @endpoint(description="sync def: runs in the worker thread pool.")
    def classify(self, request: ClassifyIn) -> ClassifyOut:
        return classify(request)

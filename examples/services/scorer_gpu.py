"""A GPU service: the sentiment model's run, scored in batches on a GPU node.

``resources.gpu = 1`` sends it to the platform's EKS cluster (a GPU node group that
scales from zero). Locally (``flowhost up``) it runs like any other service.
"""

from pydantic import BaseModel
from sentiment import positive_probability  # the sibling service's model

from flowhost.services import Artifacts, Resources, Scaling, WebServiceSpec, endpoint


class Batch(BaseModel):
    texts: list[str]


class Scores(BaseModel):
    scores: list[float]


class BatchScorer(WebServiceSpec):
    """Scores many texts at once."""

    name = "batch-scorer"
    artifacts = Artifacts(flow="SentimentFlow")
    resources = Resources(cpu=4, memory="16Gi", gpu=1)
    scaling = Scaling(min_instances=0, max_instances=2, idle_timeout="15m", target_concurrency=2)

    def initialize(self) -> None:
        model = self.artifacts.flow.model
        self.priors: dict[str, float] = model["priors"]
        self.loglik: dict[str, dict[str, float]] = model["loglik"]

    @endpoint(
        description="Score a batch of texts: the probability each is positive.", timeout="10m"
    )
    def score(self, request: Batch) -> Scores:
        return Scores(
            scores=[positive_probability(self.priors, self.loglik, t) for t in request.texts]
        )

"""A GPU service: the sentiment model's run, scored in batches on a GPU node.

``resources.gpu = 1`` sends it to the platform's EKS cluster (a GPU node group that
scales from zero). Locally (``flowhost up``) it runs like any other service.
"""

import math

from pydantic import BaseModel

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

    def positive(self, text: str) -> float:
        """The probability that ``text`` is positive (the sentiment service's model)."""
        words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
        scores = {
            label: prior
            + sum(self.loglik[label].get(w, self.loglik[label]["<unk>"]) for w in words)
            for label, prior in self.priors.items()
        }
        top = max(scores.values())
        odds = {label: math.exp(s - top) for label, s in scores.items()}
        return odds["positive"] / sum(odds.values())

    @endpoint(
        description="Score a batch of texts: the probability each is positive.", timeout="10m"
    )
    def score(self, request: Batch) -> Scores:
        return Scores(scores=[self.positive(text) for text in request.texts])

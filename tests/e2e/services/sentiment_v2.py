"""Version 2 of the example sentiment service: same contract, plus a ``model`` field.

The added response field is not breaking, so it promotes over v1 without
``allow_breaking``; the field tells the two versions apart in a response body.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from flowhost.services import Artifacts, Scaling, WebServiceSpec, endpoint

MODEL = "naive-bayes-v2"


class PredictIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class PredictOut(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)
    model: str


def _tokenize(text: str) -> list[str]:
    return [w for w in "".join(c if c.isalnum() else " " for c in text.lower()).split() if w]


class Sentiment(WebServiceSpec):
    """Scores the sentiment of short texts (v2: names its model)."""

    name = "sentiment"
    artifacts = Artifacts(flow="SentimentFlow")
    scaling = Scaling(min_instances=0, max_instances=4, idle_timeout="10m", target_concurrency=8)

    def initialize(self) -> None:
        model = self.artifacts.flow.model
        self.priors: dict[str, float] = model["priors"]
        self.loglik: dict[str, dict[str, float]] = model["loglik"]

    @endpoint(description="Score one text.")
    def predict(self, request: PredictIn) -> PredictOut:
        words = _tokenize(request.text)
        scores = {
            label: prior
            + sum(self.loglik[label].get(w, self.loglik[label]["<unk>"]) for w in words)
            for label, prior in self.priors.items()
        }
        top = max(scores.values())
        odds = {label: math.exp(s - top) for label, s in scores.items()}
        positive = odds["positive"] / sum(odds.values())
        label = "positive" if positive >= 0.5 else "negative"
        return PredictOut(label=label, score=positive, model=MODEL)

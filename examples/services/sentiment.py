"""The sentiment model trained by examples/flows/sentiment_flow.py, as a web service."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from flowhost.services import Artifacts, Resources, Scaling, WebServiceSpec, endpoint


class PredictIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000, description="the text to score")


class PredictOut(BaseModel):
    label: str = Field(description="'positive' or 'negative'")
    score: float = Field(ge=0, le=1, description="probability of the positive class")


def _tokenize(text: str) -> list[str]:
    return [w for w in "".join(c if c.isalnum() else " " for c in text.lower()).split() if w]


def positive_probability(
    priors: dict[str, float], loglik: dict[str, dict[str, float]], text: str
) -> float:
    """The model's probability that ``text`` is positive (naive Bayes over its words)."""
    words = _tokenize(text)
    scores = {
        label: prior + sum(loglik[label].get(w, loglik[label]["<unk>"]) for w in words)
        for label, prior in priors.items()
    }
    top = max(scores.values())
    odds = {label: math.exp(s - top) for label, s in scores.items()}
    return odds["positive"] / sum(odds.values())


class Sentiment(WebServiceSpec):
    """Scores the sentiment of short texts."""

    name = "sentiment"
    artifacts = Artifacts(flow="SentimentFlow")
    resources = Resources(cpu=1, memory="1Gi")
    # A short idle_timeout so the demo shows scale to zero; production services use minutes.
    scaling = Scaling(min_instances=0, max_instances=4, idle_timeout="20s", target_concurrency=8)

    def initialize(self) -> None:
        model = self.artifacts.flow.model
        self.priors: dict[str, float] = model["priors"]
        self.loglik: dict[str, dict[str, float]] = model["loglik"]

    @endpoint(description="Score one text: its label and the probability it is positive.")
    def predict(self, request: PredictIn) -> PredictOut:
        positive = positive_probability(self.priors, self.loglik, request.text)
        return PredictOut(label="positive" if positive >= 0.5 else "negative", score=positive)

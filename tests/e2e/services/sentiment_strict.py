"""A breaking v2 of the sentiment service: ``language`` becomes a required request field
and the response drops ``score``. Promoting it over v1 needs ``allow_breaking``."""

from __future__ import annotations

from pydantic import BaseModel

from flowhost.services import WebServiceSpec, endpoint

POSITIVE = frozenset({"great", "love", "excellent", "good", "fantastic"})


class PredictIn(BaseModel):
    text: str
    language: str


class PredictOut(BaseModel):
    label: str


class Sentiment(WebServiceSpec):
    """Scores the sentiment of short texts in a named language."""

    name = "sentiment"

    @endpoint
    def predict(self, request: PredictIn) -> PredictOut:
        words = set(request.text.lower().split())
        return PredictOut(label="positive" if words & POSITIVE else "negative")

"""A sentiment version whose ``initialize`` raises: its deploy must fail, and say why."""

from __future__ import annotations

from pydantic import BaseModel

from flowhost.services import WebServiceSpec, endpoint

REASON = "the model file is corrupt (checksum 0xdeadbeef)"


class PredictIn(BaseModel):
    text: str


class PredictOut(BaseModel):
    label: str
    score: float


class Sentiment(WebServiceSpec):
    """Never becomes ready."""

    name = "sentiment"

    def initialize(self) -> None:
        raise RuntimeError(REASON)

    @endpoint
    def predict(self, request: PredictIn) -> PredictOut:
        return PredictOut(label="negative", score=0.0)

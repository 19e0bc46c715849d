"""The request and response models of the trivial endpoint, shared by the flowhost and
FastAPI apps (the BentoML app repeats them: its virtualenv has no flowhost)."""

from pydantic import BaseModel

__all__ = ["ClassifyIn", "ClassifyOut", "classify"]


class ClassifyIn(BaseModel):
    text: str


class ClassifyOut(BaseModel):
    label: str
    length: int


def classify(request: ClassifyIn) -> ClassifyOut:
    """The whole "model": a label from the text's length."""
    n = len(request.text)
    return ClassifyOut(label="long" if n > 16 else "short", length=n)

"""The grading service, changed in a way its clients would notice: the pass mark is now
required, and the answer is a letter."""

from __future__ import annotations

from pydantic import BaseModel, Field

from flowhost.client import AuditClient
from flowhost.services import WebServiceSpec, audit, endpoint


class GradeIn(BaseModel):
    score: int = Field(ge=0, le=100)
    pass_mark: int = Field(ge=0, le=100)


class GradeOut(BaseModel):
    letter: str


class Grader(WebServiceSpec):
    """Grades scores as a letter."""

    name = "grader"

    @endpoint
    def grade(self, request: GradeIn) -> GradeOut:
        return GradeOut(letter="A" if request.score >= request.pass_mark else "F")

    @audit
    def knows_pass_from_fail(self, client: AuditClient) -> None:
        letter = client.call("grade", {"score": 90, "pass_mark": 50})["letter"]
        assert letter == "A", f"a score of 90 graded {letter!r}"

"""The grading service with a bug its audit catches: every score fails."""

from __future__ import annotations

from pydantic import BaseModel, Field

from flowhost.client import AuditClient
from flowhost.services import WebServiceSpec, audit, endpoint


class GradeIn(BaseModel):
    score: int = Field(ge=0, le=100)


class GradeOut(BaseModel):
    grade: str


class Grader(WebServiceSpec):
    """Grades scores as pass or fail."""

    name = "grader"

    @endpoint
    def grade(self, request: GradeIn) -> GradeOut:
        return GradeOut(grade="fail")

    @audit
    def knows_pass_from_fail(self, client: AuditClient) -> None:
        grade = client.call("grade", {"score": 90})["grade"]
        assert grade == "pass", f"a score of 90 graded {grade!r}"

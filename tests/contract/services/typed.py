"""A service whose request models use the JSON types strict validation is about: numbers,
integers, booleans, enums, datetimes, UUIDs, nested models, optional fields, and a GET
endpoint whose query parameters are converted from strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from flowhost.services import Scaling, WebServiceSpec, endpoint


class Unit(StrEnum):
    METRIC = "metric"
    IMPERIAL = "imperial"


class Point(BaseModel):
    x: float
    y: float


class Scored(BaseModel):
    text: str = Field(min_length=1, max_length=200)
    weight: float = Field(ge=0, le=10)
    count: int = Field(default=1, ge=1, le=100)
    exact: bool = False
    unit: Unit = Unit.METRIC
    at: datetime | None = None
    trace: uuid.UUID | None = None
    points: list[Point] = Field(default_factory=list, max_length=5)


class Score(BaseModel):
    text: str
    total: float
    kind: Literal["scored"] = "scored"


class Lookup(BaseModel):
    key: str = Field(min_length=1, max_length=50)
    limit: int = Field(default=10, ge=1, le=100)


class Typed(WebServiceSpec):
    """Echoes typed requests, for contract tests."""

    name = "typed"
    scaling = Scaling(min_instances=1, max_instances=1)

    @endpoint
    def score(self, request: Scored) -> Score:
        return Score(text=request.text, total=request.weight * request.count)

    @endpoint(methods=["GET"])
    def lookup(self, request: Lookup) -> dict[str, int | str]:
        return {"key": request.key, "limit": request.limit}

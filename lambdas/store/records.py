"""Plain records the store hands out (no ORM sessions leak past the store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from flowhost.services.definition import ServiceDefinition

__all__ = ["AliasRecord", "EventRecord", "VersionRecord", "VersionStatus"]

VersionStatus = Literal["deploying", "ready", "failed", "undeployed"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionRecord(_Record):
    service: str
    number: int
    code_digest: str
    artifact_run: str | None
    environment_digest: str
    definition: ServiceDefinition
    status: VersionStatus
    error: str | None
    created_by: str
    created_at: datetime

    @property
    def label(self) -> str:
        return f"v{self.number}"


class AliasRecord(_Record):
    service: str
    name: str
    version: int
    updated_at: datetime


class EventRecord(_Record):
    id: int
    service: str
    kind: str
    version: int | None
    alias: str | None
    previous_version: int | None
    actor: str
    detail: dict[str, Any]
    created_at: datetime

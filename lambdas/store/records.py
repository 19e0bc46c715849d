"""Plain records the store hands out (no ORM sessions leak past the store)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from flowhost.services.definition import ServiceDefinition

__all__ = [
    "AliasRecord",
    "EventRecord",
    "UtcDatetime",
    "VersionRecord",
    "VersionStatus",
    "version_number",
]

_VERSION_REF = re.compile(r"^v?(\d+)$")


def version_number(ref: str) -> int | None:
    """``3`` for a version ref (``"v3"`` or ``"3"``); None for anything else (an alias)."""
    match = _VERSION_REF.match(ref)
    return int(match.group(1)) if match else None


VersionStatus = Literal["deploying", "ready", "failed", "undeployed"]
# SQLite keeps no time zone: its timestamps read back naive, and are UTC.
UtcDatetime = Annotated[
    datetime, AfterValidator(lambda v: v if v.tzinfo else v.replace(tzinfo=UTC))
]


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
    created_at: UtcDatetime

    @property
    def label(self) -> str:
        return f"v{self.number}"


class AliasRecord(_Record):
    service: str
    name: str
    version: int
    updated_at: UtcDatetime


class EventRecord(_Record):
    id: int
    service: str
    kind: str
    version: int | None
    alias: str | None
    previous_version: int | None
    actor: str
    detail: dict[str, Any]
    created_at: UtcDatetime

"""Plain records the store hands out (no ORM sessions leak past the store)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from flowhost.services.definition import ServiceDefinition

__all__ = [
    "AliasRecord",
    "DeployOptions",
    "DeployPhase",
    "DeployRecord",
    "EventRecord",
    "ProgressLine",
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
# recorded: nothing asked of the compute yet; starting: the first instance was asked for;
# promoting: ready, the alias move it asked for is next; done: ready or failed for good.
DeployPhase = Literal["recorded", "starting", "promoting", "done"]
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


class DeployOptions(_Record):
    """What a deploy request asked for, kept with the deploy so any process can finish it."""

    promote: bool = False
    alias: str
    allow_breaking: bool = False
    actor: str
    deadline: UtcDatetime  # the first instance runs by then, or the deploy fails


class DeployRecord(_Record):
    id: int
    service: str
    number: int
    phase: DeployPhase
    options: DeployOptions
    last_status: str | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None

    @property
    def key(self) -> str:
        return f"{self.service}@v{self.number}"


class ProgressLine(_Record):
    at: UtcDatetime
    message: str

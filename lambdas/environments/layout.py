"""Where environments live in the object store, and the records kept there.

``environments/<digest>/request.json``   what to build (:class:`EnvironmentRequest`)
``environments/<digest>/build.json``     how the build goes (:class:`BuildStatus`)
``environments/<digest>/manifest.json``  what was built (:class:`EnvironmentManifest`)
``environments/archives/<digest>.tar.gz``  the packed install
No credentials are ever written to any of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BuildState",
    "BuildStatus",
    "EnvironmentManifest",
    "PackagePin",
    "archive_key",
    "build_key",
    "manifest_key",
    "request_key",
]

BuildState = Literal["building", "built", "failed"]


def request_key(digest: str) -> str:
    return f"environments/{digest}/request.json"


def build_key(digest: str) -> str:
    return f"environments/{digest}/build.json"


def manifest_key(digest: str) -> str:
    return f"environments/{digest}/manifest.json"


def archive_key(digest: str) -> str:
    return f"environments/archives/{digest}.tar.gz"


class BuildStatus(BaseModel):
    """The build's own account, rewritten as it goes: its log lines and how it ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str
    state: BuildState
    lines: list[str] = Field(default_factory=list[str])
    error: str | None = None
    updated_at: datetime


class PackagePin(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    hashes: list[str] = Field(
        default_factory=list[str], description="the files the lock allows, e.g. sha256:..."
    )


class EnvironmentManifest(BaseModel):
    """A built environment: the lock, what the archive holds and how to check it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str
    python: str
    platform: str | None
    lock: str = Field(description="every package the lock pins, runtime ones included")
    lock_digest: str
    packages: list[PackagePin] = Field(description="what the archive installs (not the runtime's)")
    archive: str = Field(description="the archive's object key")
    archive_sha256: str
    archive_bytes: int
    unpacked_bytes: int
    files: int
    built_at: datetime
    build_seconds: float

    def summary(self) -> str:
        return (
            f"{len(self.packages)} packages, {self.unpacked_bytes / 1e6:.1f} MB "
            f"({self.archive_bytes / 1e6:.1f} MB packed)"
        )

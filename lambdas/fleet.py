"""The ``Fleet`` port: where versions run and how traffic reaches them.

A deploy never waits on the fleet: it asks for the first instance (``begin``), and
whoever advances the deploy next asks how that went (``check``). Both are safe to
repeat and to call from another process than the one that began.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from flowhost.lambdas.store import VersionRecord

__all__ = ["Fleet", "Launch", "LaunchState"]

# idle: nothing runs or starts (begin it, again if need be); starting: asked for, not yet
# running; running: an instance serves; failed: it cannot start (``detail`` says why).
LaunchState = Literal["idle", "starting", "running", "failed"]


@dataclass(frozen=True, slots=True)
class Launch:
    """How a version's first instance is doing."""

    state: LaunchState
    detail: str = ""  # one line: the compute's status, or why it failed


class Fleet(Protocol):
    def code_dir(self, digest: str) -> Path: ...
    async def begin(self, version: VersionRecord) -> None:
        """Ask for the version's first instance and return at once (idempotent);
        ``DeployError`` if it cannot even be asked for."""
        ...

    async def check(self, version: VersionRecord) -> Launch: ...
    async def expose(self, version: VersionRecord) -> None:
        """Route ``service@vN`` to the version, once ``check`` says it runs."""
        ...

    def route(self, service: str, alias: str, number: int) -> None: ...
    async def retire(self, service: str, number: int) -> None: ...

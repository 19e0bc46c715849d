"""The instances of one version on the local platform, and how requests pick one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from flowhost.lambdas.local.launcher import Launcher, Process
from flowhost.lambdas.local.upstream import UpstreamPool
from flowhost.lambdas.store.records import VersionRecord

__all__ = ["Instance", "Pool"]


@dataclass(eq=False)
class Instance:
    process: Process
    launcher: Launcher
    in_flight: int = 0
    draining: bool = False
    started_at: float = field(default_factory=time.monotonic)
    upstream: UpstreamPool = field(init=False)

    def __post_init__(self) -> None:
        self.upstream = UpstreamPool(self.process.port)

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def jobs(self) -> int:
        """Asynchronous jobs the instance runs now."""
        return self.process.jobs


class Pool:
    """Ready instances of one version, in-flight accounting, and a wake-up for waiters."""

    def __init__(self, version: VersionRecord) -> None:
        self.version = version
        self.service = version.service
        self.number = version.number
        self.scaling = version.definition.scaling
        self.endpoints = {ep.name: ep for ep in version.definition.endpoints}
        self.instances: list[Instance] = []
        self.starting = 0
        self.in_flight = 0
        self.waiting = 0  # requests held while no instance is ready
        self.backlog = 0  # async requests queued or running (the version's queue depth)
        self.last_request = time.monotonic()
        self.retired = False
        self._changed = asyncio.Event()

    @property
    def key(self) -> str:
        return f"{self.service}@v{self.number}"

    @property
    def live(self) -> list[Instance]:
        return [i for i in self.instances if not i.draining]

    def pick(self, avoid: Collection[Instance] = ()) -> Instance | None:
        """The live instance with the fewest requests in flight (ties: the first), other
        than those in ``avoid``."""
        best: Instance | None = None
        for inst in self.instances:
            if inst.draining or inst in avoid:
                continue
            if best is None or inst.in_flight < best.in_flight:
                best = inst
        return best

    def add(self, inst: Instance) -> None:
        self.instances.append(inst)
        self.notify()

    def remove(self, inst: Instance) -> None:
        if inst in self.instances:
            self.instances.remove(inst)
        inst.upstream.close()
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

"""The Compute port on one machine: instances are forked processes on loopback ports."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowhost.errors import DeployError
from flowhost.lambdas.environments.fetch import fetch_environment
from flowhost.lambdas.local.launcher import InstanceLost, Launcher
from flowhost.lambdas.local.pool import Instance, Pool
from flowhost.lambdas.objectstore import ObjectStore
from flowhost.lambdas.store.records import VersionRecord
from flowhost.services.packaging import package_key, unpack
from flowhost.services.runtime.settings import RuntimeSettings

__all__ = ["ENVIRONMENT_PATH", "LocalCompute"]

ENVIRONMENT_PATH = "FLOWHOST_ENVIRONMENT_PATH"  # the launcher puts it first on sys.path

log = logging.getLogger("flowhost.compute")


class LocalCompute:
    """Starts and stops the instances of a pool through the launcher."""

    def __init__(
        self,
        home: Path,
        objects: ObjectStore,
        launcher: Launcher,
        *,
        ready_timeout: float = 120.0,
        drain_timeout: float = 30.0,
        on_exit: Callable[[Pool, Instance, int], None] | None = None,
        jobs: Callable[[VersionRecord], dict[str, Any]] | None = None,
        otlp_endpoint: str | None = None,
    ) -> None:
        self.home = home
        self.objects = objects
        self.launcher = launcher  # the platform's own interpreter
        self.environment_cache = home / "envs"  # unpacked environments, one per digest
        self._launchers: dict[str, Launcher] = {"": launcher}
        self._launcher_lock = asyncio.Lock()
        self._closing = False
        self.ready_timeout = ready_timeout
        self.drain_timeout = drain_timeout
        self.on_exit = on_exit
        self.jobs = jobs  # how a version's instances reach its async queue
        self.otlp_endpoint = otlp_endpoint  # where instances send traces (None: no tracing)

    def code_dir(self, digest: str) -> Path:
        """The unpacked code package, extracted once per digest."""
        target = self.home / "code" / digest
        if not target.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=self.home / "code" if target.parent.exists() else None))
            unpack(self.objects.get(package_key(digest)), tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                tmp.rename(target)
            except OSError:  # another start unpacked it first
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    async def launcher_for(self, version: VersionRecord) -> Launcher:
        """The launcher of a version's environment: the platform's own, or one whose
        interpreter has the version's built environment (fetched and checked on first
        use) first on its path."""
        if version.definition.environment is None:
            return self._launchers[""]
        digest = version.environment_digest
        async with self._launcher_lock:
            launcher = self._launchers.get(digest)
            if launcher is None:
                fetched = await asyncio.to_thread(
                    fetch_environment, self.objects, digest, self.environment_cache
                )
                env = {**os.environ, ENVIRONMENT_PATH: str(fetched.path)}
                name = f"launcher ({digest[:19]})"
                launcher = self._launchers[digest] = Launcher(sys.executable, env, name=name)
                await launcher.start()
        return launcher

    @property
    def launchers(self) -> list[Launcher]:
        """Every launcher started so far (the platform's own first)."""
        return list(self._launchers.values())

    async def close(self) -> None:
        """Stop every instance (the platform is stopping; their exits are expected)."""
        self._closing = True
        for launcher in self._launchers.values():
            await launcher.close()

    async def start(self, pool: Pool) -> Instance:
        """Start one instance of ``pool``'s version and wait until it is ready."""
        version = pool.version
        launcher = await self.launcher_for(version)
        entry_file, _, class_name = version.definition.entrypoint.partition(":")
        settings = RuntimeSettings(
            run=version.artifact_run, version=f"v{version.number}", otlp_endpoint=self.otlp_endpoint
        )
        logs = self.home / "logs" / version.service
        proc = await launcher.spawn(
            code_dir=self.code_dir(version.code_digest),
            entrypoint=f"{entry_file}:{class_name}",
            settings=settings,
            log_path=logs / f"v{version.number}.log",
            jobs=self.jobs(version) if self.jobs is not None else None,
        )
        try:
            await asyncio.wait_for(asyncio.shield(proc.ready), timeout=self.ready_timeout)
        except (TimeoutError, DeployError) as exc:
            await launcher.stop(proc, grace=2)
            if isinstance(exc, InstanceLost):  # the launcher died: start it again, elsewhere
                raise
            reason = (
                f"not ready within {self.ready_timeout:g}s"
                if isinstance(exc, TimeoutError)
                else str(exc)
            )
            raise DeployError(
                f"{pool.key}: the instance failed to start: {reason}. Last log lines:\n"
                f"{proc.log_tail(12)}"
            ) from None
        inst = Instance(proc, launcher)
        proc.exited.add_done_callback(lambda fut: self._exited(pool, inst, fut))
        pool.add(inst)
        log.info("instance started", extra={"fields": {"version": pool.key, "port": inst.port}})
        return inst

    def _exited(self, pool: Pool, inst: Instance, fut: asyncio.Future[int]) -> None:
        if inst in pool.instances and not self._closing:  # not stopped by us: it died
            pool.remove(inst)
            code = fut.result()
            log.warning(
                "instance exited unexpectedly",
                extra={"fields": {"version": pool.key, "pid": inst.process.pid, "code": code}},
            )
            if self.on_exit is not None:
                self.on_exit(pool, inst, code)

    async def stop(self, pool: Pool, inst: Instance, *, grace: float = 10.0) -> None:
        """Take ``inst`` out of routing, let its requests finish (bounded), then stop it
        (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        inst.draining = True
        inst.launcher.pause(inst.process)
        pool.notify()
        deadline = asyncio.get_running_loop().time() + self.drain_timeout
        while inst.in_flight > 0 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a bounded drain; the hot path does not signal it
        pool.remove(inst)
        await inst.launcher.stop(inst.process, grace=grace)
        log.info("instance stopped", extra={"fields": {"version": pool.key, "port": inst.port}})

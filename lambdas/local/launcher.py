"""Talks to the zygote (see :mod:`flowhost.lambdas.local.zygote`): spawn and stop instances."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowhost.errors import DeployError
from flowhost.services.runtime.settings import RuntimeSettings

__all__ = ["Launcher", "Process"]

log = logging.getLogger("flowhost.launcher")


@dataclass(eq=False)
class Process:
    """One instance process: its pid and port, and futures for readiness and exit."""

    id: str
    pid: int
    port: int
    log: Path
    ready: asyncio.Future[None] = field(repr=False)
    exited: asyncio.Future[int] = field(repr=False)
    jobs: int = 0  # asynchronous jobs it runs now (as it last reported)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Launcher:
    """One zygote process per Python interpreter; forks instances on request."""

    def __init__(self, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
        self.python = python
        self.env = env
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._listening: dict[str, asyncio.Future[tuple[int, int]]] = {}
        self._by_id: dict[str, Process] = {}
        self._by_pid: dict[int, Process] = {}
        self._started = asyncio.Event()

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "flowhost.lambdas.local.zygote",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(), name="flowhost-launcher-reader")
        try:
            await asyncio.wait_for(self._started.wait(), timeout=60)
        except TimeoutError:
            raise DeployError("the instance launcher did not start within 60s.") from None

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            try:
                self._dispatch(json.loads(line))
            except Exception:  # pragma: no cover - a malformed line must not kill the reader
                log.exception("bad launcher message: %r", line[:200])
        for proc in list(self._by_pid.values()):  # the zygote died: its children die with it
            self._finish(proc, -1)

    def _finish(self, proc: Process, code: int) -> None:
        self._by_pid.pop(proc.pid, None)
        self._by_id.pop(proc.id, None)
        if not proc.ready.done():
            proc.ready.set_exception(
                DeployError(f"the instance exited with code {code} before it was ready.")
            )
        if not proc.exited.done():
            proc.exited.set_result(code)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        event = msg["event"]
        if event == "launcher-ready":
            self._started.set()
        elif event == "listening":
            fut = self._listening.pop(msg["id"], None)
            if fut is not None and not fut.done():
                fut.set_result((msg["pid"], msg["port"]))
        elif event == "exit":
            proc = self._by_pid.get(msg["pid"])
            if proc is not None:
                self._finish(proc, int(msg["code"]))
        elif event == "jobs":
            proc = self._by_id.get(msg["id"])
            if proc is not None:
                proc.jobs = int(msg["running"])
        elif event in ("ready", "failed"):
            proc = self._by_id.get(msg["id"])
            if proc is not None and not proc.ready.done():
                if event == "ready":
                    proc.ready.set_result(None)
                else:
                    proc.ready.set_exception(DeployError(str(msg.get("error"))))

    async def spawn(
        self,
        *,
        code_dir: Path,
        entrypoint: str,
        settings: RuntimeSettings,
        log_path: Path,
        env: dict[str, str] | None = None,
        jobs: dict[str, Any] | None = None,
    ) -> Process:
        """Fork an instance; returns once it listens (await ``ready`` for readiness)."""
        if self._proc is None or self._proc.stdin is None or self._proc.returncode is not None:
            raise DeployError("the instance launcher is not running; restart flowhost up.")
        ident = f"i{next(self._ids)}"
        loop = asyncio.get_running_loop()
        listening: asyncio.Future[tuple[int, int]] = loop.create_future()
        self._listening[ident] = listening
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = {
            "op": "spawn",
            "id": ident,
            "code_dir": str(code_dir),
            "entrypoint": entrypoint,
            "settings": settings.model_dump(mode="json"),
            "log": str(log_path),
            "env": env or {},
            "jobs": jobs,
        }
        self._proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self._proc.stdin.drain()
        try:
            pid, port = await asyncio.wait_for(listening, timeout=30)
        except TimeoutError:
            self._listening.pop(ident, None)
            raise DeployError("an instance did not open its port within 30s.") from None
        proc = Process(ident, pid, port, log_path, loop.create_future(), loop.create_future())
        proc.ready.add_done_callback(lambda f: f.exception())  # consumed even if nobody waits
        self._by_id[ident] = proc
        self._by_pid[pid] = proc
        return proc

    def pause(self, proc: Process) -> None:
        """Ask an instance to take no new async jobs (SIGUSR1): it is about to be stopped."""
        if not proc.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGUSR1)

    async def stop(self, proc: Process, grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if proc.exited.done():
            return proc.exited.result()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(asyncio.shield(proc.exited), timeout=grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            return await asyncio.wait_for(asyncio.shield(proc.exited), timeout=5)

    async def close(self) -> None:
        for proc in list(self._by_pid.values()):
            await self.stop(proc)
        if self._proc is not None and self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), timeout=5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            await self._reader

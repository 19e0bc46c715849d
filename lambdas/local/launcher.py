"""Talks to the zygote (see :mod:`flowhost.lambdas.local.zygote`): spawn and stop instances.

The zygote is supervised: when it dies (an OOM kill, a crash) it is started again with
bounded exponential backoff (see :class:`~flowhost.lambdas.local.backoff.Backoff`), and
meanwhile instances start the slow way, each a plain ``python -m ...zygote --single``
process that pays for its own imports, rather than not at all. ``degraded`` says why
while that lasts.
"""

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
from flowhost.lambdas.local.backoff import Backoff
from flowhost.services.runtime.settings import RuntimeSettings

__all__ = ["InstanceLost", "Launcher", "Process"]

log = logging.getLogger("flowhost.launcher")

ZYGOTE = "flowhost.lambdas.local.zygote"


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


class InstanceLost(DeployError):
    """An instance died with its launcher before it was ready: not the version's fault."""


class _ZygoteDied(Exception):
    """The zygote died before it forked an instance it was asked for."""


class Launcher:
    """One zygote process per Python interpreter; forks instances on request."""

    def __init__(
        self,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        *,
        backoff: Backoff | None = None,
        name: str = "launcher",
        restart_wait: float = 5.0,
    ) -> None:
        """``restart_wait``: seconds an instance start waits for a zygote being restarted
        before it starts the slow way."""
        self.python = python
        self.env = env
        self.name = name  # how health reports name it
        self.backoff = backoff or Backoff(base=0.1, cap=10.0, stable=30.0)
        self.degraded: str | None = None  # why it is not up, while it restarts
        self.restarts = 0  # times it was started again after dying
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._restart_at = 0.0  # loop time of the next start of the zygote, while restarting
        self.restart_wait = restart_wait
        self._plain: set[asyncio.Task[None]] = set()  # readers of pipes not yet at their end
        self._closing = False
        self._ids = itertools.count(1)
        self._listening: dict[str, asyncio.Future[tuple[int, int]]] = {}
        self._by_id: dict[str, Process] = {}
        self._by_pid: dict[int, Process] = {}
        self._forked: set[int] = set()  # pids the zygote forked (they die with it)
        self._forking: set[str] = set()  # ids the zygote was asked to fork, not yet listening
        self._started = asyncio.Event()

    @property
    def running(self) -> bool:
        """Whether the zygote is up (else instances start the slow way)."""
        return (
            self._started.is_set()
            and self._proc is not None
            and self._proc.stdin is not None
            and self._proc.returncode is None
            and self._watcher is not None
            and not self._watcher.done()
        )

    @property
    def zygote_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        self._started.clear()
        self._proc = await asyncio.create_subprocess_exec(
            self.python, "-m", ZYGOTE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self._proc), name="flowhost-launcher-reader")
        self._plain.add(self._reader)  # kept until its pipe ends (a dead zygote's orphans)
        self._reader.add_done_callback(self._plain.discard)
        self._watcher = asyncio.create_task(self._watch(self._proc), name="flowhost-launcher")
        try:
            await asyncio.wait_for(self._started.wait(), timeout=60)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            raise DeployError("the instance launcher did not start within 60s.") from None
        self.backoff.started()

    async def _read(self, zygote: asyncio.subprocess.Process) -> None:
        """Messages of the zygote and its children (who share its pipe, and may outlive it)."""
        assert zygote.stdout is not None
        while line := await zygote.stdout.readline():
            try:
                self._dispatch(json.loads(line))
            except Exception:  # pragma: no cover - a malformed line must not kill the reader
                log.exception("bad launcher message: %r", line[:200])

    async def _watch(self, zygote: asyncio.subprocess.Process) -> None:
        """Notice the zygote's exit (not its pipe's end: its children hold the pipe open)."""
        code = await zygote.wait()
        self._started.clear()  # not running: new instances start the slow way from now
        for ident in list(self._forking):  # never to be forked: those start the slow way
            fut = self._listening.get(ident)
            if fut is not None and not fut.done():
                fut.set_exception(_ZygoteDied())
        for pid in list(self._forked):  # its children die with it (PDEATHSIG: SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # in case the kernel could not say so
            if (proc := self._by_pid.get(pid)) is not None:
                if not proc.ready.done():
                    proc.ready.set_exception(
                        InstanceLost("the instance was lost with its launcher before it was ready.")
                    )
                self._finish(proc, -1)
        self._forked.clear()
        if self._closing or (self._restart is not None and not self._restart.done()):
            return  # stopping, or a restart that failed: its loop tries again
        delay = self.backoff.failed()
        attempt = self.backoff.attempt
        self.degraded = f"{self.name}: restarting after exit {code} (attempt {attempt})"
        log.warning(
            "instance launcher exited; restarting it",
            extra={"fields": {"code": code, "attempt": attempt, "delay": delay}},
        )
        self._restart = asyncio.create_task(self._restart_after(delay), name="flowhost-launcher")

    def _restarting_soon(self) -> bool:
        """Whether the zygote is being started again now, or will be within a second."""
        if self._restart is None or self._restart.done():
            return False
        return self._restart_at - asyncio.get_running_loop().time() < 1.0

    async def _restart_after(self, delay: float) -> None:
        """Start the zygote again after ``delay``; on failure, again with a longer delay."""
        while not self._closing:
            self._restart_at = asyncio.get_running_loop().time() + delay
            await asyncio.sleep(delay)
            try:
                await self.start()
            except (DeployError, OSError) as exc:
                delay = self.backoff.failed()
                attempt = self.backoff.attempt
                self.degraded = f"{self.name}: restart failed ({exc}); retrying (attempt {attempt})"
                log.error("instance launcher failed to restart", extra={"fields": {"delay": delay}})
                continue
            self.restarts += 1
            self.degraded = None
            log.info("instance launcher restarted", extra={"fields": {"restarts": self.restarts}})
            return

    def _finish(self, proc: Process, code: int) -> None:
        self._by_pid.pop(proc.pid, None)
        self._by_id.pop(proc.id, None)
        self._forked.discard(proc.pid)
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
        """Fork an instance (a plain process while the zygote is down); returns once it
        listens (await ``ready`` for readiness)."""
        if self._closing:
            raise DeployError("the platform is stopping; no instance starts now.")
        ident = f"i{next(self._ids)}"
        loop = asyncio.get_running_loop()
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
        line = (json.dumps(cmd) + "\n").encode()
        if not self.running and self._restarting_soon():
            # Its restart pays for the imports anyway: fork from it rather than pay twice
            # (a plain process besides), if it is up within a few seconds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._started.wait(), timeout=self.restart_wait)
        zygote = self._proc if self.running else None
        listening: asyncio.Future[tuple[int, int]] = loop.create_future()
        self._listening[ident] = listening
        if zygote is not None and await self._fork(zygote, ident, line):
            pid, port = await self._listen(ident, listening, 30)
            if zygote.returncode is None:
                proc = self._register(ident, pid, port, log_path)
                self._forked.add(pid)
                return proc
            if pid:  # forked, then the zygote died: the child dies with it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        elif zygote is not None:
            self._listening.pop(ident, None)
        if self._closing:
            raise DeployError("the platform is stopping; no instance starts now.")
        listening = self._listening[ident] = loop.create_future()
        await self._spawn_plain(ident, line)
        pid, port = await self._listen(ident, listening, 90)
        return self._register(ident, pid, port, log_path)

    async def _fork(self, zygote: asyncio.subprocess.Process, ident: str, line: bytes) -> bool:
        """Ask the zygote to fork; False if it died just now (then: the slow way)."""
        assert zygote.stdin is not None
        self._forking.add(ident)
        try:
            zygote.stdin.write(line)
            await zygote.stdin.drain()
        except (ConnectionError, RuntimeError):
            self._forking.discard(ident)
            return False
        return True

    async def _listen(
        self, ident: str, listening: asyncio.Future[tuple[int, int]], seconds: float
    ) -> tuple[int, int]:
        try:
            return await asyncio.wait_for(listening, timeout=seconds)
        except TimeoutError:
            raise DeployError("an instance did not open its port in time.") from None
        except _ZygoteDied:
            return (0, 0)  # the caller sees the zygote gone and starts it the slow way
        finally:
            self._listening.pop(ident, None)
            self._forking.discard(ident)

    def _register(self, ident: str, pid: int, port: int, log_path: Path) -> Process:
        loop = asyncio.get_running_loop()
        proc = Process(ident, pid, port, log_path, loop.create_future(), loop.create_future())
        proc.ready.add_done_callback(lambda f: f.exception())  # consumed even if nobody waits
        self._by_id[ident] = proc
        self._by_pid[pid] = proc
        return proc

    async def _spawn_plain(self, ident: str, line: bytes) -> None:
        """Start one instance as its own process (the zygote is down)."""
        log.warning("instance launcher is down; starting an instance the slow way")
        sub = await asyncio.create_subprocess_exec(
            self.python, "-m", ZYGOTE, "--single",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        assert sub.stdin is not None
        sub.stdin.write(line)
        with contextlib.suppress(ConnectionError):
            await sub.stdin.drain()
        sub.stdin.close()
        task = asyncio.create_task(self._read_plain(ident, sub), name=f"flowhost-{ident}")
        self._plain.add(task)
        task.add_done_callback(self._plain.discard)

    async def _read_plain(self, ident: str, sub: asyncio.subprocess.Process) -> None:
        assert sub.stdout is not None
        while line := await sub.stdout.readline():
            try:
                self._dispatch(json.loads(line))
            except Exception:  # pragma: no cover - a malformed line must not kill the reader
                log.exception("bad instance message: %r", line[:200])
        code = await sub.wait()
        fut = self._listening.pop(ident, None)
        if fut is not None and not fut.done():
            fut.set_exception(DeployError(f"the instance exited with code {code} at start."))
        if (proc := self._by_pid.get(sub.pid)) is not None:
            self._finish(proc, code)

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
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
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
        if self._watcher is not None:
            await self._watcher
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):  # an orphan of a dead zygote holds its pipe
                await asyncio.wait_for(asyncio.shield(self._reader), timeout=5)
        await asyncio.gather(*self._plain, return_exceptions=True)

"""The instance launcher supervised: a SIGKILLed zygote is started again with growing
delays and says so meanwhile, and an instance asked for while it is down starts as a
plain process (the slow way) and serves."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from flowhost.lambdas.local.backoff import Backoff
from flowhost.lambdas.local.launcher import Launcher
from flowhost.services.runtime.settings import RuntimeSettings

SERVICES = Path(__file__).resolve().parents[2] / "e2e" / "services"


async def until(what: str, check: Callable[[], bool], seconds: float = 60.0) -> None:
    """Poll ``check`` (the launcher's state has no event to wait on) until it holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_killed_zygote_is_restarted_with_growing_delays() -> None:
    async def main() -> list[str | None]:
        launcher = Launcher(backoff=Backoff(base=0.2, cap=1.0, stable=600.0))
        await launcher.start()
        seen: list[str | None] = []
        try:
            for attempt in (1, 2):
                pid = launcher.zygote_pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                await until("the exit to be seen", lambda: launcher.degraded is not None)
                seen.append(launcher.degraded)
                assert not launcher.running
                await until("the restart", lambda: launcher.running)
                assert launcher.degraded is None
                assert launcher.restarts == attempt
                assert launcher.zygote_pid not in (None, pid)
            assert launcher.backoff.attempt == 2  # it never stayed up 600 s: no reset
        finally:
            await launcher.close()
        return seen

    assert asyncio.run(main()) == [
        "launcher: restarting after exit -9 (attempt 1)",
        "launcher: restarting after exit -9 (attempt 2)",
    ]


def test_an_instance_starts_the_slow_way_while_the_zygote_is_down(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, str]:
        # Its restart is 30 s away and nothing waits for it: starts go the slow way.
        launcher = Launcher(backoff=Backoff(base=30.0, cap=30.0), restart_wait=0.0)
        await launcher.start()
        try:
            zygote = launcher.zygote_pid
            assert zygote is not None
            os.kill(zygote, signal.SIGKILL)
            await until("the exit to be seen", lambda: not launcher.running)
            proc = await launcher.spawn(
                code_dir=SERVICES, entrypoint="whoami.py:WhoAmI", settings=RuntimeSettings(),
                log_path=tmp_path / "whoami.log",
            )  # fmt: skip
            await asyncio.wait_for(proc.ready, 60)
            cmdline = await asyncio.to_thread(Path(f"/proc/{proc.pid}/cmdline").read_bytes)
            async with httpx.AsyncClient(trust_env=False) as http:
                answer = await http.post(f"http://127.0.0.1:{proc.port}/pid", json={})
            assert answer.json() == {"pid": proc.pid}
            code = await launcher.stop(proc, grace=10)
            return answer.status_code, code, cmdline.replace(b"\0", b" ").decode()
        finally:
            await launcher.close()

    status, code, cmdline = asyncio.run(main())
    assert status == 200
    assert code in (0, -signal.SIGTERM)  # stopped by the SIGTERM it was sent (uvicorn re-raises it)
    assert cmdline.endswith("-m flowhost.lambdas.local.zygote --single ")

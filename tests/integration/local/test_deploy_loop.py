"""The local platform's deploy loop through a state DB outage: one warning when it
starts, one line when the DB answers again, no traceback per tick."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from flowhost.errors import StateUnavailableError
from flowhost.lambdas.local.platform import LocalPlatform, PlatformSettings


def test_an_outage_is_said_once_and_its_end_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    platform = LocalPlatform(
        PlatformSettings(home=tmp_path, deploy_tick=0.01, deploy_idle_tick=0.01)
    )
    calls = 0

    async def advance() -> int:
        nonlocal calls
        calls += 1
        if calls <= 20:
            raise StateUnavailableError("the state database is not answering")
        return 0

    platform.deployments.advance = advance  # type: ignore[method-assign]

    async def run() -> None:
        loop = asyncio.create_task(platform._advance_deploys())  # pyright: ignore[reportPrivateUsage]
        while calls < 30:  # noqa: ASYNC110  (a bounded poll of a counter)
            await asyncio.sleep(0.01)
        loop.cancel()

    with caplog.at_level(logging.INFO, logger="flowhost.platform"):
        asyncio.run(asyncio.wait_for(run(), timeout=10))
    records = [r for r in caplog.records if "advancing deploys" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "advancing deploys paused"),
        ("INFO", "advancing deploys again: the state DB answers"),
    ]
    assert not any(r.exc_info for r in records)
    platform.store.close()

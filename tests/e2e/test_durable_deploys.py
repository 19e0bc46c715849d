"""Deploys outlive ``flowhost up``: killed mid-deploy and started again on the same home,
the platform finishes the deploy it had begun, or fails it if its deadline passed while
it was down, leaving production as it was."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.services.loader import load_service
from flowhost.services.packaging import build_package
from flowhost.services.spec import definition_of
from tests.e2e.harness import SERVICES, Platform, start_platform
from tests.integration.support import poll

SLOW = SERVICES / "slow_start.py"
DELAY_FILE = "FLOWHOST_E2E_START_DELAY_FILE"  # read by slow_start.py's initialize
STARTING = "starting the first instance"


class Platforms:
    """``flowhost up`` processes of one test. At teardown each is stopped, and then its
    process group (the launcher and instances it forked) is killed, even after a crash."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.started: list[Platform] = []

    def start(self, home: Path, *options: str, port: int | None = None) -> Platform:
        platform = start_platform(*options, home=home, env=self.env, log_dir=self.logs, port=port)
        self.started.append(platform)
        return platform

    def stop_all(self) -> None:
        for platform in self.started:
            platform.stop()
            with contextlib.suppress(ProcessLookupError):  # started with a session of its own
                os.killpg(platform.process.pid, signal.SIGKILL)


@pytest.fixture
def delay(tmp_path: Path) -> Path:
    """The file holding the seconds slow_start.py's ``initialize`` sleeps."""
    return tmp_path / "start-delay"


@pytest.fixture
def platforms(base_env: dict[str, str], platform_logs: Path, delay: Path) -> Iterator[Platforms]:
    started = Platforms({**base_env, DELAY_FILE: str(delay)}, platform_logs)
    try:
        yield started
    finally:
        started.stop_all()


def post_deploy(platform: Platform, service: Path, *, promote: bool) -> dict[str, Any]:
    """Upload the package and post the deploy, as the client does, without waiting: the
    API answers 202 with the version still deploying."""
    definition = definition_of(load_service(str(service)))
    digest, archive = build_package(service.parent)
    uploaded = platform.client.http.put(f"/api/packages/{digest}", content=archive)
    assert uploaded.status_code in (200, 201), uploaded.text
    body = {"definition": definition.model_dump(mode="json"), "package_digest": digest,
            "promote": promote}  # fmt: skip
    posted = platform.client.http.post(f"/api/services/{definition.name}/versions", json=body)
    assert posted.status_code == 202, posted.text
    version = posted.json()
    assert version["status"] == "deploying", version
    return version


def version_of(platform: Platform, number: int) -> dict[str, Any]:
    platform.check_alive()
    return platform.client.version("slowstart", number)


def wait_starting(platform: Platform, number: int) -> dict[str, Any]:
    """Poll until the deploy has begun its first instance; it must still be deploying."""

    def begun() -> dict[str, Any] | None:
        version = version_of(platform, number)
        assert version["status"] == "deploying", version  # too quick: the kill comes too late
        return version if STARTING in version["progress"] else None

    return poll(f"slowstart v{number} to start its first instance", begun, timeout=30)


def wait_finished(platform: Platform, number: int, timeout: float) -> dict[str, Any]:
    """Poll until the deploy (which asked to promote) is done: promoted, or failed."""

    def finished() -> dict[str, Any] | None:
        version = version_of(platform, number)
        last: str = version["progress"][-1]
        done = last.startswith(("promoted to ", "not promoted: ", "failed: "))
        return version if done and version["status"] != "deploying" else None

    return poll(f"slowstart v{number} to finish deploying", finished, timeout=timeout)


def kill(platform: Platform) -> None:
    """Stop ``flowhost up`` abruptly: SIGKILL, no shutdown at all."""
    platform.process.send_signal(signal.SIGKILL)
    assert platform.process.wait(10) == -signal.SIGKILL
    platform.http.close()
    platform.client.close()


def hello(platform: Platform, target: str) -> httpx.Response:
    return platform.http.post(f"/{target}/hello", json={})


@pytest.mark.timeout(180)
def test_a_deploy_under_way_finishes_after_the_platform_is_killed_and_started_again(
    platforms: Platforms, delay: Path, tmp_path: Path
) -> None:
    delay.write_text("6")
    home = tmp_path / "home"
    first = platforms.start(home)
    recorded = post_deploy(first, SLOW, promote=True)
    assert recorded["number"] == 1
    assert recorded["progress"][0].startswith("recorded slowstart v1"), recorded
    before = wait_starting(first, 1)["progress"]

    kill(first)
    second = platforms.start(home, port=first.port)
    done = wait_finished(second, 1, timeout=60)

    assert done["status"] == "ready", done
    assert done["error"] is None
    progress: list[str] = done["progress"]
    assert progress[: len(before)] == before, progress  # what was said before the kill stays
    assert progress[len(before) :] == ["ready", "promoted to production"], progress
    assert second.service("slowstart")["aliases"] == {"production": 1}

    response = hello(second, "slowstart")
    assert response.status_code == 200, response.text
    assert response.headers["x-flowhost-version"] == "v1"
    assert response.json()["slept"] == 6.0  # the version's own code, started again


@pytest.mark.timeout(180)
def test_a_deploy_whose_deadline_passes_while_the_platform_is_down_fails_on_restart(
    platforms: Platforms, delay: Path, tmp_path: Path
) -> None:
    timeout = 8.0
    delay.write_text("0")
    home = tmp_path / "home"
    first = platforms.start(home, "--deploy-timeout", f"{timeout:g}")
    post_deploy(first, SLOW, promote=True)
    assert wait_finished(first, 1, timeout=30)["progress"][-1] == "promoted to production"
    assert first.service("slowstart")["aliases"] == {"production": 1}

    delay.write_text("600")  # v2 cannot start in time
    post_deploy(first, SLOW, promote=True)
    recorded_by = time.monotonic()
    before = wait_starting(first, 2)["progress"]
    kill(first)
    # Down past the deadline (recorded before recorded_by, plus the timeout). Quick again,
    # so a platform that began v2 anew would see it ready rather than failed.
    time.sleep(max(0.0, recorded_by + timeout + 1.0 - time.monotonic()))
    delay.write_text("0")

    second = platforms.start(home, port=first.port)  # the default deploy timeout now
    failed = wait_finished(second, 2, timeout=30)

    assert failed["status"] == "failed", failed
    error: str = failed["error"]
    assert error.startswith("slowstart@v2: not running by its deadline "), error
    assert " UTC (got " in error
    assert "give deploys more time (the deploy timeout)" in error
    assert failed["progress"][: len(before)] == before
    assert failed["progress"][len(before) :] == [f"failed: {error}"], failed["progress"]

    info = second.service("slowstart")
    assert info["aliases"] == {"production": 1}
    assert "v2" not in info["instances"]
    events = [(e["kind"], e["version"]) for e in second.client.events("slowstart")]
    assert ("deploy_failed", 2) in events
    assert ("promote", 2) not in events

    response = hello(second, "slowstart")
    assert response.status_code == 200, response.text
    assert response.headers["x-flowhost-version"] == "v1"
    pinned = hello(second, "slowstart@v2")
    assert pinned.status_code == 404, pinned.text

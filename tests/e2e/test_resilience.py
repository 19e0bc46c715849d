"""``flowhost up`` stopped and started again, and an instance killed under it."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import pytest

from tests.e2e.harness import EXAMPLE, SERVICES, PlatformFactory, accepts_connections
from tests.integration.support import poll


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_restart_restores_versions_and_aliases(
    launch: PlatformFactory, sig: signal.Signals
) -> None:
    first = launch()
    first.deploy(EXAMPLE, promote=True)
    first.deploy(SERVICES / "sentiment_v2.py", promote=True)
    ports = [p for n in (1, 2) for p in first.instances("sentiment", n)["ports"]]
    assert len(ports) == 2
    assert all(accepts_connections(p) for p in ports)

    assert first.stop(sig) in (0, 128 + sig, -sig)  # exits as stopped by that signal
    assert not accepts_connections(first.port)
    assert [p for p in ports if accepts_connections(p)] == []  # its instances went with it
    log = first.log()
    assert "instance exited unexpectedly" not in log  # the platform stopped them on purpose
    assert '"message": "Application shutdown complete."' in log

    second = launch(home=first.home, port=first.port)
    info = second.service("sentiment")
    assert info["aliases"] == {"production": 2}
    assert [(v["number"], v["status"]) for v in info["versions"]] == [(1, "ready"), (2, "ready")]
    # min_instances is 0: nothing runs until a request arrives, which is held meanwhile
    assert info["instances"]["v2"] == {
        "ready": 0, "starting": 0, "in_flight": 0, "queued": 0, "ports": []
    }  # fmt: skip

    production = second.http.post("/sentiment/predict", json={"text": "great"})
    assert production.status_code == 200, production.text
    assert production.headers["x-flowhost-version"] == "v2"
    assert production.json()["model"] == "naive-bayes-v2"
    pinned = second.http.post("/sentiment@v1/predict", json={"text": "great"})
    assert pinned.status_code == 200, pinned.text
    assert pinned.headers["x-flowhost-version"] == "v1"
    assert second.client.rollback("sentiment")["version"] == 1  # the alias history came back


def test_killed_instance_is_replaced(launch: PlatformFactory) -> None:
    platform = launch("--scaler-tick", "0.1")
    platform.deploy(SERVICES / "whoami.py", promote=True)  # min_instances=1
    [port] = platform.wait_instances("whoami", 1, ready=1)["ports"]
    victim = platform.http.post("/whoami/pid", json={}).json()["pid"]

    os.kill(victim, signal.SIGKILL)

    def replaced() -> dict[str, Any] | None:
        platform.check_alive()
        info = platform.instances("whoami", 1)
        return info if info["ready"] == 1 and info["ports"] != [port] else None

    poll("a new whoami instance", replaced, timeout=20)
    responses = [platform.http.post("/whoami/pid", json={}) for _ in range(20)]
    assert [r.status_code for r in responses] == [200] * 20
    pids = {r.json()["pid"] for r in responses}
    assert len(pids) == 1
    assert victim not in pids
    assert not accepts_connections(port)


def test_wedged_instance_is_replaced(launch: PlatformFactory) -> None:
    platform = launch("--scaler-tick", "0.1", "--health-interval", "0.2")
    platform.deploy(SERVICES / "whoami.py", promote=True)  # min_instances=1
    [port] = platform.wait_instances("whoami", 1, ready=1)["ports"]
    victim = platform.http.post("/whoami/pid", json={}).json()["pid"]

    os.kill(victim, signal.SIGSTOP)  # alive, but answers nothing: only health checks see it
    try:

        def replaced() -> dict[str, Any] | None:
            platform.check_alive()
            info = platform.instances("whoami", 1)
            return info if info["ready"] == 1 and info["ports"] != [port] else None

        poll("the wedged instance to be replaced", replaced, timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    answer = platform.http.post("/whoami/pid", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json()["pid"] != victim
    assert "instance failed its health checks" in platform.log()

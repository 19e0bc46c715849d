"""The scaler of ``flowhost up``: scale to zero and back, and out under concurrent load.

The platform runs with short timers (``--scaler-tick``, ``--scale-down-window``).
"""

from __future__ import annotations

import time

from tests.e2e.harness import SERVICES, Load, PlatformFactory, accepts_connections
from tests.integration.support import poll

FAST_SCALER = ("--scaler-tick", "0.1", "--scale-down-window", "1")


def test_scales_to_zero_then_holds_a_request_while_one_starts(launch: PlatformFactory) -> None:
    platform = launch(*FAST_SCALER)
    version = platform.deploy(SERVICES / "napper.py", promote=True)
    assert version["definition"]["scaling"]["idle_timeout"] == 2.0
    [port] = platform.wait_instances("napper", 1, ready=1)["ports"]
    assert platform.http.post("/napper/wake", json={}).status_code == 200
    idle_since = time.monotonic()

    platform.wait_instances("napper", 1, ready=0, timeout=15)
    assert time.monotonic() - idle_since > 1.5  # kept warm for its idle_timeout (2s)
    assert platform.instances("napper", 1)["ports"] == []
    poll("the idle instance to exit", lambda: not accepts_connections(port) or None, 10)

    response = platform.http.post("/napper/wake", json={})

    assert response.status_code == 200, response.text  # held, not refused with a 503
    assert response.headers["x-flowhost-version"] == "v1"
    info = platform.instances("napper", 1)
    assert (info["ready"], info["starting"]) == (1, 0)
    assert info["ports"] != [port]
    assert accepts_connections(info["ports"][0])


def test_scales_out_under_concurrent_load(launch: PlatformFactory) -> None:
    platform = launch(*FAST_SCALER)
    platform.deploy(SERVICES / "whoami.py", promote=True)  # 0.3s per request, 1 per instance
    platform.wait_instances("whoami", 1, ready=1)
    peak = 1

    with Load(platform.url, "/whoami/work", {}, threads=6, limit=200) as load:

        def scaled_out() -> int | None:
            nonlocal peak
            peak = max(peak, platform.instances("whoami", 1)["ready"])
            pids = {r[3]["pid"] for r in list(load.records) if r[1] == 200}
            return peak if peak > 1 and len(pids) > 1 and load.count() >= 30 else None

        poll("whoami to scale past one instance", scaled_out, timeout=20)

    records = list(load.records)
    assert [r for r in records if r[1] != 200] == []
    assert 1 < peak <= 3
    served_by = {r[3]["pid"] for r in records}
    assert 1 < len(served_by) <= 3  # spread across instances, never past max_instances

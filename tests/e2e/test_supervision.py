"""Every process ``flowhost up`` depends on is supervised: the instance launcher (the
pre-imported zygote) killed with SIGKILL is started again, instances start the slow way
meanwhile, queued async jobs all complete once, and ``/api/healthz`` and ``flowhost
status`` say what is degraded while it lasts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import SERVICES, Platform, PlatformFactory
from tests.integration.support import poll, run_flowhost

JOBS = SERVICES / "jobs.py"
FAST = (
    "--async-visibility", "1", "--async-retry-backoff", "0.1", "--async-attempts", "3",
    "--sweep-interval", "0.1", "--scaler-tick", "0.1",
)  # fmt: skip
ZYGOTE = "flowhost.lambdas.local.zygote"


def children(pid: int) -> dict[int, str]:
    """The direct children of ``pid`` and their command lines (from /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found[int(entry.name)] = cmdline
    return found


def launcher_pid(platform: Platform) -> int | None:
    zygotes = [
        pid
        for pid, cmd in children(platform.process.pid).items()
        if ZYGOTE in cmd and "--single" not in cmd
    ]
    return zygotes[0] if len(zygotes) == 1 else None


def health(platform: Platform) -> dict[str, Any]:
    response = platform.http.get("/api/healthz")
    assert response.status_code == 200, response.text
    return response.json()


def runs(traces: Path, tag: str) -> list[int]:
    path = traces / tag
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    path = tmp_path / "traces"
    path.mkdir()
    return path


def test_a_killed_launcher_is_restarted_and_queued_jobs_complete_once(
    launch: PlatformFactory, traces: Path
) -> None:
    platform = launch(*FAST, env={"JOBS_TRACE_DIR": str(traces)})
    platform.deploy(JOBS, promote=True)
    assert health(platform)["status"] == "ok"
    assert "degraded" not in health(platform)
    ids = [
        platform.http.post("/jobs/slow/async", json={"tag": f"j{i}", "seconds": 0.5}).json()["id"]
        for i in range(8)
    ]
    poll("a job to start", lambda: runs(traces, "j0") or None, 30)
    zygote = poll("the launcher's pid", lambda: launcher_pid(platform), 10)

    os.kill(zygote, signal.SIGKILL)

    def degraded() -> list[str] | None:
        doc = health(platform)
        return doc["degraded"] if doc["status"] == "degraded" else None

    reasons = poll("/api/healthz to report the launcher down", degraded, 10)
    assert any(r.startswith("launcher: restarting after exit -9 (attempt 1)") for r in reasons)

    def answered() -> dict[str, Any] | None:
        r = platform.http.post("/jobs/echo", json={"text": "back"})
        return r.json() if r.status_code == 200 else None

    assert poll("the service to answer again", answered, 15)["text"] == "back"

    for request_id in ids:

        def done(request_id: str = request_id) -> dict[str, Any] | None:
            doc = platform.http.get(f"/requests/{request_id}").json()
            return doc if doc["status"] in ("succeeded", "failed", "expired") else None

        assert poll(f"request {request_id} to finish", done, 60)["status"] == "succeeded"
        results = list((platform.home / "objects" / "async" / "jobs" / request_id).glob("result-*"))
        assert len(results) == 1, request_id  # exactly one result per job
    assert all(runs(traces, f"j{i}") for i in range(8))

    poll("/api/healthz to say ok", lambda: health(platform)["status"] == "ok" or None, 20)
    restarted = poll("a new launcher", lambda: launcher_pid(platform), 10)
    assert restarted != zygote
    assert "instance launcher restarted" in platform.log()


def test_instances_start_the_slow_way_while_the_launcher_is_down(
    launch: PlatformFactory, base_env: dict[str, str]
) -> None:
    platform = launch("--scaler-tick", "0.1")
    platform.deploy(SERVICES / "whoami.py", promote=True)  # min_instances=1
    platform.wait_instances("whoami", 1, ready=1)
    victim = platform.http.post("/whoami/pid", json={}).json()["pid"]
    zygote = poll("the launcher's pid", lambda: launcher_pid(platform), 10)

    os.kill(zygote, signal.SIGKILL)  # its instance dies with it, and is replaced at once
    # The launcher's restart is held (stopped while it imports), so the replacement cannot
    # wait for it: after a bounded wait it starts as a plain process.
    restarted = poll("the launcher's restart", lambda: launcher_pid(platform), 10)
    os.kill(restarted, signal.SIGSTOP)
    try:

        def plain() -> int | None:
            singles = [
                pid for pid, cmd in children(platform.process.pid).items() if "--single" in cmd
            ]
            return singles[0] if singles else None

        poll("an instance started as a plain process", plain, 20)
        platform.wait_instances("whoami", 1, ready=1, timeout=30)
        assert "launcher: restarting after exit -9 (attempt 1)" in health(platform)["degraded"]
        shown = run_flowhost("status", "whoami", "--url", platform.url, env=base_env)
        assert shown.returncode == 0, shown.stderr
        assert "platform degraded: launcher: restarting after exit -9 (attempt 1)" in shown.stdout
    finally:
        os.kill(restarted, signal.SIGCONT)
    answer = platform.http.post("/whoami/pid", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json()["pid"] != victim

    poll("/api/healthz to say ok", lambda: health(platform)["status"] == "ok" or None, 20)
    shown = run_flowhost("status", "whoami", "--url", platform.url, env=base_env)
    assert shown.returncode == 0, shown.stderr
    assert "v1" in shown.stdout
    assert "platform degraded" not in shown.stdout

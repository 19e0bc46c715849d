"""What the kill trials share: ``flowhost up`` with ``tests/e2e/services/jobs.py``
deployed, in a temporary home on a free 127.0.0.1 port, the calls the trials make, and
what the platform leaves on disk. Every process started here is killed (its group and
every descendant) when the trial ends, fails or the interpreter exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import ROOT, STARTED, descendants, free_port, proc_stats

from flowhost.client import Client

__all__ = ["FAST", "JOBS", "Bench", "Calls", "Trial", "Up", "kill_tree", "wait_for"]

HOST = "127.0.0.1"
FLOWHOST = str(Path(sys.executable).with_name("flowhost"))
JOBS = ROOT / "tests" / "e2e" / "services" / "jobs.py"
FAST = (
    "--async-visibility", "2", "--async-retry-backoff", "0.1", "--sweep-interval", "0.1",
    "--scaler-tick", "0.1",
)  # fmt: skip
FINAL = ("succeeded", "failed", "expired")


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
    return value


def kill_tree(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Up:
    """One ``flowhost up`` on loopback; ``close`` kills it and everything it started."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    seen: set[int] = field(default_factory=set[int])  # every descendant ever seen

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        with (self.home.parent / f"up-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [FLOWHOST, "up", "--home", str(self.home), "--port", str(self.port), *FAST],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=ROOT,
            )  # fmt: skip
        STARTED.append(self.proc)  # stopped at exit, even when interrupted
        wait_for("flowhost up to answer", self._healthy, 90)

    def _healthy(self) -> bool | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"flowhost up exited with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.url}/api/healthz", timeout=2).status_code == 200 or None
        except httpx.HTTPError:
            return None

    def children(self) -> set[int]:
        assert self.proc is not None
        found = descendants(self.proc.pid, proc_stats()) - {self.proc.pid}
        self.seen |= found
        return found

    def launcher(self) -> int | None:
        """The zygote: the child of ``flowhost up`` running the launcher module."""
        assert self.proc is not None
        for pid in self.children():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            zygote = b"flowhost.lambdas.local.zygote" in cmd and b"--single" not in cmd
            if ppid == self.proc.pid and zygote:
                return pid
        return None

    def kill9(self) -> None:
        """SIGKILL ``flowhost up`` alone (its children are left to notice)."""
        assert self.proc is not None
        self.children()
        self.proc.kill()  # flowhost up alone
        self.proc.wait(10)
        if self.proc in STARTED:
            STARTED.remove(self.proc)
        # Children go by PDEATHSIG (SIGTERM); whatever lingers after 15 s is killed.
        with contextlib.suppress(TimeoutError):
            wait_for("children to go", lambda: self._gone() or None, 15, 0.1)
        kill_tree(self.seen)

    def _gone(self) -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in self.seen)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.children()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.proc is not None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        kill_tree(self.seen)
        if self.proc in STARTED:
            STARTED.remove(self.proc)


@dataclass
class Trial:
    kind: str
    index: int
    ok: bool = False
    recovery: float | None = None  # seconds until the service answered again
    jobs: int = 0
    lost: int = 0  # jobs not succeeded
    results: list[int] = field(default_factory=list[int])  # results stored per job
    failed_calls: int = 0  # sync calls answered other than 200 (or not at all)
    note: str = ""


class Bench:
    """A trial's platform, its client calls and what it leaves on disk."""

    def __init__(self, root: Path) -> None:
        self.traces = root / "traces"
        self.traces.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "FLOWHOST_"))}
        env.update(
            JOBS_TRACE_DIR=str(self.traces), METAFLOW_HOME=str(root / "metaflow"),
            METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root / "datastore"), NO_COLOR="1",
            PYTHONUNBUFFERED="1",
        )  # fmt: skip
        self.up = Up(root / "home", env)
        self.http: httpx.Client | None = None

    def start(self) -> None:
        self.up.start()
        self.http = httpx.Client(base_url=self.up.url, timeout=30, trust_env=False)

    def deploy(self) -> None:
        with Client(self.up.url, actor="fault-trials") as client:
            client.deploy(str(JOBS), promote=True, timeout=120)

    def submit(self, count: int, seconds: float, prefix: str) -> list[str]:
        assert self.http is not None
        ids: list[str] = []
        for i in range(count):
            body = {"tag": f"{prefix}{i}", "seconds": seconds}
            r = self.http.post("/jobs/slow/async", json=body)
            if r.status_code != 202:
                raise RuntimeError(f"submit answered {r.status_code}: {r.text[:200]}")
            ids.append(r.json()["id"])
        return ids

    def running_pid(self, prefix: str) -> int | None:
        for path in sorted(self.traces.glob(f"{prefix}*")):
            pids = path.read_text().split()
            if pids:
                return int(pids[-1])
        return None

    def settle(self, trial: Trial, ids: list[str], timeout: float = 120) -> None:
        assert self.http is not None
        http = self.http

        def status(request_id: str) -> str | None:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                return str(http.get(f"/requests/{request_id}").json()["status"])
            return None

        deadline = time.monotonic() + timeout
        final: dict[str, str] = {}
        while len(final) < len(ids) and time.monotonic() < deadline:
            for request_id in ids:
                if request_id not in final and (s := status(request_id)) in FINAL:
                    final[request_id] = s
            time.sleep(0.1)
        trial.jobs = len(ids)
        trial.lost = sum(1 for i in ids if final.get(i) != "succeeded")
        trial.results = [self.results(i) for i in ids]

    def results(self, request_id: str) -> int:
        folder = self.up.home / "objects" / "async" / "jobs" / request_id
        return len(list(folder.glob("result-*")))

    def echo_pid(self, timeout: float = 30) -> int | None:
        assert self.http is not None
        try:
            r = self.http.post("/jobs/echo", json={"text": "x"}, timeout=timeout)
        except httpx.HTTPError:
            return None
        return int(r.json()["pid"]) if r.status_code == 200 else None

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.up.close()


class Calls(threading.Thread):
    """Sync calls back to back during a trial: counts those not answered 200."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.failed, self.answered = url, 0, 0
        self.why: dict[str, int] = {}  # how calls failed: status and error code, or exception
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as http:
            while not self.stop.is_set():
                try:
                    r = http.post("/jobs/echo", json={"text": "x"})
                    ok = r.status_code == 200
                    why = "" if ok else f"{r.status_code} {r.text[:80]}"
                except httpx.HTTPError as exc:
                    ok, why = False, type(exc).__name__
                if not ok:
                    self.why[why] = self.why.get(why, 0) + 1
                self.answered += ok
                self.failed += not ok

    def __enter__(self) -> Calls:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(35)

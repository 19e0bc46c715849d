"""kill -9 trials: an instance mid async job, the launcher, every child of ``flowhost
up``, and ``flowhost up`` itself (mid-deploy and mid-async-burst), with figures.

Each trial starts its own ``flowhost up`` (a fresh home under a temporary directory, a
free 127.0.0.1 port) with ``tests/e2e/services/jobs.py`` deployed (``slow`` naps and
leaves the pid of each run in a trace file; ``echo`` answers with its pid), so one
trial's restarts and backoff never carry into the next. Async timers are shortened
(``--async-visibility 2``, retries after 0.1 s, sweeps every 0.1 s); attempts stay at
the default 3.

Kinds and goals:

- ``instance`` (20): SIGKILL the instance running an async job; every job succeeds
  (lost: 0) with exactly one result stored each.
- ``launcher`` (10): SIGKILL the launcher (the pre-imported zygote) during a burst of
  sync calls and async jobs; seconds until an instance started after the kill answers
  (goal < 5 s); jobs lost 0, one result each.
- ``children`` (10): the same, SIGKILL every descendant of ``flowhost up`` at once.
- ``up-deploy`` (10): SIGKILL ``flowhost up`` while v2 deploys (promote), start it again
  on the same home: v1 stays ready, v2 ends ready and production, no version lost or
  doubled, production answers.
- ``up-async`` (10): SIGKILL ``flowhost up`` mid-burst of async jobs, start it again:
  every job succeeds, with exactly one result each.

Everything is bounded (``--timeout`` for the whole run) and every process started is
killed, whole process group and descendants, when a trial ends or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import ROOT, STARTED, descendants, free_port, proc_stats

from flowhost.client import Client

NAME = "kills"
HELP = "kill -9 an instance, the launcher, every child, or flowhost up itself."

HOST = "127.0.0.1"
FLOWHOST = str(Path(sys.executable).with_name("flowhost"))
JOBS = ROOT / "tests" / "e2e" / "services" / "jobs.py"
FAST = (
    "--async-visibility", "2", "--async-retry-backoff", "0.1", "--sweep-interval", "0.1",
    "--scaler-tick", "0.1",
)  # fmt: skip
KINDS: dict[str, int] = {
    "instance": 20, "launcher": 10, "children": 10, "up-deploy": 10, "up-async": 10,
}  # fmt: skip
FINAL = ("succeeded", "failed", "expired")
LOGS = Path(tempfile.gettempdir()) / "flowhost-fault-logs"


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


def trial_instance(bench: Bench, trial: Trial) -> None:
    ids = bench.submit(4, 1.0, "i")
    victim = wait_for("a job to run", lambda: bench.running_pid("i"), 60)
    os.kill(victim, signal.SIGKILL)
    bench.settle(trial, ids)


def _burst_then_kill(bench: Bench, trial: Trial, kill: Callable[[], set[int]]) -> None:
    before = {bench.echo_pid()}
    ids = bench.submit(8, 0.5, "b")
    wait_for("a job to run", lambda: bench.running_pid("b"), 60)
    with Calls(bench.up.url) as calls:
        time.sleep(0.3)
        gone = kill() | before
        killed_at = time.monotonic()

        def answered() -> bool | None:  # by an instance started after the kill
            pid = bench.echo_pid(timeout=10)
            return (pid is not None and pid not in gone) or None

        wait_for("the service to answer again", answered, 60, 0.02)
        trial.recovery = time.monotonic() - killed_at
        time.sleep(0.5)
    trial.failed_calls = calls.failed
    if calls.why:
        trial.note = "; ".join(f"{n}x {why}" for why, n in calls.why.items())[:300]
    bench.settle(trial, ids)


def trial_launcher(bench: Bench, trial: Trial) -> None:
    def kill() -> set[int]:
        zygote = wait_for("the launcher", bench.up.launcher, 10)
        instances = bench.up.children() - {zygote}
        os.kill(zygote, signal.SIGKILL)
        return instances

    _burst_then_kill(bench, trial, kill)


def trial_children(bench: Bench, trial: Trial) -> None:
    def kill() -> set[int]:
        everyone = bench.up.children()
        kill_tree(everyone)
        return everyone

    _burst_then_kill(bench, trial, kill)


def trial_up_deploy(bench: Bench, trial: Trial) -> None:
    with Client(bench.up.url, actor="fault-trials") as client:
        from flowhost.services.loader import load_service
        from flowhost.services.packaging import build_package
        from flowhost.services.spec import definition_of

        definition = definition_of(load_service(str(JOBS)))
        digest, archive = build_package(JOBS.parent)
        client.request("PUT", f"/api/packages/{digest}", content=archive)
        body = {"definition": definition.model_dump(mode="json"), "package_digest": digest,
                "promote": True}  # fmt: skip
        client.request("POST", "/api/services/jobs/versions", json=body)
    time.sleep(random.uniform(0.0, 1.5))  # somewhere in its start
    bench.up.kill9()
    bench.start()
    assert bench.http is not None
    http = bench.http

    def settled() -> dict[str, Any] | None:
        info = http.get("/api/services/jobs").json()
        states = [v["status"] for v in info["versions"]]
        return info if "deploying" not in states else None

    info = wait_for("v2 to finish deploying", settled, 120, 0.2)
    versions = [(v["number"], v["status"]) for v in info["versions"]]
    trial.jobs = 2  # versions accounted for
    trial.lost = sum(1 for n in (1, 2) if (n, "ready") not in versions)
    trial.results = [sum(1 for v, _ in versions if v == n) for n in (1, 2)]
    answer = http.post("/jobs/echo", json={"text": "x"})
    trial.failed_calls = int(answer.status_code != 200)
    trial.note = f"production->v{info['aliases'].get('production')}"
    if info["aliases"].get("production") != 2:
        trial.lost += 1


def trial_up_async(bench: Bench, trial: Trial) -> None:
    ids = bench.submit(16, 0.3, "a")
    wait_for("a job to run", lambda: bench.running_pid("a"), 60)
    time.sleep(random.uniform(0.2, 1.5))
    bench.up.kill9()
    bench.start()
    bench.settle(trial, ids)


RUNNERS: dict[str, Callable[[Bench, Trial], None]] = {
    "instance": trial_instance, "launcher": trial_launcher, "children": trial_children,
    "up-deploy": trial_up_deploy, "up-async": trial_up_async,
}  # fmt: skip


def one(kind: str, index: int) -> Trial:
    trial = Trial(kind, index)
    failed = False
    with tempfile.TemporaryDirectory(prefix=f"flowhost-fault-{kind}-") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.start()
            bench.deploy()
            RUNNERS[kind](bench, trial)
        except Exception as exc:  # the trial fails; the run goes on
            failed = True
            trial.note = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            bench.close()
        trial.ok = (
            not failed
            and trial.lost == 0
            and all(n == 1 for n in trial.results)
            and (trial.recovery is None or trial.recovery < 5.0)
        )
        if not trial.ok:  # keep the platform's log of a trial that missed its goal
            LOGS.mkdir(parents=True, exist_ok=True)
            kept = LOGS / f"{kind}-{index}-{int(time.time())}.log"
            kept.write_bytes(b"".join(p.read_bytes() for p in Path(tmp).glob("up-*.log")))
            trial.note = f"{trial.note} (log: {kept})".strip()
    return trial


def summarize(kind: str, trials: list[Trial]) -> dict[str, Any]:
    recoveries = sorted(t.recovery for t in trials if t.recovery is not None)
    results = [n for t in trials for n in t.results]
    return {
        "kind": kind,
        "trials": len(trials),
        "passed": sum(t.ok for t in trials),
        "jobs": sum(t.jobs for t in trials),
        "lost": sum(t.lost for t in trials),
        "results_per_job": f"{min(results, default=0)}..{max(results, default=0)}",
        "recovery_median": recoveries[len(recoveries) // 2] if recoveries else None,
        "recovery_max": recoveries[-1] if recoveries else None,
        "failed_calls": sum(t.failed_calls for t in trials),
        "errors": [t.note for t in trials if not t.ok and t.note],
    }


def table(rows: list[dict[str, Any]]) -> str:
    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [
        "| kill -9 of | trials (passed) | jobs | lost | results per job | "
        "recovery s (median / max) | sync calls failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['trials']} ({r['passed']}) | {r['jobs']} | {r['lost']} | "
            f"{r['results_per_job']} | {secs(r['recovery_median'])} / "
            f"{secs(r['recovery_max'])} | {r['failed_calls']} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the figures come from (as ``harness.machine_facts``, without wrk)."""
    import platform

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown",
    )  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, help="Trials per kind (default: 20 / 10).")
    parser.add_argument("--only", nargs="+", choices=sorted(KINDS), help="Kinds to run.")
    parser.add_argument("--json", type=Path, help="Write every trial's figures here.")
    parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds for the run.")


def run(args: argparse.Namespace) -> int:
    if args.trials is not None and args.trials < 1:
        print(f"--trials: must be at least 1 (got {args.trials}).", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.timeout
    rows: list[dict[str, Any]] = []
    everything: list[dict[str, Any]] = []
    for kind in args.only or list(KINDS):
        trials: list[Trial] = []
        for index in range(args.trials or KINDS[kind]):
            if time.monotonic() > deadline:
                print(f"--timeout {args.timeout:g}s reached; stopping.", file=sys.stderr)
                break
            trial = one(kind, index)
            trials.append(trial)
            everything.append(trial.__dict__)
            print(json.dumps(trial.__dict__), flush=True)
        rows.append(summarize(kind, trials))
    print(table(rows))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"machine": machine(), "rows": rows, "trials": everything}, indent=1)
        )
    return 0 if all(r["passed"] == r["trials"] for r in rows) else 1

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
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowhost.client import Client

from ._jobs_platform import JOBS, Bench, Calls, Trial, kill_tree, wait_for

NAME = "kills"
HELP = "kill -9 an instance, the launcher, every child, or flowhost up itself."

KINDS: dict[str, int] = {
    "instance": 20, "launcher": 10, "children": 10, "up-deploy": 10, "up-async": 10,
}  # fmt: skip
LOGS = Path(tempfile.gettempdir()) / "flowhost-fault-logs"


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

"""Requests/s and p50/p99 latency of one trivial endpoint, flowhost vs its peers.

    uv run --locked python bench/serve_throughput.py [--repeats 3] [--seconds 10]

Servers, one at a time, each a single process on 127.0.0.1 (pinned to CPU 0; wrk gets
CPU 1): a bare ASGI app (the ceiling), plain FastAPI (uvicorn's access log on, and
off), ``flowhost serve`` (validation, JSON access log and Prometheus metrics on; and
with its access log off), and BentoML 1.4.40 (its own virtualenv, one worker). All on
uvicorn with uvloop + httptools.
The endpoint validates ``{"text": str}`` and returns ``{"label": str, "length": int}``;
``def`` and ``async def`` variants. Writes bench/results/serve_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    ROOT,
    Server,
    WrkResult,
    ensure_wrk,
    free_port,
    machine_busy_seconds,
    machine_facts,
    package_versions,
    run_wrk,
    wait_quiet,
)
from rich.console import Console
from rich.table import Table

RESULTS = BENCH / "results"
APPS = BENCH / "apps"
BENTO_VENV = BENCH / ".venvs" / "bentoml"
BENTO_PYTHON = BENTO_VENV / "bin" / "python"
BENTO_REQUIREMENTS = BENCH / "bentoml-requirements.txt"
BENTO_OVERRIDES = BENCH / "bentoml-overrides.txt"
# The servers run from the environment this script runs in (`uv run --locked` synced it
# once), by path: a `uv run` per server start would re-check the lock file each time.
VENV_BIN = Path(sys.executable).parent
UVICORN = [str(VENV_BIN / "uvicorn"), "--app-dir", str(APPS)]
UVICORN_FAST = ["--loop", "uvloop", "--http", "httptools", "--host", "127.0.0.1"]
VERSIONS = ["fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "uvloop", "httptools"]

console = Console(stderr=True, highlight=False)


@dataclass(frozen=True)
class Subject:
    """A server configuration: how to start it and which routes it serves."""

    key: str
    title: str
    routes: dict[str, str]  # variant ("def" / "async def") -> path

    def command(self, port: int) -> tuple[list[str], Path, dict[str, str]]:
        p = str(port)
        if self.key == "asgi":
            return (
                [*UVICORN, "asgi_app:app", *UVICORN_FAST, "--port", p, "--no-access-log"],
                ROOT,
                {},
            )
        if self.key == "fastapi":
            return [*UVICORN, "fastapi_app:app", *UVICORN_FAST, "--port", p], ROOT, {}
        if self.key == "fastapi-nolog":
            cmd = [*UVICORN, "fastapi_app:app", *UVICORN_FAST, "--port", p, "--no-access-log"]
            return cmd, ROOT, {}
        if self.key in ("flowhost", "flowhost-nolog"):
            svc = str(APPS / "flowhost_service.py")
            cmd = [str(VENV_BIN / "flowhost"), "serve", svc, "--port", p]
            if self.key == "flowhost-nolog":  # access lines are info: this turns them off
                cmd += ["--log-level", "warning"]
            return cmd, ROOT, {}
        if self.key == "bentoml":
            bentoml = str(BENTO_VENV / "bin" / "bentoml")
            env = {
                "BENTOML_HOME": str(RESULTS / "bentoml-home"),
                "BENTOML_DO_NOT_TRACK": "true",
            }
            cmd = [bentoml, "serve", "bentoml_service:BenchClassify", "--port", p]
            return [*cmd, "--host", "127.0.0.1"], APPS, env
        raise ValueError(self.key)


BOTH = {"def": "/classify", "async def": "/classify_async"}
SUBJECTS = [
    Subject("asgi", "bare ASGI (ceiling)", {"-": "/classify"}),
    Subject("fastapi", "FastAPI + uvicorn, access log on", BOTH),
    Subject("fastapi-nolog", "FastAPI + uvicorn, access log off", BOTH),
    Subject("flowhost", "flowhost serve (validation, access log, metrics)", BOTH),
    # The same flowhost server with its access log off: what the access log costs.
    Subject("flowhost-nolog", "flowhost serve, access log off (--log-level warning)", BOTH),
    Subject("bentoml", "BentoML 1.4.40 serve, 1 worker", BOTH),
]
DEFAULT = [s.key for s in SUBJECTS]


def ensure_bentoml() -> None:
    """Create bench/.venvs/bentoml with uv if it is missing."""
    if BENTO_PYTHON.exists():
        return
    console.print("creating bench/.venvs/bentoml ...")
    subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(BENTO_VENV)], check=True)
    subprocess.run(
        [
            "uv", "pip", "install", "-q", "-p", str(BENTO_PYTHON),
            "--override", str(BENTO_OVERRIDES), "-r", str(BENTO_REQUIREMENTS),
        ],
        check=True,
    )  # fmt: skip


def _measured_run(
    server: Server, path: str, conns: int, seconds: float, wrk_cpus: str | None
) -> tuple[WrkResult, dict[str, float]]:
    """One wrk run, plus the CPU the server used per request and what else the machine did."""
    cpu0, busy0 = server.cpu_seconds(), machine_busy_seconds()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_wrk(server.url(path), connections=conns, seconds=seconds, cpus=wrk_cpus)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1, busy1 = server.cpu_seconds(), machine_busy_seconds()
    server_cpu = cpu1 - cpu0
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    other = max(0.0, (busy1 - busy0) - server_cpu - wrk_cpu)
    return res, {
        "cpu_us_per_request": server_cpu / max(res.requests, 1) * 1e6,
        "server_cores": server_cpu / res.seconds,
        "wrk_cores": wrk_cpu / res.seconds,
        "other_cores": other / res.seconds,
    }


def _clean_run(
    server: Server, path: str, conns: int, args: argparse.Namespace, wrk_cpus: str | None
) -> tuple[WrkResult, dict[str, float], int]:
    """Warm up, then measure; redo the pair while other processes loaded the machine."""
    sent = 0
    best: tuple[WrkResult, dict[str, float]] | None = None
    for attempt in range(1, args.attempts + 1):
        wait_quiet(args.quiet_wait, threshold=0.3, log=console.print)
        warm = run_wrk(server.url(path), connections=conns, seconds=args.warmup, cpus=wrk_cpus)
        res, cost = _measured_run(server, path, conns, args.seconds, wrk_cpus)
        sent += warm.requests + res.requests
        cost["attempt"] = attempt
        if best is None or cost["other_cores"] < best[1]["other_cores"]:
            best = (res, cost)
        if cost["other_cores"] <= args.max_other_load:
            break
        console.print(
            f"  [yellow]other processes used {cost['other_cores']:.2f} cores during the run"
            f"{'; again' if attempt < args.attempts else '; keeping the quietest try'}[/]"
        )
    assert best is not None
    return best[0], best[1], sent


def measure(subject: Subject, args: argparse.Namespace, repeat: int) -> list[dict[str, Any]]:
    """Start one server, run every (route, concurrency) against it, stop it."""
    port = free_port()
    cmd, cwd, env = subject.command(port)
    log_path = RESULTS / "logs" / f"{subject.key}-{repeat}{'-' + args.tag if args.tag else ''}.log"
    server = Server(subject.key, cmd, cwd, port, log_path, env, None if args.no_pin else "0")
    rows: list[dict[str, Any]] = []
    wrk_cpus = None if args.no_pin else "1"
    try:
        server.start(next(iter(subject.routes.values())))
        sent = 1  # the readiness check
        for variant, path in subject.routes.items():
            server.check(path)
            sent += 1
            for conns in args.connections:
                res, cost, requests = _clean_run(server, path, conns, args, wrk_cpus)
                sent += requests
                rows.append(
                    {"server": subject.key, "variant": variant, "connections": conns,
                     "repeat": repeat, **asdict(res), **cost}
                )  # fmt: skip
                bad = sum(res.errors.values())
                console.print(
                    f"  {subject.key:<14} {variant:<9} c={conns:<3} {res.rps:>9.0f} req/s  "
                    f"p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:6.2f} ms  "
                    f"{cost['cpu_us_per_request']:6.0f} CPU-us/req  "
                    f"other load {cost['other_cores']:.2f}"
                    + (f"  [red]{bad} errors[/]" if bad else "")
                )
        time.sleep(0.5)  # let the last log lines reach the file
        with log_path.open("rb") as f:
            lines = sum(1 for _ in f)
        for row in rows:  # with an access log on, lines >= requests completed
            row["log_lines_total"], row["requests_completed_total"] = lines, sent
        if subject.key == "flowhost":
            metrics = server.get("/metrics")
            counted = [x for x in metrics.splitlines() if x.startswith("flowhost_requests_total")]
            for row in rows:
                row["flowhost_requests_total"] = counted
    finally:
        server.stop()
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The median over repeats of each (server, variant, connections)."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["server"], row["variant"], row["connections"]), []).append(row)
    out: list[dict[str, Any]] = []
    for (server, variant, conns), runs in groups.items():
        rps = [r["rps"] for r in runs]
        out.append(
            {
                "server": server,
                "variant": variant,
                "connections": conns,
                "runs": len(runs),
                "rps": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs),
                "server_cores": statistics.median(r["server_cores"] for r in runs),
                "other_cores_max": max(r["other_cores"] for r in runs),
                "errors": sum(sum(r["errors"].values()) for r in runs),
            }
        )
    return out


PEERS = ("fastapi", "fastapi-nolog", "bentoml")


def ratios(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """flowhost over each peer: req/s ratio, and CPU-per-request ratio (peer / flowhost)."""
    by = {(s["server"], s["variant"], s["connections"]): s for s in summary}
    out: list[dict[str, Any]] = []
    for (server, variant, conns), mine in by.items():
        if server != "flowhost":
            continue
        row: dict[str, Any] = {"variant": variant, "connections": conns}
        for peer in (*PEERS, "asgi"):
            other = by.get((peer, "-" if peer == "asgi" else variant, conns))
            row[f"rps_vs_{peer}"] = mine["rps"] / other["rps"] if other else None
            row[f"cpu_vs_{peer}"] = (
                other["cpu_us_per_request"] / mine["cpu_us_per_request"] if other else None
            )
        out.append(row)
    return out


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rows(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(summary, key=lambda s: (s["connections"], _order(s["server"]), s["variant"]))


def markdown(summary: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> str:
    titles = {s.key: s.title for s in SUBJECTS}
    lines = [
        "| server | endpoint | conns | req/s (median) | req/s (min-max) | p50 ms | p99 ms "
        "| server CPU µs/req | others' load | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in _rows(summary):
        lines.append(
            f"| {titles[s['server']]} | {s['variant']} | {s['connections']} | {s['rps']:,.0f} | "
            f"{s['rps_min']:,.0f}-{s['rps_max']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['cpu_us_per_request']:,.0f} | {s['other_cores_max']:.2f} | {s['errors']} |"
        )
    lines += [
        "",
        "flowhost's req/s over each peer's (and, in brackets, the peer's server CPU per "
        "request over flowhost's):",
        "",
        "| flowhost endpoint | conns | vs FastAPI, log on | vs FastAPI, log off | vs BentoML "
        "| share of bare ASGI |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in sorted(ratio_rows, key=lambda r: (r["connections"], r["variant"])):
        cells = [f"{_x(r[f'rps_vs_{p}'])} ({_x(r[f'cpu_vs_{p}'])})" for p in PEERS]
        share = r["rps_vs_asgi"]
        lines.append(
            f"| {r['variant']} | {r['connections']} | {' | '.join(cells)} | "
            f"{'-' if share is None else format(share, '.0%')} |"
        )
    return "\n".join(lines) + "\n"


def _order(key: str) -> int:
    return [s.key for s in SUBJECTS].index(key)


def print_table(summary: list[dict[str, Any]]) -> None:
    titles = {s.key: s.title for s in SUBJECTS}
    table = Table(title="serve throughput (median over repeats)")
    cols = ("server", "endpoint", "conns", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "errors")
    for col in cols:
        table.add_column(col, justify="left" if col in ("server", "endpoint") else "right")
    for s in _rows(summary):
        table.add_row(
            titles[s["server"]], s["variant"], str(s["connections"]), f"{s['rps']:,.0f}",
            f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['cpu_us_per_request']:,.0f}",
            str(s["errors"]),
        )  # fmt: skip
    Console(width=140).print(table)


def write_results(
    rows: list[dict[str, Any]], args: argparse.Namespace, started: float
) -> tuple[Path, list[dict[str, Any]], str]:
    summary = summarize(rows)
    ratio_rows = ratios(summary)
    md = markdown(summary, ratio_rows)
    result = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "command": "uv run --locked python bench/serve_throughput.py " + " ".join(sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k != "only"},
        "machine": machine_facts(),
        "versions": {
            "main": package_versions(sys.executable, VERSIONS),
            "bentoml": package_versions(BENTO_PYTHON, ["bentoml", *VERSIONS])
            if BENTO_PYTHON.exists()
            else {},
        },
        "summary": summary,
        "ratios": ratio_rows,
        "runs": rows,
    }
    out = RESULTS / f"serve_throughput{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(md)
    return out, summary, md


def main() -> int:
    parser = argparse.ArgumentParser(description="Requests/s and latency: flowhost vs peers.")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all servers")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--only", nargs="+", choices=[s.key for s in SUBJECTS])
    parser.add_argument("--tag", help="write serve_throughput-TAG.{json,md} instead")
    parser.add_argument(
        "--quiet-wait", type=float, default=20.0, help="max s to wait for an idle machine"
    )
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=0.35,
        help="cores other processes may use during a run before it is redone",
    )
    parser.add_argument("--attempts", type=int, default=2, help="tries per run when contended")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/wrk to CPUs")
    args = parser.parse_args()

    ensure_wrk()
    subjects = [s for s in SUBJECTS if s.key in (args.only or DEFAULT)]
    if any(s.key == "bentoml" for s in subjects):
        ensure_bentoml()
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows: list[dict[str, Any]] = []
    for repeat in range(1, args.repeats + 1):
        console.print(f"[bold]round {repeat}/{args.repeats}[/]")
        for subject in subjects:  # round-robin, so drift in the machine hits all alike
            rows += measure(subject, args, repeat)
            write_results(rows, args, started)  # after every server: a partial run counts
    out, summary, md = write_results(rows, args, started)
    print_table(summary)
    print(md)
    console.print(f"wrote {out.relative_to(ROOT)} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

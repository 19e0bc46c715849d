"""Fault trials of the state database: PostgreSQL restarted under load, and the state
directory's disk full.

    .venv/bin/python bench/fault_trials/state.py --trials 3          # both, ~2 min
    .venv/bin/python bench/fault_trials/state.py --only postgres --trials 5 --down 3

**PostgreSQL restarted under load.** ``flowhost up`` on a private PostgreSQL (Debian's
server binaries, a throwaway data directory, a loopback port) with ``bench-classify``
deployed. Four callers run throughout: a control-plane read (``GET /api/services/S``),
an async submit (``POST /S/classify/async``), a sync call through the router (which reads
no state per request) and a sync call to the instance directly. Each trial stops the
server (``pg_ctl -m fast stop``), keeps it down ``--down`` seconds, starts it and keeps
calling ``--after`` seconds. Goals: no 5xx other than 503 ``state_unavailable`` with a
Retry-After, no failure once the server is back (after ``--grace`` s), no sync call failed,
every accepted async request succeeded (nothing lost).

**Disk full.** ``flowhost up`` with SQLite state whose home is a small tmpfs (root only;
otherwise the trial reports it could not run); a file fills the rest of it. A
control-plane read, a write (promote), an async submit and a sync call are tried while it
is full, then the filler is removed and each is tried again. Goals: no 500 while full,
the write refused with 507 ``state_storage_full`` naming the directory, ``PRAGMA
integrity_check`` ``ok`` on both SQLite files, everything works again after.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

if __name__ == "__main__" and not __package__:  # run as a script (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fault_trials  # noqa: F401  # pyright: ignore[reportUnusedImport]

    __package__ = "fault_trials"

from ._loopback import BODY, HOST, Caller, Platform, free_port, percentile, report

__all__ = ["HELP", "NAME", "add_arguments", "disk_full", "main", "postgres_restart", "run", "table"]

NAME = "state"
HELP = "PostgreSQL restarted under load; the state directory's disk full."
SERVICE = "bench-classify"
PG_USER = "flowhost"


# -- PostgreSQL ---------------------------------------------------------------------------


@dataclass
class Postgres:
    """A throwaway PostgreSQL server on 127.0.0.1 (as the ``postgres`` user when root)."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def bin(self) -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise RuntimeError(
                "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/pg_ctl). "
                "Install Debian's postgresql package (apt-get install postgresql)."
            )
        return Path(found[-1]).parent

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}")

    def init(self) -> Postgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        (self.root / "sockets").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.root, self.root / "sockets"):
                shutil.chown(path, "postgres", "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", PG_USER,
                  "-E", "UTF8", "--no-locale", "--no-sync")  # fmt: skip
        self.start()
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user=PG_USER, dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute("CREATE DATABASE flowhost")
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root / 'sockets'} -c listen_addresses={HOST} "
                   "-c fsync=off -c synchronous_commit=off")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@{HOST}:{self.port}/flowhost"


@dataclass
class Call:
    kind: str
    start: float
    end: float
    status: int
    code: str | None
    retry_after: str | None
    request_id: str | None = None


def _code(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        return str(json.loads(body)["error"]["code"])
    return None


class Load:
    """One thread per kind of call, each calling back to back until stopped."""

    def __init__(self, port: int, instance_port: int) -> None:
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(kind, p, m, path, body), daemon=True)
            for kind, p, m, path, body in (
                ("api_read", port, "GET", f"/api/services/{SERVICE}", None),
                ("async_submit", port, "POST", f"/{SERVICE}/classify/async", BODY),
                ("sync_router", port, "POST", f"/{SERVICE}/classify", BODY),
                ("sync_instance", instance_port, "POST", "/classify", BODY),
            )
        ]

    def _loop(self, kind: str, port: int, method: str, path: str, body: bytes | None) -> None:
        caller = Caller(port, timeout=15.0)
        while not self._stop.is_set():
            start = time.monotonic()
            status, headers, data = caller.call(method, path, body)
            call = Call(kind, start, time.monotonic(), status, _code(data),
                        headers.get("retry-after"))  # fmt: skip
            if kind == "async_submit" and status == 202:
                call.request_id = str(json.loads(data)["id"])
            with self._lock:
                self.calls.append(call)
            time.sleep(0.01)  # a steady trickle, not a flood: the machine has 2 cores
        caller.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _async_outcomes(port: int, ids: list[str], timeout: float) -> dict[str, str]:
    """Each async request's final status (waiting up to ``timeout`` for the unfinished)."""
    caller = Caller(port, timeout=10.0)
    final: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still: list[str] = []
        for request_id in pending:
            status, _, body = caller.call("GET", f"/requests/{request_id}")
            state = json.loads(body).get("status") if status == 200 else None
            if state in ("succeeded", "failed", "expired"):
                final[request_id] = str(state)
            else:
                still.append(request_id)
        pending = still
        if pending:
            time.sleep(0.5)
    for request_id in pending:
        final[request_id] = "unfinished"
    caller.close()
    return final


def postgres_restart(
    trials: int, *, down: float = 3.0, before: float = 2.0, after: float = 4.0,
    grace: float = 0.0, work: Path,
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per trial: PostgreSQL stopped for ``down`` seconds under load."""
    pg = Postgres(work / "pg").init()
    rows: list[dict[str, Any]] = []
    options = ["--async-visibility", "2", "--async-retry-backoff", "0.2", "--health-interval", "1"]
    try:
        with Platform(work / "home-pg", store_url=pg.url, options=options) as platform:
            platform.deploy()
            api = Caller(platform.port)
            instance_port = int(
                api.json("GET", f"/api/services/{SERVICE}")["instances"]["v1"]["ports"][0]
            )
            api.close()
            for trial in range(1, trials + 1):
                with Load(platform.port, instance_port) as load:
                    time.sleep(before)
                    stopping = time.monotonic()
                    pg.stop()
                    stopped = time.monotonic()
                    time.sleep(down)
                    starting = time.monotonic()
                    pg.start()
                    started = time.monotonic()
                    time.sleep(after)
                times = (stopping, stopped, starting, started)
                rows.append(_restart_row(trial, load.calls, platform.port, times, grace))
    finally:
        pg.stop()
    return rows


def _restart_row(
    trial: int, calls: list[Call], port: int, times: tuple[float, float, float, float],
    grace: float,
) -> dict[str, Any]:  # fmt: skip
    stopping, stopped, starting, started = times
    failed = [c for c in calls if c.status != 200 and c.status != 202]
    db_kinds = ("api_read", "async_submit")
    ids = [c.request_id for c in calls if c.request_id is not None]
    outcomes = _async_outcomes(port, ids, timeout=60.0)
    back = [
        c for c in calls if c.kind in db_kinds and c.start >= started and c.status in (200, 202)
    ]
    first_ok = min((c.end for c in back), default=float("nan"))
    return {
        "trial": trial,
        "down_s": round(starting - stopping, 2),
        "requests": len(calls),
        "failed_while_down": sum(1 for c in failed if stopping <= c.end and c.start <= started),
        "failed_after_up": sum(1 for c in failed if c.start >= started + grace),
        "non_503_errors": sum(1 for c in failed if c.status != 503),
        "503_without_retry_after": sum(1 for c in failed if c.status == 503 and not c.retry_after),
        "error_codes": sorted({f"{c.status} {c.code}" for c in failed}),
        "sync_failed": sum(1 for c in failed if c.kind.startswith("sync")),
        "seconds_to_first_success": round(first_ok - started, 3),
        "async_accepted": len(ids),
        "async_lost": sum(1 for s in outcomes.values() if s != "succeeded"),
        "stop_s": round(stopped - stopping, 2),
    }


# -- disk full --------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` at ``path``; yields False when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, check=False).returncode == 0  # fmt: skip
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _fill(directory: Path) -> int:
    """Write a file until the filesystem is full; returns its size."""
    written = 0
    with (directory / "filler").open("wb", buffering=0) as f:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    n = f.write(b"\0" * size)
                    if not n:
                        break
                    written += n
    return written


def _integrity(path: Path) -> str:
    if not path.exists():
        return "absent"
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _try(caller: Caller, kind: str, port: int) -> tuple[int, str | None]:
    method, path, body = {
        "api_read": ("GET", f"/api/services/{SERVICE}", None),
        "api_write": ("POST", f"/api/services/{SERVICE}/aliases/staging", b'{"version": 1}'),
        "async_submit": ("POST", f"/{SERVICE}/classify/async", BODY),
        "sync_router": ("POST", f"/{SERVICE}/classify", BODY),
    }[kind]
    status, _, data = caller.call(method, path, body)
    return status, _code(data)


def disk_full(trials: int, *, size: str = "48m", work: Path) -> list[dict[str, Any]]:
    """One row per trial: the state directory's filesystem filled, then emptied."""
    rows: list[dict[str, Any]] = []
    kinds = ("api_read", "api_write", "async_submit", "sync_router")
    for trial in range(1, trials + 1):
        mount = work / f"disk-{trial}"
        with _tmpfs(mount, size) as mounted:
            if not mounted:
                return [{"trial": trial, "skipped": "cannot mount a tmpfs (needs root)"}]
            home = mount / "home"
            with Platform(home) as platform:
                platform.deploy()
                caller = Caller(platform.port)
                filled = _fill(mount)
                full = {kind: _try(caller, kind, platform.port) for kind in kinds}
                message = ""
                status, _, data = caller.call("POST", f"/api/services/{SERVICE}/aliases/staging",
                                              b'{"version": 1}')  # fmt: skip
                if status == 507:
                    message = str(json.loads(data)["error"]["message"])
                checks = {name: _integrity(home / name) for name in ("state.db", "queues.db")}
                (mount / "filler").unlink()
                again = {kind: _try(caller, kind, platform.port) for kind in kinds}
                caller.close()
            after = {name: _integrity(home / name) for name in ("state.db", "queues.db")}
        rows.append({
            "trial": trial,
            "filled_mib": round(filled / 2**20, 1),
            "while_full": {k: f"{s} {c or ''}".strip() for k, (s, c) in full.items()},
            "500s_while_full": sum(1 for s, _ in full.values() if s == 500 or s == 0),
            "write_names_directory": str(home.resolve()) in message,
            "integrity_while_full": checks,
            "after_space_returned": {k: s for k, (s, _) in again.items()},
            "recovered": all(s in (200, 202) for s, _ in again.values()),
            "integrity_after": after,
        })  # fmt: skip
    return rows


# -- entry points -------------------------------------------------------------------------


def _rows(trials: int, *, only: str | None = None, down: float = 3.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="flowhost-state-trials-", dir="/tmp"))
    work.chmod(0o755)  # the postgres user enters it
    try:
        if only in (None, "postgres"):
            for row in postgres_restart(trials, down=down, work=work):
                rows.append({"trial_kind": "postgres_restart", **row})
                print(json.dumps(rows[-1]), flush=True)
        if only in (None, "disk"):
            for row in disk_full(trials, work=work):
                rows.append({"trial_kind": "disk_full", **row})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per trial kind, summed over its trials."""
    lines: list[str] = []
    pg = [r for r in rows if r.get("trial_kind") == "postgres_restart"]
    if pg:
        firsts = sorted(r["seconds_to_first_success"] for r in pg)
        lines += [
            "| PostgreSQL stopped under load | trials | requests | failed while down (503 "
            "state_unavailable + Retry-After) | other errors (goal 0) | failed after the "
            "restart returned (goal 0) | sync calls failed | s to first DB success after "
            "restart (median / max) | async accepted / lost (goal 0) |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {pg[0]['down_s']:.0f} s down | {len(pg)} | {sum(r['requests'] for r in pg)} | "
            f"{sum(r['failed_while_down'] for r in pg)} | "
            f"{sum(r['non_503_errors'] + r['503_without_retry_after'] for r in pg)} | "
            f"{sum(r['failed_after_up'] for r in pg)} | {sum(r['sync_failed'] for r in pg)} | "
            f"{percentile(firsts, 0.5):.3f} / {firsts[-1]:.3f} | "
            f"{sum(r['async_accepted'] for r in pg)} / {sum(r['async_lost'] for r in pg)} |",
        ]
    disk = [r for r in rows if r.get("trial_kind") == "disk_full" and "skipped" not in r]
    if disk:
        full = disk[0]["while_full"]
        intact = all(
            v == "ok" for r in disk for k in ("integrity_while_full", "integrity_after")
            for v in r[k].values()
        )  # fmt: skip
        lines += [
            "",
            "| state directory's disk full | trials | 500s while full (goal 0) | read | write "
            "| async submit | sync call | integrity_check ok | recovered after space returned |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| tmpfs filled | {len(disk)} | {sum(r['500s_while_full'] for r in disk)} | "
            f"{full['api_read']} | {full['api_write']} | {full['async_submit']} | "
            f"{full['sync_router']} | {'yes' if intact else 'NO'} | "
            f"{sum(r['recovered'] for r in disk)} of {len(disk)} |",
        ]
    skipped = [r for r in rows if "skipped" in r]
    if skipped:
        lines.append(f"\ndisk full: not run ({skipped[0]['skipped']}).")
    return "\n".join(lines)


def _passed(rows: list[dict[str, Any]]) -> bool:
    pg_ok = all(
        r["failed_after_up"] == 0 and r["non_503_errors"] == 0
        and r["503_without_retry_after"] == 0 and r["sync_failed"] == 0 and r["async_lost"] == 0
        for r in rows if r.get("trial_kind") == "postgres_restart"
    )  # fmt: skip
    disk_ok = all(
        r.get("500s_while_full") == 0 and r.get("recovered") and r.get("write_names_directory")
        for r in rows if r.get("trial_kind") == "disk_full" and "skipped" not in r
    )  # fmt: skip
    return pg_ok and disk_ok


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=3, help="Trials of each kind.")
    parser.add_argument("--only", choices=["postgres", "disk"], help="Run one of the two.")
    parser.add_argument("--down", type=float, default=3.0, help="Seconds PostgreSQL stays down.")
    parser.add_argument("--json", type=Path, help="Write every row here.")


@overload
def run(trials: int, **options: Any) -> list[dict[str, Any]]: ...
@overload
def run(trials: argparse.Namespace) -> int: ...
def run(trials: int | argparse.Namespace, **options: Any) -> list[dict[str, Any]] | int:
    """``run(N, only=..., down=...)``: the rows of N trials of each kind. ``run(args)`` (as
    ``bench/faults.py`` calls it): run, print the rows and the table, 0 when every goal is met."""
    if isinstance(trials, int):
        return _rows(trials, **options)
    args = trials
    if args.trials < 1:
        print(f"--trials: must be at least 1 (got {args.trials}).", file=sys.stderr)
        return 2
    rows = _rows(args.trials, only=args.only, down=args.down)
    return report(rows, table(rows), args.json, _passed(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

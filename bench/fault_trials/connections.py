"""Fault trials of connections: slow and idle clients, and alias moves under load.

    .venv/bin/python bench/fault_trials/connections.py --trials 3             # ~3 min
    .venv/bin/python bench/fault_trials/connections.py --only slow --seconds 5
    .venv/bin/python bench/fault_trials/connections.py --only moves --moves-for 60

Each trial starts ``flowhost up`` (SQLite state, a fresh home, a free 127.0.0.1 port)
with ``bench-classify`` deployed.

**Slow and idle clients** (``slow``). Against the router (``POST /S/classify``) and the
instance directly (``POST /classify``), in turn: two callers measure latency for
``--seconds`` with nothing else connected (unloaded), then again while ``--idle`` (1,000)
connections sit open without sending a byte and ``--loris`` slow-loris clients dribble
the headers of a request one byte at a time (loaded). Goal: loaded p99 within 2x of the
unloaded p99. Also counted: idle and slow-loris connections the server had closed by the
end (uvicorn has no header timeout: it keeps them as long as the client does).

**Promote and rollback every second** (``moves``). v1 is production, v2 deployed beside
it; four callers call the router back to back for ``--moves-for`` seconds while the
alias is promoted to v2 and rolled back to v1 once a second. Every answer's
``x-flowhost-version`` is kept. Goals: failed requests 0; requests answered by the old
version after the move returned 0 (counted over requests sent after a move returned and
answered before the next one began, so no request is judged against a move it raced).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

if __name__ == "__main__" and not __package__:  # run as a script (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fault_trials  # noqa: F401  # pyright: ignore[reportUnusedImport]

    __package__ = "fault_trials"

from ._loopback import BODY, HOST, Caller, Platform, percentile, report

__all__ = ["HELP", "NAME", "add_arguments", "main", "moves", "run", "slow_clients", "table"]

NAME = "connections"
HELP = "slow-loris and 1,000 idle connections; promote and rollback every second under load."
SERVICE = "bench-classify"
GOAL_RATIO = 2.0


# -- slow and idle clients ---------------------------------------------------------------


def _latencies(port: int, path: str, seconds: float, callers: int = 2) -> tuple[list[float], int]:
    """Seconds per request of ``callers`` back-to-back keep-alive callers; and failures."""
    times: list[float] = []
    failed = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        caller = Caller(port, timeout=10.0)
        mine: list[float] = []
        bad = 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            status, _, _ = caller.call("POST", path, BODY)
            if status == 200:
                mine.append(time.perf_counter() - start)
            else:
                bad += 1
        caller.close()
        with lock:
            times.extend(mine)
            failed[0] += bad

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return times, failed[0]


def _open(sock: socket.socket) -> bool:
    """Whether the server still holds ``sock`` open (no EOF, no reset)."""
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _idle(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that never send a byte."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=5.0)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


class _Loris(threading.Thread):
    """``count`` connections each sending a request's headers one byte at a time, one
    byte per connection every ``every`` seconds, never finishing them."""

    def __init__(self, port: int, path: str, count: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.socks = [socket.create_connection((HOST, port), timeout=5.0) for _ in range(count)]
        self.every = every
        self.sent = 0
        self.stopped = threading.Event()
        head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        self.script = head.encode() + b"X-Padding: " + b"a" * 100_000  # never ends

    def run(self) -> None:
        position = 0
        while not self.stopped.wait(self.every):
            byte = self.script[position % len(self.script) : position % len(self.script) + 1]
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.send(byte)
                    self.sent += 1
            position += 1

    def close(self) -> int:
        """Stop; returns how many of its connections the server had closed."""
        self.stopped.set()
        self.join(5)
        closed = sum(not _open(s) for s in self.socks)
        for sock in self.socks:
            sock.close()
        return closed


def slow_clients(
    trials: int, *, seconds: float = 5.0, idle: int = 1000, loris: int = 50, work: Path,
    nofile: int | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per trial and target (router, instance): p99 unloaded and loaded; with
    ``nofile``, flowhost up (and its instances) run under that soft open-files limit."""
    rows: list[dict[str, Any]] = []
    with Platform(work / "home-slow", nofile=nofile) as platform:
        platform.deploy()
        api = Caller(platform.port)
        instance = int(api.json("GET", f"/api/services/{SERVICE}")["instances"]["v1"]["ports"][0])
        api.close()
        targets = (("router", platform.port, f"/{SERVICE}/classify"),
                   ("instance", instance, "/classify"))  # fmt: skip
        _latencies(platform.port, f"/{SERVICE}/classify", 1.0)  # warm up
        for trial in range(1, trials + 1):
            for name, port, path in targets:
                unloaded, failed_before = _latencies(port, path, seconds)
                with _idle(port, idle) as idle_socks:
                    slow = _Loris(port, path, loris)
                    slow.start()
                    loaded, failed_during = _latencies(port, path, seconds)
                    idle_closed = sum(not _open(s) for s in idle_socks)
                    loris_closed = slow.close()
                before, during = percentile(unloaded, 0.99), percentile(loaded, 0.99)
                rows.append({
                    "trial": trial, "target": name, "idle": idle, "loris": loris,
                    "nofile": nofile,
                    "requests_unloaded": len(unloaded), "requests_loaded": len(loaded),
                    "p50_unloaded_ms": round(percentile(unloaded, 0.5) * 1000, 3),
                    "p99_unloaded_ms": round(before * 1000, 3),
                    "p50_loaded_ms": round(percentile(loaded, 0.5) * 1000, 3),
                    "p99_loaded_ms": round(during * 1000, 3),
                    "p99_ratio": round(during / before, 2),
                    "failed": failed_before + failed_during,
                    "idle_closed_by_server": idle_closed,
                    "loris_closed_by_server": loris_closed,
                    "loris_bytes_sent": slow.sent,
                })  # fmt: skip
    return rows


# -- promote and rollback under load -----------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    start: float
    end: float
    status: int
    version: int | None


@dataclass(frozen=True)
class _Move:
    start: float
    end: float
    target: int
    ok: bool


def _version(header: str | None) -> int | None:
    digits = "".join(c for c in header or "" if c.isdigit())
    return int(digits) if digits else None


def _load(port: int, stop: threading.Event, into: list[_Answer], lock: threading.Lock) -> None:
    caller = Caller(port, timeout=30.0)
    mine: list[_Answer] = []
    while not stop.is_set():
        start = time.monotonic()
        status, headers, _ = caller.call("POST", f"/{SERVICE}/classify", BODY)
        mine.append(
            _Answer(start, time.monotonic(), status, _version(headers.get("x-flowhost-version")))
        )
    caller.close()
    with lock:
        into.extend(mine)


def _move_every(port: int, second: int, seconds: float, every: float) -> list[_Move]:
    """Promote to ``second``, roll back, promote, ... once every ``every`` s."""
    api = Caller(port, timeout=30.0)
    done: list[_Move] = []
    deadline = time.monotonic() + seconds
    promote = True
    while time.monotonic() < deadline:
        tick = time.monotonic()
        if promote:
            path = f"/api/services/{SERVICE}/aliases/production"
            data: bytes | None = json.dumps({"version": second}).encode()
        else:
            path, data = f"/api/services/{SERVICE}/aliases/production/rollback", None
        status, _, reply = api.call("POST", path, data)
        target = int(json.loads(reply)["version"]) if status == 200 else -1
        done.append(_Move(tick, time.monotonic(), target, status == 200))
        promote = not promote
        time.sleep(max(0.0, every - (time.monotonic() - tick)))
    api.close()
    return done


def moves(
    trials: int, *, seconds: float = 60.0, callers: int = 4, every: float = 1.0, work: Path
) -> list[dict[str, Any]]:
    """One row per trial: ``seconds`` of load while the alias moves every ``every`` s."""
    rows: list[dict[str, Any]] = []
    for trial in range(1, trials + 1):
        with Platform(work / f"home-moves-{trial}") as platform:
            first = platform.deploy(promote=True)
            second = platform.deploy(promote=False)
            answers: list[_Answer] = []
            lock = threading.Lock()
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=_load, args=(platform.port, stop, answers, lock), daemon=True
                )
                for _ in range(callers)
            ]
            for thread in threads:
                thread.start()
            done = _move_every(platform.port, second, seconds, every)
            stop.set()
            for thread in threads:
                thread.join(60)
        rows.append(_moves_row(trial, answers, done, (first, second)))
    return rows


def _moves_row(
    trial: int, answers: list[_Answer], done: list[_Move], versions: tuple[int, int]
) -> dict[str, Any]:
    stale = judged = 0
    for move, following in zip(done, [*done[1:], None], strict=True):
        window_end = following.start if following is not None else float("inf")
        for a in answers:
            if move.ok and a.status == 200 and a.start >= move.end and a.end <= window_end:
                judged += 1
                stale += a.version != move.target
    failed = [a for a in answers if a.status != 200]
    return {
        "trial": trial,
        "seconds": round(max((a.end for a in answers), default=0) - min(
            (a.start for a in answers), default=0), 1),
        "requests": len(answers),
        "moves": len(done),
        "moves_failed": sum(not m.ok for m in done),
        "failed_requests": len(failed),
        "failed_statuses": sorted({a.status for a in failed}),
        "judged_after_a_move": judged,
        "old_version_after_move": stale,
        "versions_seen": sorted({a.version for a in answers if a.version is not None}),
        "versions": list(versions),
    }  # fmt: skip


# -- entry points -------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per target for slow clients (medians over trials), one for moves."""
    lines: list[str] = []
    slow = [r for r in rows if r.get("trial_kind") == "slow_clients"]
    if slow:
        lines += [
            "| slow-loris + idle vs | trials | p99 unloaded ms | p99 loaded ms | "
            "ratio (median / max, goal <= 2) | failed | idle / loris closed by server |",
            "|---|---|---|---|---|---|---|",
        ]
        for target in ("router", "instance"):
            mine = [r for r in slow if r["target"] == target]
            if not mine:
                continue
            ratios = sorted(r["p99_ratio"] for r in mine)
            lines.append(
                f"| {target} ({mine[0]['idle']} idle, {mine[0]['loris']} slow-loris) | "
                f"{len(mine)} | "
                f"{percentile([r['p99_unloaded_ms'] for r in mine], 0.5):.2f} | "
                f"{percentile([r['p99_loaded_ms'] for r in mine], 0.5):.2f} | "
                f"{percentile(ratios, 0.5):.2f} / {ratios[-1]:.2f} | "
                f"{sum(r['failed'] for r in mine)} | "
                f"{sum(r['idle_closed_by_server'] for r in mine)} / "
                f"{sum(r['loris_closed_by_server'] for r in mine)} |"
            )
    moved = [r for r in rows if r.get("trial_kind") == "moves"]
    if moved:
        lines += [
            "",
            "| promote/rollback every 1 s | trials | seconds | requests | moves | failed "
            "requests (goal 0) | old version after the move returned (goal 0) |",
            "|---|---|---|---|---|---|---|",
            f"| v1 <-> v2 under 4 callers | {len(moved)} | {sum(r['seconds'] for r in moved):g} | "
            f"{sum(r['requests'] for r in moved)} | {sum(r['moves'] for r in moved)} | "
            f"{sum(r['failed_requests'] for r in moved)} | "
            f"{sum(r['old_version_after_move'] for r in moved)} of "
            f"{sum(r['judged_after_a_move'] for r in moved)} |",
        ]
    return "\n".join(lines)


def _passed(rows: list[dict[str, Any]]) -> bool:
    slow = [r for r in rows if r.get("trial_kind") == "slow_clients"]
    moved = [r for r in rows if r.get("trial_kind") == "moves"]
    ratios_ok = all(
        percentile(sorted(r["p99_ratio"] for r in slow if r["target"] == t), 0.5) <= GOAL_RATIO
        for t in {r["target"] for r in slow}
    )
    return ratios_ok and all(
        r["failed_requests"] == 0 and r["old_version_after_move"] == 0 and r["moves_failed"] == 0
        for r in moved
    )


def _rows(
    trials: int, *, only: str | None = None, seconds: float = 5.0, idle: int = 1000,
    loris: int = 50, moves_for: float = 60.0, move_trials: int = 1, nofile: int | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="flowhost-connection-trials-", dir="/tmp"))
    try:
        if only in (None, "slow"):
            found = slow_clients(
                trials, seconds=seconds, idle=idle, loris=loris, work=work, nofile=nofile
            )
            for row in found:
                rows.append({"trial_kind": "slow_clients", **row})
                print(json.dumps(rows[-1]), flush=True)
        if only in (None, "moves"):
            for row in moves(move_trials, seconds=moves_for, work=work):
                rows.append({"trial_kind": "moves", **row})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=3, help="Slow-client trials.")
    parser.add_argument("--move-trials", type=int, default=1, help="Alias-move trials.")
    parser.add_argument("--only", choices=["slow", "moves"], help="Run one of the two.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Seconds per latency sample.")
    parser.add_argument("--idle", type=int, default=1000, help="Idle connections per target.")
    parser.add_argument("--loris", type=int, default=50, help="Slow-loris clients per target.")
    parser.add_argument("--moves-for", type=float, default=60.0, help="Seconds of alias moves.")
    parser.add_argument(
        "--nofile", type=int, help="Soft open-files limit of flowhost up (e.g. 1024, the "
        "common default of service managers); default: this shell's."
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="Write every row here.")


@overload
def run(trials: int, **options: Any) -> list[dict[str, Any]]: ...
@overload
def run(trials: argparse.Namespace) -> int: ...
def run(trials: int | argparse.Namespace, **options: Any) -> list[dict[str, Any]] | int:
    """``run(N, ...)``: the rows of N trials. ``run(args)`` (as ``bench/faults.py`` calls
    it): run, print the rows and the table, return 0 when every goal is met."""
    if isinstance(trials, int):
        return _rows(trials, **options)
    args = trials
    if args.trials < 1:
        print(f"--trials: must be at least 1 (got {args.trials}).", file=sys.stderr)
        return 2
    rows = _rows(
        args.trials, only=args.only, seconds=args.seconds, idle=args.idle, loris=args.loris,
        moves_for=args.moves_for, move_trials=args.move_trials, nofile=args.nofile,
    )  # fmt: skip
    return report(rows, table(rows), args.json, _passed(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

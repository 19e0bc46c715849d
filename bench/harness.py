"""Shared pieces of the benchmarks: servers as process groups, wrk runs, machine facts.

Every process a benchmark starts goes into :data:`STARTED` and is stopped (its whole
process group) when the benchmark exits, fails, or is interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH",
    "ROOT",
    "Server",
    "WrkResult",
    "descendants",
    "ensure_wrk",
    "free_port",
    "machine_busy_seconds",
    "machine_facts",
    "otlp_receiver",
    "package_versions",
    "proc_stats",
    "run_wrk",
    "wait_quiet",
]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "wrk" / "post_json.lua"
BODY = b'{"text":"hello flowhost"}'
EXPECTED = {"label": "short", "length": 14}

CLK_TCK = os.sysconf("SC_CLK_TCK")

STARTED: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class _Stat:
    ppid: int
    pgrp: int
    cpu_ticks: int


def proc_stats() -> dict[int, _Stat]:
    out: dict[int, _Stat] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        # fields from 3 on: state, ppid, pgrp, ..., utime (14), stime (15)
        out[int(stat.parent.name)] = _Stat(
            int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12])
        )
    return out


def descendants(root: int, stats: dict[int, _Stat]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        children.setdefault(st.ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo += children.get(pid, [])
    return found


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group we created for ``proc``, then SIGKILL after ``grace``;
    descendants that left the group (BentoML's workers) get the same, one by one."""
    tree = descendants(proc.pid, proc_stats()) - {proc.pid}
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _stop_all() -> None:
    while STARTED:
        _stop_group(STARTED.pop())


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=BODY, method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    """One server under test, started as its own process group on a loopback port."""

    key: str
    command: list[str]
    cwd: Path
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict[str, str])
    cpus: str | None = None  # taskset list, e.g. "0"
    proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, check_path: str, timeout: float = 90.0) -> None:
        """Start the server and wait until ``check_path`` answers the expected JSON."""
        cmd = ["taskset", "-c", self.cpus, *self.command] if self.cpus else self.command
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        STARTED.append(self.proc)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.key}: exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                status, body = _post(self.url(check_path))
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200:
                    got = json.loads(body)
                    if got != EXPECTED:
                        raise RuntimeError(
                            f"{self.key}: {check_path} answered {got}, not {EXPECTED}"
                        )
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.key}: not ready after {timeout:.0f}s ({last}); see {self.log_path}"
        )

    def check(self, path: str) -> None:
        status, body = _post(self.url(path))
        if status != 200 or json.loads(body) != EXPECTED:
            raise RuntimeError(f"{self.key}: {path} answered {status} {body[:200]!r}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url(path), timeout=5) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc)
            if self.proc in STARTED:
                STARTED.remove(self.proc)
            self.proc = None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server: its process group and every
        descendant (BentoML's workers run in process groups of their own)."""
        assert self.proc is not None
        stats = proc_stats()
        mine = descendants(self.proc.pid, stats) | {
            pid for pid, st in stats.items() if st.pgrp == self.proc.pid
        }
        return sum(stats[pid].cpu_ticks for pid in mine) / CLK_TCK

    def python_pid(self) -> int:
        """The pid of the server's Python process (below ``uv run`` / ``taskset``, if any)."""
        assert self.proc is not None
        pid = self.proc.pid
        for _ in range(5):
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            if exe.startswith("python"):
                return pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if not children:
                break
            pid = int(children[0])
        raise RuntimeError(f"{self.key}: no Python process under pid {self.proc.pid}")


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def wait_quiet(max_wait: float, threshold: float = 0.15, log: Any = print) -> float:
    """Wait (up to ``max_wait`` s) for a second in which other processes use less than
    ``threshold`` of a core; returns the last load seen. Other users of this machine
    (test runs, editors) otherwise land in the measurements."""
    deadline = time.monotonic() + max_wait
    warned = False
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        load = machine_busy_seconds() - before
        if load < threshold or time.monotonic() > deadline:
            return load
        if not warned:
            log(f"  waiting for the machine to go quiet (other load {load:.2f} cores) ...")
            warned = True


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: dict[str, int]


def ensure_wrk() -> str:
    """The path of wrk; installs Debian's package when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: run `sudo apt-get install -y wrk` and try again.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        sys.exit("apt-get installed wrk but it is not on PATH.")
    return found


def run_wrk(
    url: str, *, connections: int, seconds: float, cpus: str | None = None, threads: int = 1
) -> WrkResult:
    """One closed-loop wrk run (POST + JSON body) against ``url``."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    lat: dict[str, float] = data["latency_us"]
    secs = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        seconds=secs,
        rps=data["requests"] / secs,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p999"] / 1000,
        max_ms=lat["max"] / 1000,
        errors=data["errors"],
    )


def package_versions(python: Path | str, names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of ``python``."""
    if Path(python) == Path(sys.executable):
        out: dict[str, str] = {}
        for name in names:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = "-"
        return out
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: out[n] = '-'\n"
        "print(json.dumps(out))"
    )
    res = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    return json.loads(res.stdout)


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).split("[")[0].strip(),
    }


_RECEIVER = """
import sys
sys.path.insert(0, {root!r})
from tests.integration.otlp import OtlpReceiver
with OtlpReceiver() as r:
    print(r.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(len(r.spans), flush=True)
"""


@contextlib.contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP traces receiver in its own process (the tests' ``OtlpReceiver``):
    yields its URL and a list that holds, after the block, how many spans it got."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER.format(root=str(ROOT))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    received: list[int] = []
    try:
        yield proc.stdout.readline().strip(), received
    finally:
        proc.stdin.close()
        received.append(int(proc.stdout.readline() or 0))
        proc.wait(timeout=30)

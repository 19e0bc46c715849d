"""Where a server's CPU goes under load: py-spy samples while wrk drives one endpoint.

    uv run --locked python bench/profile_serve.py [--server flowhost] [--path /classify]

Starts the server as serve_throughput.py does (pinned to CPU 0, wrk on CPU 1), attaches
py-spy (from bench/.venvs/tools, created if missing) for ``--seconds``, and prints the
functions with the most samples of the thread holding the GIL (py-spy --gil: the idle
threads of a thread pool would otherwise drown everything): "self" (the frame running)
and "total" (anywhere on the stack). Raw collapsed stacks go to
bench/results/profile-<server>-<endpoint>.txt (feed them to any flame-graph tool).
``--native`` adds C frames (uvloop, httptools, pydantic-core, the interpreter).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
from pathlib import Path

from harness import BENCH, ROOT, Server, ensure_wrk, free_port, run_wrk
from rich.console import Console
from rich.table import Table
from serve_throughput import RESULTS, SUBJECTS

TOOLS = BENCH / ".venvs" / "tools"
PY_SPY = TOOLS / "bin" / "py-spy"
PY_SPY_VERSION = "0.4.3"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")

console = Console(stderr=True, highlight=False)


def ensure_py_spy() -> Path:
    if not PY_SPY.exists():
        console.print("creating bench/.venvs/tools with py-spy ...")
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(TOOLS)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "-p", str(TOOLS / "bin" / "python"),
             f"py-spy=={PY_SPY_VERSION}"],
            check=True,
        )  # fmt: skip
    return PY_SPY


def short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    m = FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m['func']} ({file}{':' + m['line'] if m['line'] else ''})"


Counts = collections.Counter[str]


def tally(raw: Path, by_line: bool) -> tuple[int, Counts, Counts]:
    """Total samples, self samples and inclusive samples per frame, from collapsed stacks."""
    total = 0
    own: Counts = collections.Counter()
    incl: Counts = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";")]
        if not by_line:  # fold lines into functions: "func (file)"
            frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return total, own, incl


def show(title: str, counter: Counts, total: int, top: int) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("share", justify="right")
    table.add_column("samples", justify="right")
    table.add_column("frame")
    for frame, n in counter.most_common(top):
        table.add_row(f"{n / total:.1%}", str(n), frame)
    Console(width=160).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description="Profile one server under wrk load.")
    parser.add_argument("--server", default="flowhost", choices=[s.key for s in SUBJECTS])
    parser.add_argument("--path", default="/classify", help="endpoint path to drive")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include C frames")
    parser.add_argument(
        "--blocking",
        action="store_true",
        help="stop the process for each sample (exact stacks, but samples then pile up at "
        "syscalls, where a stopped thread is caught; the default does not stop it)",
    )
    parser.add_argument("--by-line", action="store_true", help="keep line numbers in frames")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--raw", type=Path, help="only summarize this collapsed-stack file")
    args = parser.parse_args()

    if args.raw is None:
        ensure_wrk()
        spy = ensure_py_spy()
        subject = next(s for s in SUBJECTS if s.key == args.server)
        port = free_port()
        cmd, cwd, env = subject.command(port)
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = f"profile-{args.server}-{args.path.strip('/')}"
        name += ("-native" if args.native else "") + ("-blocking" if args.blocking else "")
        log = RESULTS / "logs" / f"{name}.log"
        raw: Path = RESULTS / f"{name}.txt"
        server = Server(subject.key, cmd, cwd, port, log, env, "0")
        try:
            server.start(args.path)
            run_wrk(server.url(args.path), connections=args.connections, seconds=2, cpus="1")
            spy_cmd = [
                str(spy), "record", "--pid", str(server.python_pid()), "--rate", str(args.rate),
                "--duration", str(int(args.seconds)), "--format", "raw", "--output", str(raw),
                "--gil",  # only the thread holding the GIL: idle pool threads drown the rest
                *([] if args.blocking else ["--nonblocking"]),
                *(["--native"] if args.native else []),
            ]  # fmt: skip
            load = threading.Thread(
                target=run_wrk,
                args=(server.url(args.path),),
                kwargs={"connections": args.connections, "seconds": args.seconds + 2, "cpus": "1"},
            )
            load.start()
            subprocess.run(spy_cmd, check=True, capture_output=True)
            load.join()
        finally:
            server.stop()
    else:
        raw = args.raw
    total, own, incl = tally(raw, args.by_line)
    console.print(f"{total} samples in {raw.relative_to(ROOT) if raw.is_absolute() else raw}")
    show("self (the frame on CPU)", own, total, args.top)
    show("total (anywhere on the stack)", incl, total, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

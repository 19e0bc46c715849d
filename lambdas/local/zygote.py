"""The instance launcher of the local platform: a pre-imported process that forks instances.

Started once per Python environment by :class:`~flowhost.lambdas.local.launcher.Launcher`.
It imports the serving runtime and its dependencies up front, then reads commands as JSON
lines on stdin and answers with JSON lines on stdout. Each ``spawn`` forks a child that
binds a loopback port, loads the service and serves it, so an instance starts without
paying for interpreter start-up and imports (that is most of a cold start).

Messages out: ``listening`` (pid, port), ``ready``, ``failed`` (error), ``jobs`` (async
jobs running), ``exit`` (code).

``--single`` is the slow way, used while the zygote itself is down: the process reads one
``spawn`` command and becomes that instance (no fork; its exit is seen by whoever started it).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

# Pre-imports: everything an instance needs before the user's own code.
import fastapi  # noqa: F401  # pyright: ignore[reportUnusedImport]
import httptools  # noqa: F401  # pyright: ignore[reportUnusedImport]
import metaflow  # noqa: F401  # pyright: ignore[reportUnusedImport]
import uvicorn  # noqa: F401  # pyright: ignore[reportUnusedImport]
import uvloop  # noqa: F401  # pyright: ignore[reportUnusedImport]

from flowhost.lambdas.local.asyncjobs import LocalJobsConfig
from flowhost.services.loader import load_service
from flowhost.services.runtime.instance import InstanceState
from flowhost.services.runtime.server import serve
from flowhost.services.runtime.settings import RuntimeSettings

_PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 3500  # below PIPE_BUF, so a child's line is written atomically


def _die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such guarantee
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def _emit(fd: int, message: dict[str, Any]) -> None:
    line = json.dumps(message)
    if len(line) > MAX_MESSAGE:
        message = {**message, "error": str(message.get("error", ""))[: MAX_MESSAGE // 2] + "..."}
        line = json.dumps(message)
    os.write(fd, (line + "\n").encode())


def _child(cmd: dict[str, Any], out_fd: int) -> int:
    """Runs in the forked child: becomes one serving instance."""
    # SIGKILL, not SIGTERM: an orphan finishing its async jobs while the platform, started
    # again, redelivers them would store their results twice. The platform has already
    # counted it dead; its jobs are redelivered once their claims lapse.
    _die_with_parent(signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the platform stops instances with SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ident = cmd["id"]
    log = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.update(cmd.get("env", {}))
    code_dir = Path(cmd["code_dir"])
    os.chdir(code_dir)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    _emit(
        out_fd,
        {"event": "listening", "id": ident, "pid": os.getpid(), "port": sock.getsockname()[1]},
    )
    try:
        cls = load_service(str(code_dir / cmd["entrypoint"]))
    except Exception as exc:
        traceback.print_exc()
        _emit(out_fd, {"event": "failed", "id": ident, "error": str(exc)})
        return 1

    def on_state(state: InstanceState) -> None:
        _emit(out_fd, {"event": state.status, "id": ident, "error": state.error})

    settings = RuntimeSettings.model_validate(cmd.get("settings", {}))
    jobs = cmd.get("jobs")
    source = LocalJobsConfig.model_validate(jobs).open if jobs else None

    def on_jobs(running: int) -> None:
        _emit(out_fd, {"event": "jobs", "id": ident, "running": running})

    return serve(
        cls, settings=settings, sock=sock, on_state=on_state, log_level="info", jobs=source,
        on_jobs=on_jobs,
    )  # fmt: skip


def _spawn(cmd: dict[str, Any], out_fd: int) -> None:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setpgid(0, 0)
            code = _child(cmd, out_fd)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)


def _reap(out_fd: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _emit(out_fd, {"event": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def main() -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out_fd = os.dup(sys.stdout.fileno())  # children point fd 1 at their log; keep the pipe
    stdin_fd = sys.stdin.fileno()
    _emit(out_fd, {"event": "launcher-ready", "pid": os.getpid()})
    pending = bytearray()
    while True:
        readable, _, _ = select.select([stdin_fd], [], [], 0.05)
        _reap(out_fd)
        if not readable:
            continue
        chunk = os.read(stdin_fd, 65536)
        if not chunk:  # the platform is gone; instances get SIGTERM through PDEATHSIG
            return
        pending.extend(chunk)
        while (end := pending.find(b"\n")) >= 0:
            cmd: dict[str, Any] = json.loads(bytes(pending[:end]))
            del pending[: end + 1]
            if cmd["op"] == "spawn":
                _spawn(cmd, out_fd)


def single() -> None:
    """Become the one instance the command on stdin describes (no zygote to fork from)."""
    out_fd = os.dup(sys.stdout.fileno())
    code = 1
    try:
        cmd: dict[str, Any] = json.loads(sys.stdin.readline())
        os.setpgid(0, 0)  # as a forked instance: out of the platform's group (Ctrl-C)
        code = _child(cmd, out_fd)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _activate_environment() -> None:
    """A version's built environment (``FLOWHOST_ENVIRONMENT_PATH``) first on sys.path."""
    path = os.environ.get("FLOWHOST_ENVIRONMENT_PATH")
    if path:
        from flowhost.lambdas.environments.fetch import activate

        activate(Path(path))


if __name__ == "__main__":
    _activate_environment()
    single() if sys.argv[1:] == ["--single"] else main()

"""Environment builds on one machine: the build job as a subprocess of the platform.

It runs with the platform's own interpreter and object directory, and inherits the
environment ``flowhost up`` was started with (so a user's uv configuration and index
credentials apply, as they do to their own ``uv``). Its output goes to
``<home>/logs/environments/<digest>.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["LocalBuildRunner"]

JOB = "flowhost.lambdas.environments.job"


class LocalBuildRunner:
    def __init__(
        self, objects_root: Path, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.objects_root = objects_root
        self.log_dir = log_dir
        self.env = env
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._digests: dict[int, str] = {}

    def start(self, digest: str) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{digest}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", JOB, "--digest", digest,
                 "--objects", str(self.objects_root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,  # a Ctrl-C of the platform is not its
            )  # fmt: skip
        self._running[proc.pid] = proc
        self._digests[proc.pid] = digest
        return f"pid {proc.pid}"

    def stopped(self, handle: str) -> str | None:
        pid = int(handle.removeprefix("pid "))
        proc = self._running.get(pid)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return None
            del self._running[pid]
            return f"exit code {code}"
        try:  # started by an earlier run of the platform (a PermissionError: it runs)
            os.kill(pid, 0)
        except ProcessLookupError:
            return "the platform restarted while it ran"
        except PermissionError:
            pass
        return None

    def close(self) -> list[str]:
        """Stop builds still running (the platform is stopping); returns their digests, so
        their records can be forgotten and the next deploy starts them afresh."""
        stopped = [self._digests[pid] for pid, p in self._running.items() if p.poll() is None]
        for proc in self._running.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._running.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._running.clear()
        self._digests.clear()
        return stopped

"""The RDS instance of the composed suite: Debian's PostgreSQL, as RDS runs it for flowhost.

Started by the stack bridge when the platform program creates ``aws:rds/instance:Instance``,
with what the program asked for (database name, master user name, port), on an address of
its own on loopback (``127.0.0.N``, so the stack's port is free there), TLS on with a
self-signed certificate, and password logins over TCP only with TLS (``hostssl``, as the
stack's ``rds.force_ssl=1``): a client that does not ask for TLS is refused, like on RDS.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RdsPostgres", "free_loopback_address", "postgres_bin"]

BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl."""
    found = [
        Path(d)
        for d in glob.glob(BIN_GLOB)
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file()
    ]
    if not found:
        raise RuntimeError(
            f"PostgreSQL server binaries not found (no initdb and pg_ctl under {BIN_GLOB}). "
            "Run scripts/test, which installs Debian's postgresql package."
        )
    return max(found, key=lambda p: tuple(int(x) for x in p.parent.name.split(".") if x.isdigit()))


def free_loopback_address(port: int) -> str:
    """A 127.0.0.N address (N >= 2) where ``port`` is free."""
    for last in range(2, 255):
        host = f"127.0.0.{last}"
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return host
    raise RuntimeError(f"no loopback address with port {port} free")


@dataclass
class RdsPostgres:
    """One PostgreSQL server standing in for an RDS instance; ``stop()`` removes it."""

    host: str
    port: int
    database: str
    username: str
    password: str
    root: Path
    bin: Path
    as_postgres: bool

    @classmethod
    def start(cls, *, database: str, username: str, port: int) -> RdsPostgres:
        binaries = postgres_bin()
        as_postgres = os.geteuid() == 0  # PostgreSQL refuses to run as root
        # Not pytest's tmp_path: its directories are 0o700, closed to the postgres user.
        root = Path(tempfile.mkdtemp(prefix="flowhost-rds-", dir="/tmp"))
        root.chmod(0o755)
        server = cls(
            host=free_loopback_address(port),
            port=port,
            database=database,
            username=username,
            password=secrets.token_urlsafe(18),
            root=root,
            bin=binaries,
            as_postgres=as_postgres,
        )
        try:
            server._init()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> None:
        command: Sequence[str] = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\nserver.log:\n{log}"
            )

    def _init(self) -> None:
        sockets = self.root / "sockets"
        sockets.mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_postgres:
            for path in (self.root, sockets, pwfile):
                shutil.chown(path, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.username, "--pwfile", str(pwfile),
                  "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")  # fmt: skip
        pwfile.unlink()
        # TLS like RDS with force_ssl: a certificate of the instance's own, TCP only with TLS.
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={self.host}", "-keyout", str(self.data / "server.key"),
             "-out", str(self.data / "server.crt")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        (self.data / "server.key").chmod(0o600)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.0/8 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
        )
        if self.as_postgres:
            for name in ("server.key", "server.crt", "pg_hba.conf"):
                shutil.chown(self.data / name, "postgres", "postgres")
        options = (
            f"-p {self.port} -k {sockets} -c listen_addresses={self.host} -c ssl=on "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip
        self._run("createdb", "-h", str(sockets), "-p", str(self.port), "-U", self.username,
                  self.database)  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

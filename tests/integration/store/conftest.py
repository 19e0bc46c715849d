"""Fixtures of the store tests: a real PostgreSQL server for the session, and ``store``.

The server is Debian's ``postgresql`` package (``scripts/test`` installs it), run from a
private data directory on a loopback port and stopped at the end of the session. Each
test gets an empty database (its schema dropped and created again). PostgreSQL refuses
to run as root, so when the tests run as root its commands run as the ``postgres`` user
(``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from flowhost.lambdas.store import StateStore
from tests.integration.support import free_port

HOST = "127.0.0.1"
USER = "flowhost"
DATABASE = "flowhost_tests"
BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl."""
    found = [
        Path(d)
        for d in glob.glob(BIN_GLOB)
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file()
    ]
    if not found:
        pytest.fail(
            f"PostgreSQL server binaries not found (no initdb and pg_ctl under {BIN_GLOB}). "
            "Run scripts/test, which installs Debian's postgresql package, or "
            "`apt-get install postgresql` yourself.",
            pytrace=False,
        )

    def major(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.parent.name.split(".") if p.isdigit())

    return max(found, key=major)


@dataclass
class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 with trust auth for the ``flowhost`` role."""

    bin: Path
    root: Path  # holds data/, sockets/ and server.log; removed at teardown
    port: int
    as_postgres: bool  # running as root: commands run as the postgres user

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def run(self, tool: str, *args: str, timeout: float = 60.0) -> None:
        command: Sequence[str] = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            pytest.fail(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\nserver.log:\n{log}",
                pytrace=False,
            )

    def start(self) -> None:
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8",
                 "--no-locale", "--no-sync")  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root / 'sockets'} -c listen_addresses={HOST} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
                 "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@{HOST}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=HOST, port=self.port, user=USER, dbname=database, autocommit=True
        )

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def reset_database(self, name: str) -> str:
        """Empty ``name`` again (faster than a new database, which costs a checkpoint)."""
        with self.connect(name) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, in its own directory under /tmp."""
    binaries = _postgres_bin()
    as_postgres = os.geteuid() == 0
    # Not pytest's tmp_path: its directories are 0o700, which the postgres user can't enter.
    root = Path(tempfile.mkdtemp(prefix="flowhost-pg-", dir="/tmp"))
    root.chmod(0o755)
    (root / "sockets").mkdir()
    if as_postgres:
        for path in (root, root / "sockets"):
            shutil.chown(path, "postgres", "postgres")
    server = PostgresServer(binaries, root, free_port(), as_postgres)
    try:
        server.start()
        server.create_database(DATABASE)
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """An empty database for one test: the session's test database, with its schema reset."""
    return postgres.reset_database(DATABASE)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    """A migrated ``StateStore``, once on SQLite and once on PostgreSQL."""
    state = StateStore.open(store_url)
    state.migrate()
    yield state
    state.close()

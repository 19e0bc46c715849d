"""Fixtures of the integration tier: real Metaflow runs, real ``flowhost serve`` on loopback.

Every subprocess gets ``base_env``: Metaflow pointed at a private local datastore for
this session, so runs made here never mix with a developer's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import (
    SERVICES,
    SentimentRuns,
    ServeFactory,
    Server,
    free_port,
    isolated_env,
    moto_clients,
    start_server,
    train_sentiment,
)


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every subprocess the integration tests start."""
    return isolated_env(tmp_path_factory.mktemp("metaflow"))


@pytest.fixture(scope="session")
def sentiment_runs(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> SentimentRuns:
    """Runs the example flow for real, twice: an older run, then the latest one."""
    ids = tmp_path_factory.mktemp("run-ids")
    older = train_sentiment(base_env, ids / "older", "--smoothing", "5")
    latest = train_sentiment(base_env, ids / "latest")
    assert older != latest
    return SentimentRuns(older=older, latest=latest)


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture
def serve(base_env: dict[str, str], server_logs: Path) -> Iterator[ServeFactory]:
    """``serve(target, *options, ready=True, env={...})`` starts a server for one test."""
    started: list[Server] = []

    def start(
        target: str, *options: str, ready: bool = True, env: Mapping[str, str] | None = None
    ) -> Server:
        server = start_server(
            target, *options, env={**base_env, **(env or {})}, log_dir=server_logs, ready=ready
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sentiment(
    sentiment_runs: SentimentRuns, base_env: dict[str, str], server_logs: Path
) -> Iterator[Server]:
    """examples/services/sentiment.py, bound to the latest run (resolved at start)."""
    server = start_server("examples/services/sentiment.py", env=base_env, log_dir=server_logs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def toolbox(base_env: dict[str, str], server_logs: Path) -> Iterator[Server]:
    """tests/integration/services/toolbox.py with a 64 KiB body limit."""
    server = start_server(
        str(SERVICES / "toolbox.py"), "--max-body-size", "64Ki", env=base_env, log_dir=server_logs
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """AWS APIs for the AWS ports' tests: moto in server mode on 127.0.0.1 (real HTTP,
    real boto3 clients), for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_client(moto_endpoint: str) -> Iterator[Callable[[str], Any]]:
    """``aws_client("s3")``: a boto3 client against the moto server, closed afterwards."""
    with moto_clients(moto_endpoint) as make:
        yield make

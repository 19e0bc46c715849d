"""Fixtures of the e2e tier: the local platform (``flowhost up``) driven like a user.

Every subprocess gets ``base_env``: Metaflow pointed at a private local datastore for this
session, where the example flow is run for real once, so the example service has a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import EXAMPLE, Platform, PlatformFactory, start_platform
from tests.integration.support import isolated_env, train_sentiment


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every subprocess (and the Metaflow view of this process)."""
    return isolated_env(tmp_path_factory.mktemp("e2e-metaflow"))


@pytest.fixture(scope="session")
def sentiment_run(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """Runs the example flow for real; its pathspec (the latest successful run)."""
    return train_sentiment(base_env, tmp_path_factory.mktemp("e2e-run-id") / "run-id")


@pytest.fixture(scope="session")
def platform_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-platform-logs")


class _Platforms:
    """Starts platforms and stops every one of them at teardown, even after a failure."""

    def __init__(
        self, env: dict[str, str], logs: Path, tmp: pytest.TempPathFactory, sentiment_run: str
    ) -> None:
        self.env, self.logs, self.tmp = env, logs, tmp
        self.started: list[Platform] = []
        assert sentiment_run  # the example flow has run: the example service can deploy

    def launch(
        self,
        *options: str,
        home: Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Platform:
        home = home or self.tmp.mktemp("flowhost-home")
        platform = start_platform(
            *options, home=home, env={**self.env, **(env or {})}, log_dir=self.logs, port=port
        )
        self.started.append(platform)
        return platform

    def stop_all(self) -> None:
        for platform in self.started:
            platform.stop()


@pytest.fixture
def launch(
    base_env: dict[str, str],
    platform_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    sentiment_run: str,
) -> Iterator[PlatformFactory]:
    """``launch(*options, home=None, port=None, env=None)`` starts ``flowhost up`` for one
    test (``env`` adds to the session's environment)."""
    platforms = _Platforms(base_env, platform_logs, tmp_path_factory, sentiment_run)
    try:
        yield platforms.launch
    finally:
        platforms.stop_all()


@pytest.fixture
def platform(launch: PlatformFactory) -> Platform:
    """A fresh platform with nothing deployed."""
    return launch()


@pytest.fixture(scope="session")
def sentiment_platform(
    base_env: dict[str, str],
    platform_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    sentiment_run: str,
) -> Iterator[Platform]:
    """One platform for read-only tests: the example service deployed once, as production v1.

    Tests that use it must not deploy, promote or undeploy anything.
    """
    platforms = _Platforms(base_env, platform_logs, tmp_path_factory, sentiment_run)
    try:
        platform = platforms.launch()
        version = platform.deploy(EXAMPLE, promote=True)
        assert (version["number"], version["status"]) == (1, "ready")
        yield platform
    finally:
        platforms.stop_all()

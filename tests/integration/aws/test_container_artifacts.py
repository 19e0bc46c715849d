"""The serving container reads its artifacts the way it would on AWS: the example service
(``Artifacts(flow="SentimentFlow")``) pinned to a real Metaflow run, with Metaflow's
settings in the environment (here the local metadata and datastore the session's runs
were made in), in the Metaflow namespace the platform or the class names, never the
global one. A container that cannot read its run stops at start with one line, exit 2."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.aws.container_support import (
    Container,
    Package,
    Platform,
    container_env,
    container_starter,
    finished,
    make_sentiment_package,
    sentiment_env,
)
from tests.integration.support import SentimentRuns

Start = Callable[[dict[str, str]], Container]


@pytest.fixture(scope="module")
def sentiment_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    return make_sentiment_package(tmp_path_factory)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    yield from container_starter(tmp_path)


@pytest.fixture
def env(
    base_env: dict[str, str], moto_endpoint: str, platform: Platform, sentiment_package: Package,
    tmp_path: Path,
) -> dict[str, str]:  # fmt: skip
    """The container's environment, before it is pointed at a run."""
    uri = platform.upload(sentiment_package)
    return container_env(base_env, moto_endpoint, platform, uri, sentiment_package.digest, tmp_path)


def serves_the_run(container: Container, run: str) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{container.port}", timeout=10.0) as client:
        container.wait_ready(client)
        assert client.get("/info").json()["run"] == run
        for path in ("/predict", "/sentiment/predict", "/sentiment@v1/predict"):
            answer = client.post(path, json={"text": "a wonderful, great film"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["label"] == "positive"
    assert container.stop() == 0, container.output()


@pytest.mark.parametrize("namespace", [None, "user:flowhost-tests"])
def test_the_pinned_run_is_read_in_the_platform_namespace(
    env: dict[str, str], sentiment_runs: SentimentRuns, start: Start, namespace: str | None
) -> None:
    """The older run, not the latest: the container serves exactly the version's run."""
    extra = {"FLOWHOST_METAFLOW_NAMESPACE": namespace} if namespace else {}
    serves_the_run(start(sentiment_env(env, sentiment_runs.older, **extra)), sentiment_runs.older)


def test_an_unpinned_binding_resolves_in_the_namespace_before_serving(
    env: dict[str, str], sentiment_runs: SentimentRuns, start: Start
) -> None:
    serves_the_run(start(sentiment_env(env, None)), sentiment_runs.latest)


def test_a_run_outside_the_namespace_stops_the_container_with_one_line(
    env: dict[str, str], sentiment_runs: SentimentRuns, start: Start
) -> None:
    run = sentiment_runs.latest
    wrong = sentiment_env(env, run, FLOWHOST_METAFLOW_NAMESPACE="production:sentimentflow-0-x")
    container = start(wrong)
    assert finished(container) == 2, container.output()
    errors = [line for line in container.stderr.read_text().splitlines()
              if "Traceback" in line or line.startswith("flowhost container:")]  # fmt: skip
    root = env["METAFLOW_DATASTORE_SYSROOT_LOCAL"]
    assert errors == [
        f"flowhost container: artifacts: run {run} is not readable in namespace "
        "'production:sentimentflow-0-x' with METAFLOW_DEFAULT_METADATA=local, "
        f"METAFLOW_DEFAULT_DATASTORE=local (METAFLOW_DATASTORE_SYSROOT_LOCAL={root}): "
        "MetaflowNamespaceMismatch (Object not in namespace 'production:sentimentflow-0-x'). "
        "Check the platform's flowhost:metaflow settings and that the task role may read "
        "the datastore root."
    ], container.output()


def test_a_datastore_that_lacks_the_run_stops_the_container_with_one_line(
    env: dict[str, str], sentiment_runs: SentimentRuns, start: Start, tmp_path: Path
) -> None:
    elsewhere = str(tmp_path / "empty-datastore")
    container = start(
        sentiment_env(env, sentiment_runs.latest, METAFLOW_DATASTORE_SYSROOT_LOCAL=elsewhere)
    )
    assert finished(container) == 2, container.output()
    lines = container.stderr.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line], container.output()
    (line,) = [line for line in lines if line.startswith("flowhost container:")]
    assert line.startswith(f"flowhost container: artifacts: run {sentiment_runs.latest} is not ")
    assert f"METAFLOW_DATASTORE_SYSROOT_LOCAL={elsewhere}" in line
    assert "MetaflowNotFound" in line
    assert line.endswith("may read the datastore root.")

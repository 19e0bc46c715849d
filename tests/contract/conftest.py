"""Fixtures of the contract tier: schemathesis runs over the published OpenAPI of a real
``flowhost up`` (started and driven by ``tests.e2e.harness``), with every check.

``contract_config`` is the one schemathesis configuration both documents are fuzzed with:
bounded examples, a fixed seed, derandomized, no example database, every check on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig

from flowhost.services.openapi import CALLBACK_URL_PATTERN
from tests.e2e.conftest import base_env, platform_logs, sentiment_run  # noqa: F401 (fixtures)
from tests.e2e.harness import EXAMPLE, Platform, start_platform
from tests.integration.support import ROOT

HERE = Path(__file__).resolve().parent
TYPED = HERE / "services" / "typed.py"
SHOW_DATA = ROOT / "examples" / "services" / "show_data.py"
MAX_EXAMPLES = 25
SEED = 20261207
# Where fuzzed callbacks go: a loopback port nothing listens on (the discard port), so the
# platform's deliveries fail at once and no traffic leaves this machine.
CALLBACK_SINK = "http://127.0.0.1:9/hook"
_CALLBACK = re.compile(CALLBACK_URL_PATTERN)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's ``from_fixture`` tests read and rename ``node._nodeid`` (to name
    each operation in reports), an attribute pytest 9.2 no longer has: give it one."""
    setattr(request.node, "_nodeid", request.node.nodeid)  # noqa: B010


def contract_config(operations: list[dict[str, Any]] | None = None) -> SchemathesisConfig:
    """Every check, every phase but stateful, bounded and deterministic."""
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": True},
            "operations": operations or [],
        }
    )


def session() -> requests.Session:
    """An HTTP session that ignores proxy settings: all traffic stays on 127.0.0.1."""
    http = requests.Session()
    http.trust_env = False
    return http


def keep_callbacks_local(case: Case) -> None:
    """Point the callback URL of a generated request at ``CALLBACK_SINK`` when it is valid,
    so fuzzed callbacks never leave this machine (the case stays valid: the sink is a valid
    value too).

    A positive case with an invalid callback URL gets the sink as well: schemathesis 4.32's
    coverage phase cannot generate a header value its pattern requires characters other
    than letters and digits for (``https://``), and seeds such an optional header with a
    negative value ("0") even in cases it calls positive. Negative cases keep their value.
    """
    headers = case.headers
    if headers is None:
        return
    positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    for name in list(headers):
        value = headers[name]
        is_callback = name.lower() == "flowhost-callback-url" and isinstance(value, str)
        if is_callback and (positive or _CALLBACK.fullmatch(value)):
            headers[name] = CALLBACK_SINK


@pytest.fixture(scope="session")
def contract_platform(
    base_env: dict[str, str],  # noqa: F811
    platform_logs: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    sentiment_run: str,  # noqa: F811
) -> Iterator[Platform]:
    """``flowhost up`` with the example services and a typed test service in production."""
    assert sentiment_run  # the example flow has run: the example services can deploy
    platform = start_platform(
        home=tmp_path_factory.mktemp("contract-home"), env=base_env, log_dir=platform_logs
    )
    try:
        for service in (EXAMPLE, SHOW_DATA, TYPED):
            version = platform.deploy(service, promote=True)
            assert version["status"] == "ready", version
        yield platform
    finally:
        platform.stop()

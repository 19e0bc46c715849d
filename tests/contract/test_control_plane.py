"""The control plane's published OpenAPI (``/api/openapi.json``) holds under fuzzing:
schemathesis, every check, over the API of a real ``flowhost up`` with one service deployed.

It runs on a platform of its own: fuzzed calls may promote, roll back or undeploy what they
find. One expectation is widened, not skipped: a deploy (``POST .../versions``) whose body is
valid by the schema may still answer 422, because a definition has rules across fields that
JSON Schema does not state (``gpu_type`` needs ``gpu``, ``min_instances`` at most
``max_instances``); the answer names the field. Every other operation and check runs as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.openapi import from_url
from schemathesis.schemas import BaseSchema

from tests.contract.conftest import TYPED, contract_config, session
from tests.e2e.harness import Platform, start_platform

HTTP = session()
DEPLOY = {
    "include-path": "/api/services/{service}/versions",
    "include-method": "POST",
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "424", "5xx"]
        }
    },
}


@pytest.fixture(scope="session")
def control_platform(
    base_env: dict[str, str], platform_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    platform = start_platform(
        home=tmp_path_factory.mktemp("contract-api-home"), env=base_env, log_dir=platform_logs
    )
    try:
        assert platform.deploy(TYPED, promote=True)["status"] == "ready"
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="session")
def control_plane_schema(control_platform: Platform) -> BaseSchema:
    return from_url(f"{control_platform.url}/api/openapi.json", config=contract_config([DEPLOY]))


schema = schemathesis.pytest.from_fixture("control_plane_schema")


@schema.parametrize()
def test_control_plane_contract(case: Case) -> None:
    case.call_and_validate(session=HTTP, timeout=30)

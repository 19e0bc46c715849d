"""The services' published OpenAPI holds under fuzzing: schemathesis, every check, over the
platform catalog of ``flowhost up`` (``/openapi.json``: every production endpoint through the
router, its ``/async`` variant and ``/requests/{id}``), with the example services and a
service of typed fields deployed. No operation or check is excluded.

One kind of generated case is left out, on the ``/async`` operations: a request with an
unknown header, which schemathesis expects to be rejected once an operation declares
header parameters. HTTP says the opposite (RFC 9110, section 5.1: a recipient ignores
header fields it does not recognize; proxies add their own), so the platform accepts it.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.openapi import from_url
from schemathesis.schemas import BaseSchema

from tests.contract.conftest import contract_config, keep_callbacks_local, session
from tests.e2e.harness import Platform

HTTP = session()
ASYNC = {"include-path-regex": "/async$", "generation": {"allow-extra-parameters": False}}


@pytest.fixture(scope="session")
def services_schema(contract_platform: Platform) -> BaseSchema:
    return from_url(f"{contract_platform.url}/openapi.json", config=contract_config([ASYNC]))


schema = schemathesis.pytest.from_fixture("services_schema")


@schema.parametrize()
def test_services_contract(case: Case) -> None:
    keep_callbacks_local(case)
    case.call_and_validate(session=HTTP, timeout=30)

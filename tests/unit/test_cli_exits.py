"""The exit codes of the ``flowhost`` command, by class of failure (flowhost/cli/exits.py),
and the shipped JSON Schemas of the ``--json`` outputs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from flowhost.cli.exits import EXIT_CODES, UsageError, exit_code_of
from flowhost.cli.output import schema_of, wants_json
from flowhost.client_errors import (
    AuditRefused,
    ContractRefused,
    DeployTimedOut,
    RequestTimedOut,
    raise_for,
    refusal,
)
from flowhost.errors import (
    ArtifactError,
    DeployError,
    FlowhostError,
    NotFoundError,
    ServiceTargetError,
    SpecError,
    StateUnavailableError,
)
from flowhost.targets import ConfigError

SCHEMAS = Path(__file__).parents[2] / "flowhost" / "cli" / "schemas"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (FlowhostError("cannot reach the platform"), 1),
        (DeployError("v2 failed to deploy"), 1),
        (SpecError("bad class"), 1),
        (ArtifactError("no run"), 1),
        (StateUnavailableError("busy"), 1),
        (UsageError("--data: not valid JSON"), 2),
        (ConfigError("config.toml: not valid TOML"), 2),
        (ServiceTargetError("missing.py: no such file"), 2),
        (NotFoundError("no service 'x'"), 3),
        (AuditRefused("failed 1 audit(s)"), 4),
        (ContractRefused("would break clients of v1"), 4),
        (DeployTimedOut("not ready within 1s"), 5),
        (RequestTimedOut("still running after 1s"), 5),
    ],
)
def test_each_class_of_failure_has_its_exit_code(error: FlowhostError, code: int) -> None:
    assert exit_code_of(error) == code


def _answer(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@pytest.mark.parametrize(
    ("status", "code", "message", "exit_code"),
    [
        (404, "not_found", "service 'x' not found", 3),
        (404, "request_not_found", "no request 'r'", 3),
        (409, "deploy_failed", "v1 is still the target of alias(es) production", 1),
        (
            409,
            "deploy_failed",
            "promoting s v2 to production would break clients of v1: endpoint 'p' was removed",
            4,
        ),
        (409, "deploy_failed", "s v2 failed its audits, so it is not promoted: a: boom", 4),
        (409, "audit_failed", "s v2 failed its audits, so it is not promoted: a: boom", 4),
        (409, "contract_broken", "promoting s v2 to production would break clients", 4),
        (503, "state_unavailable", "the state database is busy", 1),
        (422, "invalid_request", "body.version: field required", 1),
    ],
)
def test_api_error_bodies_map_to_exit_codes(
    status: int, code: str, message: str, exit_code: int
) -> None:
    """What the client raises for an API error body, reclassified as promote does."""
    with pytest.raises(FlowhostError) as caught:
        raise_for(_answer(status, code, message))
    raised = caught.value
    if isinstance(raised, DeployError):
        raised = refusal(raised)
    assert raised.message == message
    assert exit_code_of(raised) == exit_code


def test_every_mapped_code_is_a_documented_exit_code() -> None:
    assert set(EXIT_CODES.values()) <= {2, 3, 4, 5}
    documented = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for code in EXIT_CODES:
        assert f"`{code}`" in documented, f"docs/cli.md does not name error code {code!r}"


def test_wants_json_reads_the_command_line_up_to_a_double_dash() -> None:
    assert wants_json(["ls", "--json"])
    assert not wants_json(["ls"])
    assert not wants_json(["invoke", "s", "e", "--", "--json"])


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.stem)
def test_each_shipped_schema_is_a_valid_json_schema(path: Path) -> None:
    schema = schema_of(path.stem)
    assert schema == json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_schemas_can_fail() -> None:
    """A wrong document is rejected: the e2e validations are not vacuous."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"error": {"code": "x", "message": "m", "exit_code": 0}}, schema_of("error")
        )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"service": "s", "alias": "a"}, schema_of("contract-check"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "r"}, schema_of("request"))

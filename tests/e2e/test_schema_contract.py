"""Schema contracts on promote: a breaking v2 is refused with the differences listed."""

from __future__ import annotations

import pytest

from flowhost.errors import DeployError
from tests.e2e.harness import EXAMPLE, SERVICES, Platform

STRICT = SERVICES / "sentiment_strict.py"


def test_breaking_change_needs_allow_breaking(platform: Platform) -> None:
    platform.deploy(EXAMPLE, promote=True)

    with pytest.raises(DeployError) as caught:
        platform.deploy(STRICT, promote=True)

    assert caught.value.message == (
        "promoting sentiment v2 to production would break clients of v1: "
        "endpoint 'predict' request: field 'language' is a new required field; "
        "endpoint 'predict' response: field 'score' was removed. Keep the old contract, or "
        "pass allow_breaking (--allow-breaking) if clients are ready."
    )
    info = platform.service("sentiment")
    assert info["aliases"] == {"production": 1}
    assert [v["status"] for v in info["versions"]] == ["ready", "ready"]
    old = platform.http.post("/sentiment/predict", json={"text": "great"})
    assert old.status_code == 200
    assert old.headers["x-flowhost-version"] == "v1"

    with pytest.raises(DeployError, match="field 'language' is a new required field"):
        platform.client.promote("sentiment", 2)
    refused = platform.http.post(
        "/api/services/sentiment/aliases/production", json={"version": 2}
    )  # the API's own code says which refusal it is
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "contract_broken")
    result = platform.client.promote("sentiment", 2, allow_breaking=True)

    assert result == {"service": "sentiment", "alias": "production", "version": 2, "previous": 1}
    new = platform.http.post("/sentiment/predict", json={"text": "great", "language": "en"})
    assert new.status_code == 200, new.text
    assert new.headers["x-flowhost-version"] == "v2"
    assert new.json() == {"label": "positive"}
    rejected = platform.http.post("/sentiment/predict", json={"text": "great"})
    assert rejected.status_code == 422
    [promote] = [e for e in platform.client.events("sentiment") if e["kind"] == "promote"][:1]
    assert promote["version"] == 2
    assert promote["detail"]["breaking_changes_allowed"] == [
        "endpoint 'predict' request: field 'language' is a new required field",
        "endpoint 'predict' response: field 'score' was removed",
    ]


def test_compatible_change_promotes_without_allow_breaking(platform: Platform) -> None:
    platform.deploy(EXAMPLE, promote=True)

    version = platform.deploy(SERVICES / "sentiment_v2.py", promote=True)

    assert version["number"] == 2
    assert platform.service("sentiment")["aliases"] == {"production": 2}
    [promote] = [e for e in platform.client.events("sentiment") if e["kind"] == "promote"][:1]
    assert promote["detail"] == {}

"""Versions and aliases on ``flowhost up``: promote, rollback, undeploy, and failed deploys."""

from __future__ import annotations

import httpx
import pytest

from flowhost.errors import DeployError
from tests.e2e.harness import EXAMPLE, SERVICES, Platform, accepts_connections
from tests.integration.support import poll

V2 = SERVICES / "sentiment_v2.py"
BROKEN = SERVICES / "sentiment_broken.py"


def predict(platform: Platform, target: str = "sentiment") -> httpx.Response:
    return platform.http.post(f"/{target}/predict", json={"text": "great value"})


def production_of(platform: Platform, service: str = "sentiment") -> int | None:
    return platform.service(service)["aliases"].get("production")


def test_promote_rollback_and_undeploy(platform: Platform) -> None:
    v1 = platform.deploy(EXAMPLE, promote=True)
    v2 = platform.deploy(V2, promote=True)
    assert (v1["number"], v2["number"]) == (1, 2)
    assert production_of(platform) == 2

    # production answers from v2 (its body names its model); v1 is still reachable pinned
    now = predict(platform)
    assert now.status_code == 200, now.text
    assert now.headers["x-flowhost-version"] == "v2"
    assert now.json()["model"] == "naive-bayes-v2"
    pinned = predict(platform, "sentiment@v1")
    assert pinned.headers["x-flowhost-version"] == "v1"
    assert "model" not in pinned.json()

    assert platform.client.rollback("sentiment") == {
        "service": "sentiment",
        "alias": "production",
        "version": 1,
    }
    back = predict(platform)
    assert back.status_code == 200, back.text
    assert back.headers["x-flowhost-version"] == "v1"
    assert set(back.json()) == {"label", "score"}

    # v1 is production again: undeploying it is refused, naming the alias
    refused = platform.http.delete("/api/services/sentiment/versions/1")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "deploy_failed"
    assert error["message"].startswith("sentiment v1 is still the target of alias(es) production.")
    with pytest.raises(DeployError, match="alias\\(es\\) production"):
        platform.client.undeploy("sentiment", 1)
    assert predict(platform).headers["x-flowhost-version"] == "v1"

    # move production away; now v1 goes, with its instances
    v1_ports = platform.instances("sentiment", 1)["ports"]
    assert v1_ports
    assert platform.client.promote("sentiment", 2)["previous"] == 1
    gone = platform.client.undeploy("sentiment", 1)
    assert (gone["number"], gone["status"]) == (1, "undeployed")

    assert platform.service("sentiment")["aliases"] == {"production": 2}
    assert "v1" not in platform.service("sentiment")["instances"]
    poll(
        "v1's instance ports to close",
        lambda: all(not accepts_connections(p) for p in v1_ports) or None,
        timeout=10,
    )
    missing = predict(platform, "sentiment@v1")
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["message"] == (
        "service 'sentiment' has no running version v1. Versions: v2."
    )
    assert predict(platform).headers["x-flowhost-version"] == "v2"

    kinds = [(e["kind"], e["version"]) for e in platform.client.events("sentiment")]
    assert kinds[:4] == [("undeploy", 1), ("promote", 2), ("rollback", 1), ("promote", 2)]


def test_failed_deploy_reports_why_and_leaves_production_serving(platform: Platform) -> None:
    platform.deploy(EXAMPLE, promote=True)
    progress: list[str] = []

    with pytest.raises(DeployError) as caught:
        platform.deploy(BROKEN, promote=True, on_progress=progress.append)

    message = caught.value.message
    assert message.startswith("sentiment v2 failed to deploy: sentiment@v2: the instance failed")
    assert "the model file is corrupt (checksum 0xdeadbeef)" in message
    assert any(line.startswith("failed: ") for line in progress), progress

    info = platform.service("sentiment")
    assert info["aliases"] == {"production": 1}
    statuses = {v["number"]: (v["status"], v["error"]) for v in info["versions"]}
    assert statuses[1] == ("ready", None)
    assert statuses[2][0] == "failed"
    assert "the model file is corrupt" in statuses[2][1]
    assert "v2" not in info["instances"]

    still = predict(platform)
    assert still.status_code == 200, still.text
    assert still.headers["x-flowhost-version"] == "v1"
    pinned = predict(platform, "sentiment@v2")
    assert pinned.status_code == 404
    assert pinned.json()["error"]["message"].endswith("Versions: v1.")

    with pytest.raises(DeployError, match="sentiment v2 is failed, not ready"):
        platform.client.promote("sentiment", 2)
    assert production_of(platform) == 1

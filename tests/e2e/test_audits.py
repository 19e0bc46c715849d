"""Audits gate promotion: ``@audit`` methods and functions passed to ``flowhost.deploy``.

The tests share one platform and one service, ``quality``; each reads the version numbers
it made rather than assuming them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowhost.client
from flowhost.client import AuditClient
from flowhost.errors import DeployError, NotFoundError
from tests.e2e.harness import SERVICES, Platform, start_platform

BAD = SERVICES / "quality_bad.py"
GOOD = SERVICES / "quality_good.py"


@pytest.fixture(scope="module")
def quality_platform(
    base_env: dict[str, str],
    platform_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    platform = start_platform(
        home=tmp_path_factory.mktemp("audits-home"), env=base_env, log_dir=platform_logs
    )
    try:
        yield platform
    finally:
        platform.stop()


def latest(platform: Platform) -> dict[str, Any]:
    return platform.service("quality")["versions"][-1]


def production_of(platform: Platform) -> int | None:
    try:
        return platform.service("quality")["aliases"].get("production")
    except NotFoundError:  # nothing deployed yet
        return None


def audit_events(platform: Platform, number: int) -> list[dict[str, Any]]:
    return [
        e
        for e in platform.client.events("quality")
        if e["version"] == number and e["kind"].startswith("audit_")
    ]


def test_failing_audit_blocks_promotion(quality_platform: Platform) -> None:
    before = production_of(quality_platform)

    with pytest.raises(DeployError) as caught:
        quality_platform.deploy(BAD, promote=True)

    version = latest(quality_platform)
    number = version["number"]
    assert version["status"] == "ready"  # it runs; it is just not trusted with traffic
    assert caught.value.message.startswith(
        f"quality v{number} failed 1 audit(s), so it was not promoted: knows_pass_from_fail: "
        "AssertionError: a score of 90 graded 'fail'"
    )
    assert production_of(quality_platform) == before
    [event] = audit_events(quality_platform, number)
    assert event["kind"] == "audit_failed"
    assert event["detail"]["results"][0]["name"] == "knows_pass_from_fail"

    with pytest.raises(DeployError) as refused:
        quality_platform.client.promote("quality", number)
    assert refused.value.code == "audit_failed"  # the API's own code, not its wording
    assert refused.value.message.startswith(
        f"quality v{number} failed its audits, so it is not promoted: knows_pass_from_fail: "
        "AssertionError: a score of 90 graded 'fail'"
    )
    assert production_of(quality_platform) == before


def test_passing_audit_promotes(quality_platform: Platform) -> None:
    progress: list[str] = []
    version = quality_platform.deploy(GOOD, promote=True, on_progress=progress.append)

    number = version["number"]
    assert "audit knows_pass_from_fail: passed" in progress
    assert progress[-1] == f"promoted quality v{number} to production"
    assert production_of(quality_platform) == number
    assert [e["kind"] for e in audit_events(quality_platform, number)] == ["audit_passed"]
    response = quality_platform.http.post("/quality/grade", json={"score": 90})
    assert response.status_code == 200, response.text
    assert response.headers["x-flowhost-version"] == f"v{number}"
    assert response.json() == {"grade": "pass"}


def test_deploy_function_runs_passed_audits(
    quality_platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[int] = []

    def fails_borderline(client: AuditClient) -> None:
        seen.append(client.version)
        assert client.call("grade", {"score": 49})["grade"] == "pass", "49 should pass"

    def knows_borderline(client: AuditClient) -> None:
        seen.append(client.version)
        assert client.call("grade", {"score": 50})["grade"] == "pass"

    before = production_of(quality_platform)
    with pytest.raises(DeployError, match="fails_borderline: AssertionError: 49 should pass"):
        flowhost.client.deploy(
            GOOD, audits=[fails_borderline], promote=True, url=quality_platform.url, timeout=60
        )
    blocked = latest(quality_platform)["number"]
    assert seen == [blocked]
    assert production_of(quality_platform) == before != blocked
    names = [r["name"] for r in audit_events(quality_platform, blocked)[0]["detail"]["results"]]
    assert names == ["knows_pass_from_fail", "fails_borderline"]  # its own audits, then ours

    version = flowhost.client.deploy(
        GOOD, audits=[knows_borderline], promote=True, url=quality_platform.url, timeout=60
    )
    assert seen == [blocked, version["number"]]
    assert production_of(quality_platform) == version["number"]
    err = capsys.readouterr().err
    assert "[flowhost] audit fails_borderline: FAILED AssertionError: 49 should pass" in err
    assert "[flowhost] audit knows_borderline: passed" in err
    assert f"[flowhost] promoted quality v{version['number']} to production" in err

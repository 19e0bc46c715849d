"""``flowhost up --auth token``: the API needs the deployer token, service routes the
invoker token; the tokens live in the platform's home (owner-only), a rotation takes
effect without a restart, and a non-loopback address without token auth is refused."""

from __future__ import annotations

import stat
from pathlib import Path

from flowhost.client import Client
from flowhost.lambdas.local.access import rotate
from flowhost.targets import Target
from tests.e2e.harness import EXAMPLE, Platform, PlatformFactory
from tests.integration.support import poll, run_flowhost


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def token(platform: Platform, role: str) -> str:
    return (platform.home / "tokens" / role).read_text().strip()


def test_roles_gate_the_api_and_the_service_routes(launch: PlatformFactory) -> None:
    platform = launch("--auth", "token")
    folder = platform.home / "tokens"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for role in ("deployer", "invoker"):
        assert stat.S_IMODE((folder / role).stat().st_mode) == 0o600
    deployer, invoker = token(platform, "deployer"), token(platform, "invoker")
    assert deployer != invoker

    http = platform.http
    assert http.get("/api/healthz").status_code == 200  # probes carry no credentials
    bare = http.get("/api/services")
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"].startswith("Bearer")
    assert bare.json()["error"]["code"] == "unauthorized"
    wrong = http.get("/api/services", headers=bearer("not-a-token"))
    assert wrong.status_code == 401
    invoked = http.get("/api/services", headers=bearer(invoker))
    assert (invoked.status_code, invoked.json()["error"]["code"]) == (403, "forbidden")
    assert http.get("/api/services", headers=bearer(deployer)).status_code == 200

    # The CLI's auth = "token" target, its token read by a command, deploys.
    target = Target(
        name="local-token", url=platform.url, auth="token",
        token_command=["cat", str(folder / "deployer")],
    )  # fmt: skip
    with Client(target=target) as client:
        version = client.deploy(str(EXAMPLE), promote=True, timeout=60.0)
    assert version["status"] == "ready"

    body = {"text": "a fine day"}
    assert http.post("/sentiment/predict", json=body).status_code == 401
    assert http.post("/sentiment/predict", json=body, headers=bearer(invoker)).status_code == 200
    assert http.post("/sentiment/predict", json=body, headers=bearer(deployer)).status_code == 200

    # A rotation: the old invoker token stops working, the new one works, no restart.
    new = rotate(platform.home.resolve(), "invoker").read_text().strip()
    assert new != invoker

    def old_refused() -> bool | None:
        answer = http.post("/sentiment/predict", json=body, headers=bearer(invoker))
        return answer.status_code == 401 or None

    poll("the rotated token to be refused", old_refused, timeout=10)
    assert http.post("/sentiment/predict", json=body, headers=bearer(new)).status_code == 200


def test_open_services_need_no_token_but_the_api_does(launch: PlatformFactory) -> None:
    platform = launch("--auth", "token", "--open-services")
    http = platform.http
    assert http.get("/api/services").status_code == 401
    assert http.get("/openapi.json").status_code == 200


def test_a_non_loopback_address_without_token_auth_is_refused(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    result = run_flowhost("up", "--host", "0.0.0.0", "--home", str(tmp_path), env=base_env)
    assert result.returncode == 2, result.stderr
    assert "--auth token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "state.db").exists()  # nothing started

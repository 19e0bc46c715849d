"""``flowhost.deploy(..., run=current.pathspec)`` inside a Metaflow step, for real."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.harness import SERVICES, PlatformFactory
from tests.integration.support import ROOT

FLOW = ROOT / "tests" / "e2e" / "flows" / "deploy_flow.py"


def test_a_flow_step_deploys_and_promotes_what_its_run_trained(
    launch: PlatformFactory, base_env: dict[str, str]
) -> None:
    platform = launch()
    env = {
        **base_env,
        "FLOWHOST_URL": platform.url,
        "FLOWHOST_TEST_SERVICE": str(SERVICES / "from_flow.py"),
    }
    id_dir = platform.home / "run-id"
    result = subprocess.run(
        [sys.executable, str(FLOW), "--quiet", "run", "--run-id-file", str(id_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run = f"DeployFlow/{id_dir.read_text().strip()}"

    answer = platform.http.post("/from-flow/answer", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"answer": 42, "run": run}
    assert answer.headers["x-flowhost-run"] == run
    assert platform.service("from-flow")["aliases"] == {"production": 1}

"""The service workflow's own steps (the ``run:`` blocks of .github/workflows/service.yml,
with their env substituted), run against two local platforms standing in for dev and
prod: a clean change deploys to dev, then to prod, and is promoted; a breaking change
fails the contract check with exit 4 and the list of changes, production untouched,
unless the pull request carries the label; a failed audit stops the pipeline in dev.

The ``uses:`` steps (checkout, setup-uv, AWS credentials) are the runner's business; the
targets are ``auth = "none"`` on loopback here, as ``vars.FLOWHOST_AUTH`` allows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci.workflows import ROOT, JobRun, StepResult, load_workflow
from tests.e2e.harness import Platform, start_platform
from tests.integration.support import FLOWHOST, isolated_env

pytestmark = pytest.mark.integration

SERVICE_WORKFLOW = ROOT / ".github" / "workflows" / "service.yml"
SERVICES = Path(__file__).resolve().parent / "services"
V1, V2, BREAKING, FAILING_AUDIT = (
    SERVICES / d / "grader.py" for d in ("v1", "v2", "breaking", "failing_audit")
)
LABEL = "breaking-change"
CHECK_STEPS = ["lint", "definition", "label", "targets", "contract"]
DEPLOY_STEPS = ["targets", "deploy", "summary"]


def _contract_command_exists() -> bool:
    done = subprocess.run(
        [str(FLOWHOST), "contract", "check", "--help"], capture_output=True, check=False
    )
    return done.returncode == 0


if not _contract_command_exists():
    pytest.skip(
        "'flowhost contract check' does not exist in this CLI; the workflow calls it",
        allow_module_level=True,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    for tool in ("bash", "jq"):  # on every GitHub-hosted runner; the steps call them
        assert shutil.which(tool), f"{tool}: not installed. Install it (apt-get install {tool})."
    base = isolated_env(tmp_path / "home")
    venv_bin = str(Path(sys.executable).parent)  # what the sync step puts on PATH
    base["PATH"] = os.pathsep.join([venv_bin, base.get("PATH", "")])
    return base


@pytest.fixture
def platforms(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[Platform, Platform]]:
    """Two ``flowhost up``: dev and prod."""
    logs = tmp_path / "logs"
    logs.mkdir()
    started: list[Platform] = []
    try:
        for name in ("dev", "prod"):
            started.append(start_platform(home=tmp_path / name, env=env, log_dir=logs))
        yield started[0], started[1]
    finally:
        for platform in started:
            platform.stop()


class Pipeline:
    """The workflow's jobs for one service file, on one event."""

    def __init__(
        self, tmp: Path, env: dict[str, str], dev: Platform, prod: Platform, service: Path
    ) -> None:
        self.workflow = load_workflow(SERVICE_WORKFLOW)
        self.tmp, self.env, self.dev, self.prod, self.service = tmp, env, dev, prod, service
        self.runs = 0

    def _values(self, labels: list[str], api_url: str, allow: str) -> dict[str, str]:
        return {
            "inputs.service-file": str(self.service.relative_to(ROOT)),
            "inputs.service-directory": "",
            "inputs.breaking-change-label": LABEL,
            "inputs.deploy-timeout": "120",
            "vars.AWS_REGION || 'us-east-1'": "us-east-1",
            "vars.FLOWHOST_AUTH || 'sigv4'": "none",
            "secrets.FLOWHOST_TOKEN": "",
            "github.event_name": "pull_request",
            "toJSON(github.event.pull_request.labels.*.name)": json.dumps(labels),
            "github.token": "",
            "vars.FLOWHOST_PROD_API_URL": self.prod.url,
            "vars.FLOWHOST_API_URL": api_url,  # the job's environment's variable
            "needs.check.outputs.allow-breaking": allow,
        }

    def _job(self, job_id: str, values: dict[str, str]) -> JobRun:
        self.runs += 1
        workdir = self.tmp / f"run-{self.runs}-{job_id}"
        return JobRun(self.workflow, job_id, values, workdir, self.env)

    def check(self, labels: list[str]) -> tuple[JobRun, dict[str, StepResult]]:
        job = self._job("check", self._values(labels, "", ""))
        return job, job.run_until_failure(CHECK_STEPS)

    def deploy(self, job_id: str, allow: str) -> tuple[JobRun, dict[str, StepResult]]:
        url = self.dev.url if job_id == "deploy-dev" else self.prod.url
        job = self._job(job_id, self._values([], url, allow))
        return job, job.run_until_failure(DEPLOY_STEPS, after_failure=lambda s: s == "summary")


def _codes(results: dict[str, StepResult]) -> dict[str, int]:
    return {step: result.returncode for step, result in results.items()}


def _explain(results: dict[str, StepResult]) -> str:
    return "\n".join(
        f"{r.step_id}: {r.returncode}\n{r.stdout}\n{r.stderr}" for r in results.values()
    )


def test_a_clean_change_goes_to_dev_then_prod_and_is_promoted(
    tmp_path: Path, env: dict[str, str], platforms: tuple[Platform, Platform]
) -> None:
    dev, prod = platforms
    summaries: list[str] = []
    for number, service in enumerate((V1, V2), start=1):
        pipeline = Pipeline(tmp_path, env, dev, prod, service)
        check, results = pipeline.check(labels=[])
        assert _codes(results) == dict.fromkeys(CHECK_STEPS, 0), _explain(results)
        allow = check.job_outputs()["allow-breaking"]
        assert allow == "false"
        summaries.append(check.summary.read_text())
        for job_id, platform in (("deploy-dev", dev), ("deploy-prod", prod)):
            job, results = pipeline.deploy(job_id, allow)
            assert _codes(results) == dict.fromkeys(DEPLOY_STEPS, 0), _explain(results)
            assert platform.service("grader")["aliases"] == {"production": number}
            target = job_id.removeprefix("deploy-")
            said = job.summary.read_text()
            assert f"Deployed and promoted on {target}: grader v{number}." in said

    assert "The service: **grader**, endpoints: grade" in summaries[0]
    assert "Contract: compatible with grader@production (no version yet)." in summaries[0]
    assert "Contract: compatible with grader@production (v1)." in summaries[1]
    answer = prod.http.post("/grader/grade", json={"score": 40, "pass_mark": 30})
    assert answer.json() == {"grade": "pass"}
    assert answer.headers["x-flowhost-version"] == "v2"


def test_a_breaking_change_fails_with_the_list_unless_labelled(
    tmp_path: Path, env: dict[str, str], platforms: tuple[Platform, Platform]
) -> None:
    dev, prod = platforms
    prod.client.deploy(str(V1), promote=True, timeout=60.0)
    pipeline = Pipeline(tmp_path, env, dev, prod, BREAKING)

    check, results = pipeline.check(labels=["documentation"])

    assert _codes(results) == {"lint": 0, "definition": 0, "label": 0, "targets": 0, "contract": 4}
    contract = results["contract"]
    changes = [
        "endpoint 'grade' request: field 'pass_mark' is a new required field",
        "endpoint 'grade' response: field 'grade' was removed",
    ]
    assert contract.stdout.splitlines()[: len(changes)] == changes
    assert "::error::this change breaks clients of production" in contract.stdout
    assert f"label the pull request '{LABEL}'" in contract.stdout
    summary = check.summary.read_text()
    assert "### Breaking changes for clients of grader@production (v1)" in summary
    assert all(f"- {change}" in summary for change in changes)
    assert prod.service("grader")["aliases"] == {"production": 1}

    # Had the deploy run anyway, the platform refuses the promote; production stays.
    job, results = pipeline.deploy("deploy-prod", allow="false")
    assert _codes(results) == {"targets": 0, "deploy": 4, "summary": 0}, _explain(results)
    said = job.summary.read_text()
    assert "### Not deployed to prod: refused" in said
    assert "would break clients of v1" in said
    assert "The prod production alias was not moved" in said
    assert prod.service("grader")["aliases"] == {"production": 1}

    check, results = pipeline.check(labels=[LABEL])
    assert _codes(results) == dict.fromkeys(CHECK_STEPS, 0), _explain(results)
    assert "::warning::breaking changes allowed by the label" in results["contract"].stdout
    assert check.job_outputs() == {"allow-breaking": "true"}
    job, results = pipeline.deploy("deploy-prod", allow="true")
    assert _codes(results) == dict.fromkeys(DEPLOY_STEPS, 0), _explain(results)
    promoted = prod.service("grader")["aliases"]["production"]
    assert promoted > 1
    answer = prod.http.post("/grader/grade", json={"score": 90, "pass_mark": 50})
    assert answer.json() == {"letter": "A"}


def test_a_failed_audit_in_dev_stops_the_pipeline_before_prod(
    tmp_path: Path, env: dict[str, str], platforms: tuple[Platform, Platform]
) -> None:
    dev, prod = platforms
    for platform in (dev, prod):
        platform.client.deploy(str(V1), promote=True, timeout=60.0)
    pipeline = Pipeline(tmp_path, env, dev, prod, FAILING_AUDIT)
    check, results = pipeline.check(labels=[])
    assert _codes(results) == dict.fromkeys(CHECK_STEPS, 0), _explain(results)

    job, results = pipeline.deploy("deploy-dev", check.job_outputs()["allow-breaking"])

    assert _codes(results) == {"targets": 0, "deploy": 4, "summary": 0}, _explain(results)
    said = job.summary.read_text()
    assert "### Not deployed to dev: refused" in said
    assert "knows_pass_from_fail" in said  # the platform's message names the audit
    assert "The dev production alias was not moved" in said
    assert dev.service("grader")["aliases"] == {"production": 1}
    # deploy-prod needs deploy-dev: GitHub never starts it, and prod has seen nothing.
    assert "deploy-dev" in pipeline.workflow["jobs"]["deploy-prod"]["needs"]
    assert [v["number"] for v in prod.service("grader")["versions"]] == [1]
    assert prod.service("grader")["aliases"] == {"production": 1}

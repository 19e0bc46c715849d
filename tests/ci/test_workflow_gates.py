"""The workflows in .github/workflows keep their gates; a copy with one gate removed is
caught, so each check can fail. actionlint passes on every workflow."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.ci import gates
from tests.ci.workflows import ROOT, iter_steps, load_workflow, triggers, workflow_files

ACTIONLINT = Path(sys.executable).with_name("actionlint")  # installed by the dev group
PLATFORM = ROOT / ".github" / "workflows" / "platform.yml"
SERVICE = ROOT / ".github" / "workflows" / "service.yml"
FILES = workflow_files()


def test_the_workflows_exist() -> None:
    assert [p.name for p in FILES] == ["platform.yml", "service.yml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    assert ACTIONLINT.exists(), f"{ACTIONLINT}: missing; run uv sync --locked --all-extras"
    done = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\npermissions:\n  contents: read\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_thing.x }}\n"
        "    needs: missing-job\n"
    )
    done = subprocess.run(
        [str(ACTIONLINT), "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "missing-job" in done.stdout


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("gate", gates.GATES, ids=lambda g: g.__name__)
def test_gate_holds(path: Path, gate: Any) -> None:
    assert gate(load_workflow(path)) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_pinned_and_no_static_keys(path: Path) -> None:
    text = path.read_text()
    assert "uses:" in text
    assert gates.pinned_actions(text) == []
    assert gates.no_static_aws_keys(text) == []


def test_platform_triggers_and_shape() -> None:
    workflow = load_workflow(PLATFORM)
    assert {"pull_request", "push"} <= set(triggers(workflow))
    assert triggers(workflow)["push"] == {"branches": ["main"]}
    jobs = workflow["jobs"]
    preview = jobs["preview"]
    assert [row["stack"] for row in preview["strategy"]["matrix"]["include"]] == ["dev", "prod"]
    [pulumi] = [s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/")]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-summary"] is True  # the preview in the job summary
    assert jobs["up-prod"]["needs"] == "up-dev"
    assert jobs["up-prod"]["environment"] == "prod"
    groups = [jobs[j]["concurrency"]["group"] for j in ("preview", "up-dev", "up-prod")]
    assert "${{ matrix.stack }}" in groups[0]
    assert groups[1:] == ["pulumi-up-dev", "pulumi-up-prod"]
    steps = [str(s.get("uses", s.get("run"))) for s in jobs["up-dev"]["steps"]]
    assert any(s.startswith("astral-sh/setup-uv@") for s in steps)
    assert "uv sync --locked --all-extras" in steps


def test_pulumi_cli_matches_the_locked_sdk() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    [sdk] = [p["version"] for p in lock["package"] if p["name"] == "pulumi"]
    workflow = load_workflow(PLATFORM)
    pinned = {
        str(s["with"].get("pulumi-version"))
        for _job, s in iter_steps(workflow)
        if str(s.get("uses", "")).startswith("pulumi/actions@")
    }
    assert pinned == {sdk}


def test_service_is_reusable_with_its_inputs() -> None:
    workflow = load_workflow(SERVICE)
    call = triggers(workflow)["workflow_call"]
    assert set(call["inputs"]) >= {
        "service-file", "service-directory", "python-version", "breaking-change-label"
    }  # fmt: skip
    jobs = workflow["jobs"]
    assert jobs["deploy-dev"]["needs"] == "check"
    assert jobs["deploy-prod"]["needs"] == ["check", "deploy-dev"]
    for job_id in ("deploy-dev", "deploy-prod"):
        [deploy] = [s for s in jobs[job_id]["steps"] if s.get("id") == "deploy"]
        assert "--wait" in deploy["run"]
        assert '--timeout "$DEPLOY_TIMEOUT"' in deploy["run"]
        assert "--promote" in deploy["run"]
        [summary] = [s for s in jobs[job_id]["steps"] if s.get("id") == "summary"]
        assert summary["if"].startswith("always()")


# Each case: the workflow, what to break in a copy, and the problem the gates must name.
def _drop_policy_pack(w: dict[str, Any]) -> None:
    [step] = [s for s in w["jobs"]["up-prod"]["steps"] if "pulumi/" in str(s.get("uses"))]
    del step["with"]["policyPacks"]


def _drop_id_token(w: dict[str, Any]) -> None:
    del w["jobs"]["up-dev"]["permissions"]["id-token"]


def _drop_prod_environment(w: dict[str, Any]) -> None:
    del w["jobs"]["deploy-prod"]["environment"]


def _prod_without_dev(w: dict[str, Any]) -> None:
    w["jobs"]["up-prod"]["needs"] = []


def _deploy_without_check(w: dict[str, Any]) -> None:
    w["jobs"]["deploy-dev"]["needs"] = []  # deploy-prod still needs check


def _pulumi_cli_without_pack(w: dict[str, Any]) -> None:
    w["jobs"]["up-dev"]["steps"].append({"run": "pulumi up --yes -s dev"})


BROKEN = [
    (PLATFORM, _drop_policy_pack, gates.policy_pack_everywhere, "up-prod"),
    (PLATFORM, _pulumi_cli_without_pack, gates.policy_pack_everywhere, "up-dev"),
    (PLATFORM, _drop_id_token, gates.oidc_permissions, "up-dev"),
    (SERVICE, _drop_prod_environment, gates.prod_behind_environment, "deploy-prod"),
    (PLATFORM, _prod_without_dev, gates.dev_before_prod, "up-prod"),
    (SERVICE, _deploy_without_check, gates.contract_before_deploy, "deploy-dev"),
]


@pytest.mark.parametrize(
    ("path", "breaks", "gate", "job"), BROKEN, ids=[case[1].__name__ for case in BROKEN]
)
def test_gate_catches_a_broken_copy(path: Path, breaks: Any, gate: Any, job: str) -> None:
    workflow = copy.deepcopy(load_workflow(path))
    breaks(workflow)
    problems = gate(workflow)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{job}:")


def test_text_gates_catch_tags_and_keys() -> None:
    text = (
        "      - uses: actions/checkout@v4\n"
        "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1\n"
        "          aws-access-key-id: ${{ secrets.KEY }}\n"
    )
    assert gates.pinned_actions(text) == [
        "line 1: actions/checkout@v4 is not pinned to a 40-hex commit SHA",
        "line 2: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 has no "
        "'# vX.Y.Z' comment",
    ]
    assert gates.no_static_aws_keys(text) == ["line 3: aws-access-key-id: ${{ secrets.KEY }}"]

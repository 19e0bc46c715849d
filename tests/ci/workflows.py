"""Reading the GitHub workflows in .github/workflows, and running a job's ``run:`` steps
on this machine the way a runner would: ``bash --noprofile --norc -eo pipefail``, the
workflow's, job's and step's ``env:`` with their ``${{ }}`` expressions substituted, and
the runner's files (``GITHUB_ENV``, ``GITHUB_OUTPUT``, ``GITHUB_PATH``,
``GITHUB_STEP_SUMMARY``) honoured between steps.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ROOT",
    "WORKFLOWS",
    "JobRun",
    "StepResult",
    "iter_steps",
    "load_workflow",
    "triggers",
    "workflow_files",
]

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STEP_OUTPUT = re.compile(r"^steps\.([A-Za-z_][\w-]*)\.outputs\.([\w-]+)$")
STEP_TIMEOUT = 300.0


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load_workflow(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path}: not a mapping"
    return loaded


def triggers(workflow: Mapping[Any, Any]) -> dict[str, Any]:
    """The ``on:`` mapping (YAML 1.1 reads a bare ``on`` key as True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {str(name): None for name in on}
    assert isinstance(on, dict), "a workflow without triggers"
    return on


def iter_steps(workflow: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step as (job id, step)."""
    for job_id, job in workflow.get("jobs", {}).items():
        for step in job.get("steps", []):
            yield job_id, step


@dataclass
class StepResult:
    step_id: str
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


def _read_pairs(path: Path) -> dict[str, str]:
    """``NAME=value`` lines and ``NAME<<DELIM`` blocks, as the runner reads them."""
    pairs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block: list[str] = []
            i += 1
            while lines[i] != delimiter:
                block.append(lines[i])
                i += 1
            pairs[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            pairs[name] = value
        i += 1
    return pairs


@dataclass
class JobRun:
    """One job of a workflow, run step by step. ``values`` answers the expressions the
    steps' ``env:`` use (``"inputs.service-file"``, ``"vars.X || 'default'"``...); an
    expression it does not answer fails the test, naming it."""

    workflow: dict[str, Any]
    job_id: str
    values: Mapping[str, str]
    workdir: Path
    base_env: Mapping[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict[str, dict[str, str]])
    exported: dict[str, str] = field(default_factory=dict[str, str])
    paths: list[str] = field(default_factory=list[str])

    def __post_init__(self) -> None:
        self.temp = self.workdir / "runner-temp"
        self.temp.mkdir(parents=True, exist_ok=True)
        self.summary = self.workdir / "step-summary.md"
        self.summary.touch()
        self.job: dict[str, Any] = self.workflow["jobs"][self.job_id]

    def resolve(self, expression: str) -> str:
        found = STEP_OUTPUT.match(expression)
        if found:
            return self.outputs.get(found[1], {}).get(found[2], "")
        if expression in self.values:
            return self.values[expression]
        raise AssertionError(
            f"job {self.job_id}: no value for the expression ${{{{ {expression} }}}}; "
            "add it to the values the test passes"
        )

    def substitute(self, text: object) -> str:
        return EXPRESSION.sub(lambda m: self.resolve(m[1]), str(text))

    def job_outputs(self) -> dict[str, str]:
        return {k: self.substitute(v) for k, v in self.job.get("outputs", {}).items()}

    def step(self, step_id: str) -> dict[str, Any]:
        steps = [s for s in self.job["steps"] if s.get("id") == step_id]
        assert len(steps) == 1, f"job {self.job_id}: no single step with id {step_id!r}"
        return steps[0]

    def run(self, step_id: str) -> StepResult:
        step = self.step(step_id)
        script = step.get("run")
        assert isinstance(script, str), f"{self.job_id}.{step_id}: not a run: step"
        env = dict(self.base_env)
        for scope in (self.workflow.get("env", {}), self.job.get("env", {}), step.get("env", {})):
            env.update({k: self.substitute(v) for k, v in scope.items()})
        env.update(self.exported)
        files = {
            name: self.workdir / f"{step_id}-{name.lower()}"
            for name in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH")
        }
        for path in files.values():
            path.write_text("")
        env.update({name: str(path) for name, path in files.items()})
        env.update(
            GITHUB_STEP_SUMMARY=str(self.summary),
            RUNNER_TEMP=str(self.temp),
            GITHUB_ACTIONS="true",
            CI="true",
        )
        env["PATH"] = os.pathsep.join([*reversed(self.paths), env.get("PATH", "")])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        self.exported.update(_read_pairs(files["GITHUB_ENV"]))
        self.paths += [p for p in files["GITHUB_PATH"].read_text().splitlines() if p]
        outputs = _read_pairs(files["GITHUB_OUTPUT"])
        self.outputs[step_id] = outputs
        return StepResult(step_id, done.returncode, done.stdout, done.stderr, outputs)

    def run_until_failure(
        self, step_ids: list[str], *, after_failure: Callable[[str], bool] = lambda _s: False
    ) -> dict[str, StepResult]:
        """Run the steps in order; past a failure only those ``after_failure`` accepts
        (the ``if: always()`` ones), as the runner does."""
        order = [s.get("id") for s in self.job["steps"]]
        positions = [order.index(step_id) for step_id in step_ids]
        assert positions == sorted(positions), f"{self.job_id}: steps out of the job's order"
        results: dict[str, StepResult] = {}
        failed = False
        for step_id in step_ids:
            if failed and not after_failure(step_id):
                continue
            result = self.run(step_id)
            results[step_id] = result
            failed = failed or result.returncode != 0
        return results

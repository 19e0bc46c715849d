"""Named environments on a real ``flowhost up``, through the ``flowhost env`` command:
register, list, show; the same requirements again are the same revision, changed ones
the next; every ``--json`` document checked against its shipped schema, and each failure
against its exit code. The registry survives a restart of the platform."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowhost.cli.output import schema_of
from tests.e2e.harness import Platform, start_platform
from tests.integration.support import run_flowhost


@pytest.fixture
def platform(
    base_env: dict[str, str], platform_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    started = start_platform(
        home=tmp_path_factory.mktemp("env-home"), env=base_env, log_dir=platform_logs
    )
    try:
        yield started
    finally:
        started.stop()


def env(
    platform: Platform, base_env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_flowhost("env", *args, "--url", platform.url, env=base_env, timeout=60.0)


def document(result: subprocess.CompletedProcess[str], exit_code: int, schema: str) -> Any:
    assert result.returncode == exit_code, result.stdout + result.stderr
    found = json.loads(result.stdout)
    jsonschema.validate(found, schema_of(schema))
    assert "Traceback" not in result.stderr
    return found


def test_register_list_show_and_register_again(
    platform: Platform, base_env: dict[str, str], tmp_path: Path, platform_logs: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# serving\nnumpy==2.1.0\n\nscikit-learn>=1.5  # model\n")
    flow = tmp_path / "train.py"
    flow.write_text(
        textwrap.dedent(
            """\
            from metaflow import FlowSpec, pypi, pypi_base, step

            @pypi_base(packages={"numpy": "2.1.0"})
            class TrainFlow(FlowSpec):
                @pypi(packages={"scikit-learn": ">=1.5", "pandas": "2.2.3"})
                @step
                def start(self):
                    self.next(self.end)

                @step
                def end(self):
                    pass
            """
        )
    )

    first = document(
        env(platform, base_env, "register", "sentiment-train", "--from", str(requirements),
            "--json"), 0, "env-register",
    )  # fmt: skip
    assert (first["revision"], first["created"]) == (1, True)
    assert first["requirements"] == "numpy==2.1.0\nscikit-learn>=1.5"
    assert first["source"] == str(requirements)

    again = document(
        env(platform, base_env, "register", "sentiment-train", "--from", str(requirements),
            "--json"), 0, "env-register",
    )  # fmt: skip
    assert (again["revision"], again["created"]) == (1, False)
    plain = env(platform, base_env, "register", "sentiment-train", "--from", str(requirements))
    assert plain.returncode == 0
    assert "unchanged: sentiment-train@1 already has these requirements" in plain.stdout

    changed = document(
        env(platform, base_env, "register", "sentiment-train", "--from", f"{flow}:start",
            "--json"), 0, "env-register",
    )  # fmt: skip
    assert (changed["revision"], changed["created"]) == (2, True)
    assert changed["requirements"].split("\n") == [
        "numpy==2.1.0", "scikit-learn>=1.5", "pandas==2.2.3",
    ]  # fmt: skip
    document(
        env(platform, base_env, "register", "other", "--from", str(requirements), "--json"),
        0, "env-register",
    )  # fmt: skip

    listed = document(env(platform, base_env, "list", "--json"), 0, "env-list")
    assert [(e["name"], e["revision"]) for e in listed["environments"]] == [
        ("other", 1), ("sentiment-train", 2),
    ]  # fmt: skip
    latest = document(env(platform, base_env, "show", "sentiment-train", "--json"), 0, "env-show")
    assert (latest["revision"], latest["latest"], latest["revisions"]) == (2, 2, [1, 2])
    pinned = document(env(platform, base_env, "show", "sentiment-train@1", "--json"), 0, "env-show")
    assert (pinned["revision"], pinned["requirements"]) == (1, first["requirements"])
    shown = env(platform, base_env, "show", "sentiment-train", "--revision", "1")
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[0] == "sentiment-train@1 (latest is 2; revisions: 1, 2)"

    # the registry is the platform's state: it is there after a restart
    platform.stop()
    restarted = start_platform(home=platform.home, env=base_env, log_dir=platform_logs)
    try:
        kept = document(
            env(restarted, base_env, "show", "sentiment-train", "--json"), 0, "env-show"
        )
        assert kept["revisions"] == [1, 2]
    finally:
        restarted.stop()


def test_failures_exit_with_their_codes(
    platform: Platform, base_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "requirements.txt"
    bad.write_text("numpy\n-r base.txt\n")
    refused = document(
        env(platform, base_env, "register", "x", "--from", str(bad), "--json"), 2, "error"
    )
    assert refused["error"]["message"] == (
        f"{bad} line 2: '-r base.txt' is a pip option (-r), which the platform does not take: "
        "list the packages themselves."
    )
    missing = document(
        env(platform, base_env, "register", "x", "--from", str(tmp_path / "no.txt"), "--json"),
        2, "error",
    )  # fmt: skip
    assert "no such file" in missing["error"]["message"]
    unknown = document(env(platform, base_env, "show", "ghost", "--json"), 3, "error")
    assert unknown["error"]["code"] == "environment_not_found"
    assert "flowhost env register ghost --from requirements.txt" in unknown["error"]["message"]
    assert "Traceback" not in unknown["error"]["message"]
    slug = env(platform, base_env, "register", "Not_A_Slug", "--from", str(bad))
    assert slug.returncode == 2
    assert "must be a DNS-safe slug" in slug.stderr
    # nothing was registered by any of them
    assert document(env(platform, base_env, "list", "--json"), 0, "env-list") == {
        "environments": []
    }

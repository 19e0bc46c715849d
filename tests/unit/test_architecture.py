"""Structure: which folder may import what, and the shape of the installed distribution."""

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names)

# A rule gets (module, is_member) and returns why the import is not allowed, or None.
# ``is_member`` marks ``package.name`` from ``from package import name``: it may be a
# submodule or just an attribute, so only the explicit bans apply to it.
Rule = Callable[[str, bool], str | None]

SERVICES_THIRD_PARTY = frozenset(
    {
        "pydantic",
        "pydantic_core",
        "fastapi",
        "fastapi_offline",
        "starlette",
        "uvicorn",
        "prometheus_client",
        "opentelemetry",  # the runtime's traces (runtime/tracing.py)
        "metaflow",
        "typing_extensions",
    }
)


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def top(module: str) -> str:
    return module.split(".", 1)[0]


def services_rule(module: str, member: bool) -> str | None:
    for banned in ("flowhost.lambdas", "flowhost.infra", "flowhost.cli"):
        if within(module, banned):
            return f"services never imports {banned}"
    if member:
        return None
    if top(module) == "flowhost":
        if module == "flowhost" or within(module, "flowhost.services", "flowhost.errors"):
            return None
        return "services imports only flowhost, flowhost.services and flowhost.errors"
    if top(module) in STDLIB or top(module) in SERVICES_THIRD_PARTY:
        return None
    allowed = ", ".join(sorted(SERVICES_THIRD_PARTY))
    return f"{top(module)} is not a services dependency (stdlib, {allowed})"


def flowhost_root_rule(module: str, member: bool) -> str | None:
    """``flowhost/__init__.py`` and ``errors.py`` are imported by services: keep them bare."""
    if within(module, "flowhost.errors") or (not member and top(module) in STDLIB):
        return None
    if member and not within(module, "flowhost"):
        return None
    return "the flowhost root imports only the stdlib and flowhost.errors"


def lambdas_rule(module: str, member: bool) -> str | None:
    if top(module) == "pulumi" or top(module).startswith("pulumi_"):
        return "lambdas never imports pulumi"
    if within(module, "flowhost.infra"):
        return "lambdas never imports flowhost.infra"
    return None


def infra_rule(module: str, member: bool) -> str | None:
    return "infra never imports flowhost.lambdas" if within(module, "flowhost.lambdas") else None


def policies_rule(module: str, member: bool) -> str | None:
    return "the policy pack stands alone: no flowhost" if top(module) == "flowhost" else None


def check_source(source: str, filename: str, package: str, rule: Rule) -> list[str]:
    """``filename:line: imports X (why not)`` for every import in ``source`` that breaks ``rule``.

    ``package`` is the package the file's relative imports are relative to.
    """
    problems: list[tuple[int, str]] = []

    def check(line: int, module: str, member: bool = False) -> bool:
        reason = rule(module, member)
        if reason is not None:
            problems.append((line, f"{filename}:{line}: imports {module} ({reason})"))
        return reason is not None

    tree = ast.parse(source, filename)
    typing_only = {  # imports under `if TYPE_CHECKING:` never run, so they do not layer
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pieces = package.split(".")
                if node.level > len(pieces):
                    problems.append((node.lineno, f"{filename}:{node.lineno}: beyond {package}"))
                    continue
                anchor = ".".join(pieces[: len(pieces) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            if not check(node.lineno, base):
                for alias in node.names:
                    if alias.name != "*" and check(node.lineno, f"{base}.{alias.name}", True):
                        break
    return [text for _, text in sorted(problems)]


def package_of(path: Path, folder: Path, folder_package: str) -> str:
    parts = path.relative_to(folder).parent.parts
    return ".".join((folder_package, *parts))


LAYERS: list[tuple[str, str, Rule]] = [
    ("services", "flowhost.services", services_rule),
    ("lambdas", "flowhost.lambdas", lambdas_rule),
    ("infra", "flowhost.infra", infra_rule),
    ("policies", "policies", policies_rule),
]


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_import_directions() -> None:
    problems: list[str] = []
    scanned: dict[str, int] = {}
    for folder_name, folder_package, rule in LAYERS:
        folder = ROOT / folder_name
        files = python_files(folder) if folder.is_dir() else []
        scanned[folder_name] = len(files)
        for path in files:
            problems += check_source(
                path.read_text(),
                str(path.relative_to(ROOT)),
                package_of(path, folder, folder_package),
                rule,
            )
    for name in ("__init__.py", "errors.py"):
        path = ROOT / "flowhost" / name
        problems += check_source(
            path.read_text(), f"flowhost/{name}", "flowhost", flowhost_root_rule
        )
    assert scanned["services"] >= 10, f"the scan found too few files: {scanned}"
    assert not problems, "imports that break the layering:\n" + "\n".join(problems)


def lines_flagged(source: str, filename: str, package: str, rule: Rule) -> list[int]:
    found = check_source(textwrap.dedent(source), filename, package, rule)
    return [int(p.split(":")[1]) for p in found]


def test_the_import_check_flags_bad_sources() -> None:
    """The check above must be able to fail."""
    services = """\
        import os
        import json, boto3
        from typing import TYPE_CHECKING
        from pydantic import BaseModel
        from flowhost.lambdas.store import Store
        from flowhost import infra, errors
        from ... import cli
        if TYPE_CHECKING:
            import pulumi
        def f():
            import sqlalchemy.orm
        from . import dispatch
        import flowhost.services.config
        import flowhost
        from flowhost import __version__
        from flowhost.services.runtime import app
        import flowhost.utils
        """
    assert lines_flagged(
        services, "services/runtime/fake.py", "flowhost.services.runtime", services_rule
    ) == [2, 5, 6, 7, 11, 17]  # line 9 is typing-only: it never runs
    found = check_source("import boto3\n", "services/x.py", "flowhost.services", services_rule)
    assert found == [
        "services/x.py:1: imports boto3 (boto3 is not a services dependency (stdlib, "
        "fastapi, fastapi_offline, metaflow, opentelemetry, prometheus_client, pydantic, "
        "pydantic_core, "
        "starlette, typing_extensions, uvicorn))"
    ]
    lambdas = """\
        import boto3
        import pulumi_aws as aws
        from flowhost.infra import Platform
        from flowhost import infra
        from flowhost.services import WebServiceSpec
        from pulumi import Output
        """
    assert lines_flagged(lambdas, "lambdas/x.py", "flowhost.lambdas", lambdas_rule) == [2, 3, 4, 6]
    infra = "import pulumi\nfrom flowhost.lambdas import store\nfrom ..lambdas import x\n"
    assert lines_flagged(infra, "infra/x.py", "flowhost.infra", infra_rule) == [2, 3]
    policies = "import pulumi_policy\nimport flowhost.errors\nfrom . import rules\n"
    assert lines_flagged(policies, "policies/x.py", "policies", policies_rule) == [2]
    root = "import importlib.metadata\nfrom flowhost.errors import SpecError\nimport pydantic\n"
    assert lines_flagged(root, "flowhost/__init__.py", "flowhost", flowhost_root_rule) == [3]
    assert lines_flagged("from .... import x\n", "s/a.py", "flowhost.services", services_rule) == [
        1
    ]


def test_pytest_is_strict(pytestconfig: pytest.Config) -> None:
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {"--strict-markers", "--strict-config", "--import-mode=importlib"} <= set(ini["addopts"])
    assert ini["filterwarnings"][0] == "error"
    assert ini["xfail_strict"] is True
    assert pytestconfig.getoption("importmode") == "importlib"
    assert pytestconfig.getoption("strict_markers")


def test_only_flowhost_is_importable(tmp_path: Path) -> None:
    """The folders install as flowhost.*; nothing named plain ``services`` is importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    for name in ("services", "lambdas", "infra"):
        result = run(f"import {name}")
        assert result.returncode != 0
        assert f"No module named '{name}'" in result.stderr
    result = run(
        "import flowhost.services, flowhost.lambdas, flowhost.infra\n"
        "print(flowhost.services.WebServiceSpec.__module__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "flowhost.services.spec"


@pytest.mark.integration
def test_wheel_layout(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build the wheel (scripts/bootstrap installs it)"
    # Without --wheel, uv builds the sdist and then the wheel from it: nothing is cached in
    # ./build (a stale build/lib could hide a package dropped from pyproject), and the
    # sdist is checked to be complete on the way.
    result = subprocess.run(
        [uv, "build", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("flowhost-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    stray = [n for n in names if not re.match(r"flowhost/|flowhost-[^/]+\.dist-info/", n)]
    assert not stray, f"files outside flowhost/: {stray}"
    for required in (
        "flowhost/py.typed",
        "flowhost/services/__init__.py",
        "flowhost/services/runtime/app.py",
        "flowhost/lambdas/__init__.py",
        "flowhost/infra/__init__.py",
    ):
        assert required in names

    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    assert package_dirs["flowhost.services"] == "services"
    expected = {
        "/".join((*package.split("."), *path.relative_to(ROOT / folder).parts))
        for package, folder in package_dirs.items()
        for path in python_files(ROOT / folder)
    }
    missing = sorted(expected - set(names))
    assert not missing, f"source modules left out of the wheel (add them to packages): {missing}"

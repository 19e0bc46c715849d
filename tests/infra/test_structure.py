"""Unit tier: the shape of ``infra/`` itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import flowhost.infra

INFRA = Path(__file__).resolve().parents[2] / "infra"


def modules() -> list[Path]:
    return sorted(INFRA.glob("*.py"))


def test_no_module_shadows_a_top_level_name() -> None:
    """Pulumi runs ``infra/`` as a directory, putting it first on sys.path: a module named
    like the standard library (``platform.py``) or a dependency would shadow it."""
    shadowing = {"pulumi", "pulumi_aws", "pulumi_kubernetes", "pydantic", "yaml", "flowhost"}
    stems = {p.stem for p in modules()} - {"__init__", "__main__"}
    assert stems & (set(sys.stdlib_module_names) | shadowing) == set()
    assert not [p for p in INFRA.iterdir() if p.is_dir() and (p / "__init__.py").exists()]


def test_modules_stay_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in modules()}
    assert max(sizes.values()) < 320, sizes


def test_the_program_entry_point_only_calls_main() -> None:
    tree = ast.parse((INFRA / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [ast.unparse(c) for c in calls] == ["main()"]


def test_public_api() -> None:
    assert sorted(flowhost.infra.__all__) == [
        "Deploy",
        "EKS_OUTPUTS",
        "OUTPUTS",
        "Platform",
        "PlatformArgs",
        "PlatformConfig",
        "PlatformConfigError",
        "PlatformRef",
        "ServiceOptions",
        "ServiceSpec",
        "load_config",
        "main",
    ]

"""Unit tier: the shape of ``infra/`` itself: the platform's modules at the top, the
groups as packages (``service/``, ``gpu/``) with imports pointing one way, and the flat
facade ``flowhost.infra``."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import flowhost.infra

INFRA = Path(__file__).resolve().parents[2] / "infra"
PACKAGES = ("gpu", "service")


def modules() -> list[Path]:
    return sorted(INFRA.rglob("*.py"))


def imported(path: Path) -> set[str]:
    """The ``flowhost.infra`` modules ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m.startswith("flowhost.infra")}


def test_no_module_shadows_a_top_level_name() -> None:
    """Pulumi runs ``infra/`` as a directory, putting it first on sys.path: a top-level
    module or package named like the standard library (``platform``) or a dependency
    would shadow it."""
    shadowing = {"pulumi", "pulumi_aws", "pulumi_kubernetes", "pydantic", "yaml", "flowhost"}
    top = {p.stem for p in INFRA.glob("*.py")} - {"__init__", "__main__"}
    packages = {p.name for p in INFRA.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(PACKAGES)
    assert (top | packages) & (set(sys.stdlib_module_names) | shadowing) == set()
    for name in packages:  # nor anything installed
        spec = importlib.util.find_spec(name)
        assert spec is None or Path(str(spec.origin)).is_relative_to(INFRA), name


def test_imports_point_one_way() -> None:
    """``service`` -> ``gpu`` -> the platform's modules; ``gpu`` and the platform never
    import ``service`` (only the facade ``flowhost.infra`` re-exports it)."""
    checked = 0
    for path in modules():
        if path == INFRA / "__init__.py" or path.parent.name == "service":
            continue
        uses = imported(path)
        assert not [m for m in uses if m.startswith("flowhost.infra.service")], path
        checked += 1
    assert checked > 25
    spec = imported(INFRA / "service" / "spec.py")
    assert "flowhost.infra.service.workload" in spec  # the direction that is allowed


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(INFRA)): len(p.read_text().splitlines()) for p in modules()}
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

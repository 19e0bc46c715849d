"""Loads ``policies/`` as the package ``policies``.

``policies/`` is not part of the installed distribution (the Pulumi CLI runs it from
its own folder), so tests load it from there, without putting the repository root (and
with it ``services``, ``infra``...) on ``sys.path``. Other tiers that run resources
through the pack call ``load_policy_pack()`` from their conftest before importing
``policies.engine``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[2] / "policies"


def load_policy_pack() -> None:
    if "policies" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "policies", PACK / "__init__.py", submodule_search_locations=[str(PACK)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the policy pack from {PACK}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["policies"] = package
    spec.loader.exec_module(package)

"""Makes the policy pack importable as ``policies``.

``policies/`` is not part of the installed distribution (the Pulumi CLI runs it from
its own directory), so it is loaded here as a package from its folder, without putting
the repository root (and with it ``services``, ``infra``...) on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parents[2] / "policies"


def _load_pack() -> None:
    if "policies" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "policies", PACK / "__init__.py", submodule_search_locations=[str(PACK)]
    )
    assert spec is not None
    assert spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["policies"] = package
    spec.loader.exec_module(package)


_load_pack()

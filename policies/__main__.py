"""The flowhost policy pack: what ``pulumi preview --policy-pack policies`` runs.

Constructing ``PolicyPack`` starts the analyzer server and blocks until the Pulumi
engine is done, so this is the only module that builds it and nothing imports it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _import_as_package() -> None:
    """The Pulumi CLI runs this directory as a script, with the directory itself on
    sys.path; load it as the package ``policies`` so its modules import the same way
    everywhere (the tests import ``policies.engine``)."""
    if "policies" in sys.modules:
        return
    here = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location(
        "policies", here / "__init__.py", submodule_search_locations=[str(here)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the policy pack from {here}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["policies"] = package
    spec.loader.exec_module(package)


_import_as_package()

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
)

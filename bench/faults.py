"""Fault trials of the local platform, with figures: bounded, loopback only, they stop
by themselves.

    .venv/bin/python bench/faults.py kills [--trials N] [--only KIND ...] [--json PATH]

Each family of trials is a module of ``bench/fault_trials/`` listed in :data:`TRIALS`;
its ``NAME`` is the subcommand. See each module's docstring for what it does and the
goals it checks. Not collected by pytest (the suite's testpaths is ``tests``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, fault_trials

TRIALS: tuple[str, ...] = ("fault_trials.kills", "fault_trials.state", "fault_trials.connections")
"""The trial modules, each one subcommand (``fault_trials.state``, ... join here)."""


def _load() -> list[ModuleType]:
    return [importlib.import_module(name) for name in TRIALS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="TRIALS")
    runners = {}
    for module in _load():
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        runners[module.NAME] = module.run
    args = parser.parse_args(argv)
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

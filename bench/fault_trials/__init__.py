"""Fault trials of the local platform, one module per family, run by ``bench/faults.py``.

A module joins by being listed in ``faults.TRIALS``; it provides ``NAME`` (the
subcommand), ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code:
0 when every goal is met).
"""

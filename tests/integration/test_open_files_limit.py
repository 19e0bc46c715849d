"""Servers raise their soft open-files limit, so idle and slow clients cannot use up
the descriptors (``bench/fault_trials/connections.py --nofile 1024`` shows the outage
without it: 1,000 idle connections and every other client is refused).

Run in a child process whose soft limit starts low, so this process keeps its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

CHILD = """
import json, resource
from flowhost.services.runtime.limits import raise_open_files_limit
got = raise_open_files_limit(cap={cap})
print(json.dumps([got, *resource.getrlimit(resource.RLIMIT_NOFILE)]))
"""


def _in_child(soft: int, cap: int) -> tuple[int, int, int]:
    def lower() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(cap=cap)], preexec_fn=lower, capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    got, now_soft, now_hard = json.loads(out.stdout)
    return got, now_soft, now_hard


def test_a_low_soft_limit_is_raised_to_the_hard_limit_or_the_cap() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-files limit is {hard}: nothing to raise to")
    expected = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    got, soft, now_hard = _in_child(soft=256, cap=4096)
    assert (got, soft) == (expected, expected)
    assert now_hard == hard  # the hard limit is left alone


def test_a_soft_limit_above_the_cap_is_never_lowered() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 300:
        pytest.skip(f"the soft open-files limit is {soft}")
    got, now_soft, _ = _in_child(soft=300, cap=200)
    assert (got, now_soft) == (300, 300)

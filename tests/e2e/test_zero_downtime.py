"""A promote under continuous load: no failed request, and no request routed to the old
version once the promote call has returned (routes are never stale)."""

from __future__ import annotations

import time

from tests.e2e.harness import EXAMPLE, SERVICES, Load, Platform
from tests.integration.support import poll

THREADS = 4
LIMIT = 600  # the load stops by itself after this many requests


def test_promote_under_load_drops_nothing_and_routes_fresh(platform: Platform) -> None:
    platform.deploy(EXAMPLE, promote=True)
    v2 = platform.deploy(SERVICES / "sentiment_v2.py")["number"]
    assert v2 == 2

    with Load(platform.url, "/sentiment/predict", {"text": "great"}, THREADS, LIMIT) as load:
        poll("100 requests before the promote", lambda: load.count() >= 100 or None, 30)
        platform.client.promote("sentiment", v2)
        promoted = time.monotonic()
        poll(
            "100 requests after the promote",
            lambda: load.count(since=promoted) >= 100 or None,
            30,
        )

    records = list(load.records)
    assert len(records) <= LIMIT
    failed = [r for r in records if r[1] != 200]
    assert failed == []
    before = [r for r in records if r[0] < promoted]
    after = [r for r in records if r[0] >= promoted]
    assert {r[2] for r in before} <= {"v1", "v2"}
    assert sum(1 for r in before if r[2] == "v1") >= 100 - THREADS
    stale = [r for r in after if r[2] != "v2"]
    assert stale == [], f"{len(stale)} of {len(after)} requests after the promote went to v1"
    assert all(r[3]["model"] == "naive-bayes-v2" for r in after)

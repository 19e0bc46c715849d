"""Named environments registered at once, on SQLite and PostgreSQL: revisions are never
shared or skipped, and identical requirements registered at once make one revision."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.environments import EnvironmentRegistry, EnvironmentRevision

THREADS = 6


def test_concurrent_registrations_get_distinct_numbers(store: StateStore) -> None:
    registry = EnvironmentRegistry(store.engine)

    def register(i: int) -> EnvironmentRevision:
        return registry.register("shared", f"pkg-{i}==1.0\n", "test", f"actor-{i}")

    with ThreadPoolExecutor(THREADS) as pool:
        revisions = list(pool.map(register, range(THREADS * 3)))
    numbers = sorted(r.revision for r in revisions)
    assert numbers == list(range(1, THREADS * 3 + 1))
    assert {r.requirements for r in registry.revisions("shared")} == {
        f"pkg-{i}==1.0" for i in range(THREADS * 3)
    }


def test_identical_registrations_at_once_make_one_revision(store: StateStore) -> None:
    registry = EnvironmentRegistry(store.engine)
    with ThreadPoolExecutor(THREADS) as pool:
        revisions = list(
            pool.map(lambda i: registry.register("same", "pkg==1.0\n", "t", "a"), range(THREADS))
        )
    assert {r.revision for r in revisions} == {1}
    assert [r.revision for r in registry.revisions("same")] == [1]

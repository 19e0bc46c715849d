"""Aliases on SQLite and PostgreSQL: promote, resolve, rollback, undeploy."""

from __future__ import annotations

import pytest

from flowhost.errors import DeployError, NotFoundError
from flowhost.lambdas.store import PRODUCTION, StateStore
from flowhost.lambdas.store.records import VersionStatus
from tests.integration.store.support import deploy, named, promote, rollback


def deploy_ready(store: StateStore, count: int) -> None:
    for _ in range(count):
        deploy(store)


@pytest.mark.parametrize("status", ["deploying", "failed", "undeployed"])
def test_move_alias_refuses_a_version_that_is_not_ready(
    store: StateStore, status: VersionStatus
) -> None:
    number = deploy(store, ready=False)
    store.set_status("echo", number, status)
    with pytest.raises(DeployError, match=rf"echo v1 is {status}, not ready"):
        promote(store, number)
    assert store.aliases("echo") == []
    assert [e.kind for e in store.events("echo")] == ["deploy"]


@pytest.mark.parametrize("alias", ["Production", "1st", "", "prod_1", "a" * 64, "canary!"])
def test_move_alias_refuses_a_bad_alias_name(store: StateStore, alias: str) -> None:
    deploy(store)
    with pytest.raises(DeployError, match="alias must be a lowercase slug"):
        promote(store, 1, alias)
    assert store.aliases() == []


def test_move_alias_needs_an_existing_version(store: StateStore) -> None:
    deploy(store)
    with pytest.raises(NotFoundError, match=r"has no version v3\. Versions: v1\."):
        promote(store, 3)


def test_promote_returns_the_previous_version(store: StateStore) -> None:
    deploy_ready(store, 2)
    assert promote(store, 1) is None
    assert promote(store, 2) == 1
    assert promote(store, 2) == 2
    assert promote(store, 1, "staging") is None
    assert [(a.service, a.name, a.version) for a in store.aliases("echo")] == [
        ("echo", "production", 2), ("echo", "staging", 1),
    ]  # fmt: skip


def test_aliases_are_per_service(store: StateStore) -> None:
    deploy_ready(store, 2)
    deploy(store, named("other"))
    promote(store, 2)
    store.move_alias("other", PRODUCTION, 1, actor="alice")
    assert [(a.service, a.version) for a in store.aliases()] == [("echo", 2), ("other", 1)]
    assert [a.service for a in store.aliases("other")] == ["other"]


def test_resolve_by_alias_and_version(store: StateStore) -> None:
    deploy_ready(store, 3)
    promote(store, 3)
    promote(store, 1, "canary")
    assert store.resolve("echo").number == 3
    assert store.resolve("echo", "canary").number == 1
    assert store.resolve("echo", "v2").number == 2
    assert store.resolve("echo", "2").number == 2
    assert store.resolve("echo", "v2").service == "echo"


def test_resolve_names_what_exists(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match=r"no service 'echo'\. Services: none\."):
        store.resolve("echo")
    deploy_ready(store, 2)
    deploy(store, named("other"))
    with pytest.raises(NotFoundError, match=r"no service 'missing'\. Services: echo, other\."):
        store.resolve("missing")
    with pytest.raises(NotFoundError, match=r"has no alias 'production'\. Aliases: none;"):
        store.resolve("echo")
    promote(store, 1)
    promote(store, 2, "canary")
    with pytest.raises(NotFoundError, match=r"no alias 'staging'\. Aliases: canary, production;"):
        store.resolve("echo", "staging")
    with pytest.raises(NotFoundError, match=r"'echo' has no version v7\. Versions: v1, v2\."):
        store.resolve("echo", "v7")


def test_rollback_walks_back_through_promotes(store: StateStore) -> None:
    for number in (1, 2, 3):
        promote(store, deploy(store))
        assert store.resolve("echo").number == number
    assert rollback(store) == 2
    assert store.resolve("echo").number == 2
    assert rollback(store) == 1
    assert store.resolve("echo").number == 1
    promote(store, 3)
    assert store.previous_target("echo", PRODUCTION) == 1  # what the last promote replaced


def test_rollback_stops_at_the_first_promote(store: StateStore) -> None:
    for _ in range(3):
        promote(store, deploy(store))
    assert (rollback(store), rollback(store)) == (2, 1)
    with pytest.raises(DeployError, match="no earlier ready version"):
        store.previous_target("echo", PRODUCTION)


@pytest.mark.parametrize("status", ["undeployed", "failed"])
def test_rollback_skips_versions_that_are_not_ready(
    store: StateStore, status: VersionStatus
) -> None:
    for _ in range(3):
        promote(store, deploy(store))
    store.set_status("echo", 2, status)
    assert store.previous_target("echo", PRODUCTION) == 1
    store.set_status("echo", 1, status)
    with pytest.raises(DeployError, match=r"echo@production has no earlier ready version"):
        store.previous_target("echo", PRODUCTION)


def test_rollback_is_per_alias(store: StateStore) -> None:
    deploy_ready(store, 3)
    promote(store, 1)
    promote(store, 3)
    promote(store, 2, "staging")
    assert store.previous_target("echo", PRODUCTION) == 1
    with pytest.raises(DeployError, match="echo@staging has no earlier ready version"):
        store.previous_target("echo", "staging")


def test_previous_target_needs_an_alias_and_a_history(store: StateStore) -> None:
    deploy(store)
    with pytest.raises(NotFoundError, match=r"has no alias 'production' to roll back"):
        store.previous_target("echo", PRODUCTION)
    promote(store, 1)
    with pytest.raises(DeployError, match="no earlier ready version"):
        store.previous_target("echo", PRODUCTION)


def test_undeploy_waits_until_no_alias_points_at_the_version(store: StateStore) -> None:
    deploy_ready(store, 2)
    promote(store, 1)
    promote(store, 1, "staging")
    with pytest.raises(
        DeployError, match=r"echo v1 is still the target of alias\(es\) production, staging\."
    ):
        store.undeploy("echo", 1, actor="alice")
    assert store.version("echo", 1).status == "ready"
    promote(store, 2)
    with pytest.raises(DeployError, match=r"alias\(es\) staging\."):
        store.undeploy("echo", 1, actor="alice")
    promote(store, 2, "staging")
    assert store.undeploy("echo", 1, actor="alice").status == "undeployed"
    assert store.version("echo", 1).status == "undeployed"
    assert store.events("echo", limit=1)[0].kind == "undeploy"

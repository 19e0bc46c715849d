"""The StateStore on SQLite and on a real PostgreSQL server: schema, versions, events.

Every test runs on both backends (the ``store`` fixture). Aliases are in test_aliases.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flowhost.errors import NotFoundError
from flowhost.lambdas.store import PRODUCTION, StateStore
from flowhost.lambdas.store.migrate import head as head_revision
from flowhost.lambdas.store.models import Base
from tests.integration.store.support import ECHO, deploy, named, promote, rollback


def schema_state(store: StateStore) -> tuple[str | None, str | None, list[object]]:
    """(current revision, head revision, differences between the live schema and the models)."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        current = context.get_current_revision()
        return current, head_revision(), list(compare_metadata(context, Base.metadata))


def test_migrations_reach_head_and_match_the_models(store: StateStore) -> None:
    current, head, diffs = schema_state(store)
    assert head is not None
    assert current == head
    assert diffs == []


def test_migrate_again_changes_nothing(store: StateStore) -> None:
    deploy(store)
    store.migrate()
    store.migrate()
    current, head, diffs = schema_state(store)
    assert (current, diffs) == (head, [])
    assert [v.number for v in store.versions("echo")] == [1]


def test_versions_are_numbered_per_service(store: StateStore) -> None:
    numbers = [deploy(store), deploy(store, named("other")), deploy(store), deploy(store)]
    assert numbers == [1, 1, 2, 3]
    assert store.services() == ["echo", "other"]
    assert [v.label for v in store.versions("echo")] == ["v1", "v2", "v3"]
    assert [(v.service, v.number) for v in store.all_versions()] == [
        ("echo", 1), ("echo", 2), ("echo", 3), ("other", 1),
    ]  # fmt: skip
    with pytest.raises(NotFoundError, match=r"no service 'ghost'\. Services: echo, other\."):
        store.versions("ghost")


@pytest.mark.parametrize("existing", [True, False], ids=["existing-service", "new-service"])
def test_concurrent_deploys_get_unique_consecutive_numbers(
    store: StateStore, existing: bool
) -> None:
    threads, each = 8, 5
    if existing:
        deploy(store)
    start = Barrier(threads)

    def deploy_many() -> list[int]:
        start.wait()
        return [deploy(store, ready=False) for _ in range(each)]

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(deploy_many) for _ in range(threads)]
        numbers = [n for f in futures for n in f.result()]

    first = 2 if existing else 1
    assert sorted(numbers) == list(range(first, first + threads * each))
    assert [v.number for v in store.versions("echo")] == list(range(1, first + threads * each))


def test_definition_round_trips(store: StateStore) -> None:
    created = store.create_version(
        ECHO, code_digest="sha256:c", artifact_run=None, environment_digest="sha256:e",
        actor="bob",
    )  # fmt: skip
    stored = store.version("echo", created.number)
    assert stored.definition == ECHO == created.definition
    assert stored.definition.model_dump(mode="json") == ECHO.model_dump(mode="json")
    assert stored.definition.endpoint("stats").http_methods == ("GET", "POST")
    assert (stored.status, stored.error, stored.artifact_run, stored.created_by) == (
        "deploying", None, None, "bob",
    )  # fmt: skip
    assert (stored.code_digest, stored.environment_digest) == ("sha256:c", "sha256:e")
    with pytest.raises(NotFoundError, match=r"'echo' has no version v2\. Versions: v1\."):
        store.version("echo", 2)


def test_timestamps_come_back_in_utc(store: StateStore) -> None:
    promote(store, deploy(store))
    stamps = [store.version("echo", 1).created_at, store.aliases()[0].updated_at]
    stamps += [e.created_at for e in store.events("echo")]
    assert [s.utcoffset() for s in stamps] == [timedelta(0)] * len(stamps)


def test_set_status(store: StateStore) -> None:
    number = deploy(store, ready=False)
    failed = store.set_status("echo", number, "failed", "initialize raised KeyError")
    assert (failed.status, failed.error) == ("failed", "initialize raised KeyError")
    assert store.version("echo", number).model_dump(exclude={"created_at"}) == failed.model_dump(
        exclude={"created_at"}
    )
    ready = store.set_status("echo", number, "ready")
    assert (ready.status, ready.error) == ("ready", None)
    assert store.version("echo", number).status == "ready"
    with pytest.raises(NotFoundError, match=r"has no version v9\. Versions: v1\."):
        store.set_status("echo", 9, "ready")


def test_events_record_the_trail_in_order(store: StateStore) -> None:
    deploy(store)
    deploy(store)
    promote(store, 1)
    store.move_alias("echo", PRODUCTION, 2, actor="bob", detail={"audits": ["smoke"]})
    rollback(store)
    store.undeploy("echo", 2, actor="dave")
    events = store.events("echo")
    assert [(e.kind, e.version, e.alias, e.previous_version, e.actor) for e in events] == [
        ("undeploy", 2, None, None, "dave"),
        ("rollback", 1, "production", 2, "carol"),
        ("promote", 2, "production", 1, "bob"),
        ("promote", 1, "production", None, "alice"),
        ("deploy", 2, None, None, "alice"),
        ("deploy", 1, None, None, "alice"),
    ]  # newest first
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    assert {e.service for e in events} == {"echo"}
    assert events[2].detail == {"audits": ["smoke"]}
    assert events[-1].detail == {"code_digest": "sha256:code", "artifact_run": "EchoFlow/7"}
    assert [e.kind for e in store.events("echo", limit=2)] == ["undeploy", "rollback"]


def test_recorded_events_keep_their_detail(store: StateStore) -> None:
    deploy(store)
    deploy(store, named("other"))
    detail = {"audit": "smoke", "passed": False, "scores": [0.5, 1], "nested": {"a": None}}
    store.record("echo", "audit", actor="ci", version=1, alias="staging", detail=detail)
    store.record("echo", "note", actor="ci")
    note, audit = store.events("echo", limit=2)
    assert (audit.kind, audit.version, audit.alias, audit.actor) == ("audit", 1, "staging", "ci")
    assert audit.detail == detail
    assert (note.kind, note.version, note.alias, note.detail) == ("note", None, None, {})
    assert [e.kind for e in store.events("other")] == ["deploy"]  # one trail per service
    with pytest.raises(NotFoundError, match="no service 'ghost'"):
        store.record("ghost", "note", actor="ci")

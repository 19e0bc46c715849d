"""Migrating the state DB before serving: on SQLite and on a real PostgreSQL server.

Many control-plane processes start at once (Lambda cold starts): they migrate under one
lock, so the schema is migrated once and everyone serves. A DB migrated by a newer
control plane is refused with one line, and left as it was.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from alembic.migration import MigrationContext
from sqlalchemy import text

from flowhost.errors import FlowhostError
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.migrate import SchemaAheadError, head
from tests.integration.store.conftest import PostgresServer
from tests.integration.store.support import deploy


def revision(store: StateStore) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_many_processes_migrate_an_empty_db_at_once(store_url: str) -> None:
    stores = [StateStore.open(store_url) for _ in range(4)]
    barrier = Barrier(len(stores))

    def migrate(store: StateStore) -> str | None:
        barrier.wait()
        store.migrate()
        return revision(store)

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            revisions = list(pool.map(migrate, stores))
        assert revisions == [head()] * len(stores)
        assert deploy(stores[0]) == 1  # the schema works for everyone
        assert [v.number for v in stores[3].versions("echo")] == [1]
    finally:
        for store in stores:
            store.close()


def test_a_db_ahead_of_the_code_is_refused_and_left_alone(store: StateStore) -> None:
    deploy(store)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(SchemaAheadError) as caught:
        store.migrate()
    assert isinstance(caught.value, FlowhostError)
    url = store.engine.url._replace(password=None).render_as_string(hide_password=False)
    assert caught.value.message == (
        f"state DB {url}: at revision 0099, newer than this control plane knows (head "
        f"{head()}). Deploy the newer platform (pulumi up) or restore the DB."
    )
    assert revision(store) == "0099"
    assert [v.number for v in store.versions("echo")] == [1]


def test_the_refusal_never_shows_the_password(postgres: PostgresServer, postgres_url: str) -> None:
    with postgres.connect("flowhost_tests") as conn:
        conn.execute("ALTER ROLE flowhost PASSWORD 's3cret-pw'")
    store = StateStore.open(postgres_url.replace("flowhost@", "flowhost:s3cret-pw@"))
    try:
        store.migrate()
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
        with pytest.raises(SchemaAheadError) as caught:
            store.migrate()
        assert "s3cret-pw" not in caught.value.message
        assert caught.value.message.startswith(
            f"state DB postgresql+psycopg://flowhost@127.0.0.1:{postgres.port}/flowhost_tests: "
            "at revision f00d, newer than this control plane knows"
        )
    finally:
        store.close()


def test_deploys_left_by_an_older_control_plane_fail_on_upgrade(store_url: str) -> None:
    store = StateStore.open(store_url)
    try:
        store.migrate()
        deploy(store, ready=False)  # deploying, with no deploy row to advance it
        with store.engine.begin() as conn:  # as a control plane at 0003 left it
            for table in ("environment_builds", "environments", "deploy_progress", "deploys"):
                conn.execute(text(f"DROP TABLE {table}"))  # tables of 0004 and later
            conn.execute(text("ALTER TABLE async_requests DROP COLUMN run"))  # 0006's column
            conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        store.migrate()
        [version] = store.versions("echo")
        assert version.status == "failed"
        assert version.error is not None
        assert "deploy it again" in version.error
    finally:
        store.close()

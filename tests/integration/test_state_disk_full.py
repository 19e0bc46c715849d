"""The SQLite state database runs out of room: clear errors, nothing corrupted, recovery.

The disk is "full" through SQLite's own ``max_page_count`` (set on every connection), which
fails writes with SQLITE_FULL exactly as a full filesystem does, without root or a loop
mount (``bench/fault_trials/state.py`` fills a real tmpfs). Writes then fail with
``StateStorageFullError`` (the API: 507 ``state_storage_full`` naming the directory),
reads keep working, ``PRAGMA integrity_check`` is ``ok``, and once there is room again
writes work with nothing lost. The local object store (async payloads, packages) under
the same directory answers a full disk the same way, leaving no partial file behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from flowhost.errors import StateStorageFullError
from flowhost.lambdas.api import create_api
from flowhost.lambdas.deployments import Deployments
from flowhost.lambdas.objectstore import LocalObjectStore
from flowhost.lambdas.store import StateStore
from flowhost.lambdas.store.requests import RequestStore
from tests.integration.store.support import deploy


class Disk:
    """A page limit on every connection of ``store``'s engine; ``None`` lifts it."""

    def __init__(self, store: StateStore) -> None:
        self.pages: int | None = None
        self.store = store
        event.listen(store.engine, "checkout", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        limit = self.pages if self.pages is not None else 1_073_741_823
        dbapi_connection.execute(f"PRAGMA max_page_count={limit}")

    def fill(self) -> None:
        """No room beyond the pages in use now."""
        with sqlite3.connect(self.store.engine.url.database or "") as db:
            self.pages = int(db.execute("PRAGMA page_count").fetchone()[0])


class Fleet:
    """Nothing to start or stop here."""

    def route(self, service: str, alias: str, number: int) -> None:
        return None

    async def retire(self, service: str, number: int) -> None:
        return None


def _fill_up(store: StateStore) -> int:
    """Write events, large then small, until not even a small one fits; returns how many
    got in."""
    written = 0
    for pad in (2000, 100, 0):
        for _ in range(10_000):
            try:
                store.record("echo", "note", actor="alice", detail={"pad": "x" * pad})
            except StateStorageFullError:
                break
            written += 1
        else:
            raise AssertionError("the database never filled up")
    return written


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    state = StateStore.open(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
    state.migrate()
    return state


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_writes_fail_as_storage_full_reads_work_and_it_recovers(
    store: StateStore, tmp_path: Path
) -> None:
    number = deploy(store)
    disk = Disk(store)
    disk.fill()
    written = _fill_up(store)
    with pytest.raises(StateStorageFullError) as caught:
        deploy(store)
    error = caught.value
    assert (error.status, error.code) == (507, "state_storage_full")
    assert f"Free space in {tmp_path / 'state'}" in error.message
    requests = RequestStore(store.engine)  # the async request records share the file

    def queue_until_full() -> None:  # their table's last page may still have room for a few
        for i in range(10_000):
            requests.create(
                service="echo", endpoint="echo", target="production", payload_key=f"p{i}",
                timeout_seconds=10.0, version=number,
            )  # fmt: skip

    with pytest.raises(StateStorageFullError):
        queue_until_full()

    assert store.resolve("echo", f"v{number}").number == number  # reads still work
    assert _integrity(tmp_path / "state" / "state.db") == "ok"

    disk.pages = None  # room again
    assert deploy(store) == number + 1
    notes = [e for e in store.events("echo", limit=1000) if e.kind == "note"]
    assert len(notes) == written  # every write that was answered is there, no more
    assert _integrity(tmp_path / "state" / "state.db") == "ok"
    store.close()


def test_the_api_answers_507_naming_the_directory(store: StateStore, tmp_path: Path) -> None:
    first = deploy(store)
    second = deploy(store)
    disk = Disk(store)
    disk.fill()
    _fill_up(store)
    deployments = Deployments(store, LocalObjectStore(tmp_path / "objects"), Fleet())  # type: ignore[arg-type]
    app = create_api(deployments)

    async def calls() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # an unhandled error (a 500) raises here
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            full = await http.post("/api/services/echo/aliases/production", json={"version": first})
            read = await http.get(f"/api/services/echo/versions/{second}")
            disk.pages = None
            again = await http.delete(f"/api/services/echo/versions/{second}")
            return full, read, again

    full, read, again = asyncio.run(calls())
    assert full.status_code == 507, full.text
    body = full.json()["error"]
    assert body["code"] == "state_storage_full"
    assert str(tmp_path / "state") in body["message"]
    assert read.status_code == 200
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "undeployed"
    store.close()


def test_a_full_disk_under_the_object_store_is_storage_full_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd: int) -> None:
            self.file = real_fdopen(fd, "wb")

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, _mode: Full(fd))
    with pytest.raises(StateStorageFullError) as caught:
        objects.put("async/echo/req_1/payload.json", b"{}")
    assert (caught.value.status, caught.value.code) == (507, "state_storage_full")
    assert f"Free space in {tmp_path / 'objects'}" in caught.value.message
    assert not list((tmp_path / "objects").rglob(".tmp-*"))
    monkeypatch.undo()
    objects.put("async/echo/req_1/payload.json", b"{}")  # room again
    assert objects.get("async/echo/req_1/payload.json") == b"{}"
